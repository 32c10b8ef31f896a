/**
 * Data for sentinels: the {@link DataProvider} interface, the in-memory {@link ArrayProvider},
 * and MNIST (IDX loader and downloader).
 */
export { ArrayProvider, mulberry32, sampleOrder, type ArrayProviderOptions, type Batch, type DataProvider } from './provider.js';
export { parseIdx, IDX_UBYTE, type IdxArray } from './idx.js';
export { loadMnist, mnistFileNames, resolveMnistDir, type MnistSplit, type MnistSplitName } from './mnist.js';
export { ensureMnist, md5File, MNIST_FILES, MNIST_MIRRORS, type EnsureMnistOptions, type MnistFile } from './download.js';
