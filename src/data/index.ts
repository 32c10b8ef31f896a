/**
 * Data for sentinels: the {@link DataProvider} interface, the in-memory {@link ArrayProvider},
 * datasets read from CSV, JSON-lines and IDX files, data described as data ({@link DataSpec}) for
 * sentinels built on other nodes, and MNIST (IDX loader and downloader).
 */
export { ArrayProvider, mulberry32, sampleOrder, type ArrayProviderOptions, type Batch, type DataProvider } from './provider.js';
export { parseIdx, IDX_UBYTE, type IdxArray } from './idx.js';
export { loadMnist, mnistFileNames, resolveMnistDir, type MnistSplit, type MnistSplitName } from './mnist.js';
export { ensureMnist, md5File, MNIST_FILES, MNIST_MIRRORS, type EnsureMnistOptions, type MnistFile } from './download.js';
export { datasetProvider, datasetSize, readCsv, readIdxPair, readJsonl, shardDataset, sliceDataset, type CsvOptions, type Dataset, type IdxOptions, type JsonlOptions } from './files.js';
export { allowedPath, DATA_KINDS, loadProviderModule, providerFromSpec, type DataAccess, type DataSpec } from './spec.js';
