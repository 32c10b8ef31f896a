/**
 * Loader for the MNIST handwritten-digit dataset from its four original gzipped IDX files.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { gunzip } from 'node:zlib';
import { DataFormatError } from '../errors.js';
import { parseIdx, type IdxArray } from './idx.js';

const gunzipAsync = promisify(gunzip);

/** One MNIST split, ready for training: images scaled to `[0, 1]` and integer labels. */
export interface MnistSplit {
  /** Pixels as float32, shape `[count, rows * cols]` (i.e. `[count, 784]`), row-major, in `[0, 1]`. */
  images: Float32Array;
  /** Digit labels as int32, shape `[count]`, each in `0..9`. */
  labels: Int32Array;
  /** Number of examples: 60000 for `'train'`, 10000 for `'test'`. */
  count: number;
  /** Image height in pixels (28). */
  rows: number;
  /** Image width in pixels (28). */
  cols: number;
}

/** Which MNIST split to load: the 60000 training or the 10000 test examples. */
export type MnistSplitName = 'train' | 'test';

/** Returns the gzipped image and label file names of a split, e.g. `train-images-idx3-ubyte.gz`. */
export function mnistFileNames(split: MnistSplitName): { images: string; labels: string } {
  const prefix = split === 'train' ? 'train' : 't10k';
  return { images: `${prefix}-images-idx3-ubyte.gz`, labels: `${prefix}-labels-idx1-ubyte.gz` };
}

/** Two levels up from `src/data`; the build (`dist/src/data`) lands in `dist`, so step out of it. */
const UP_TWO = path.resolve(fileURLToPath(new URL('../..', import.meta.url)));
const PROJECT_ROOT = path.basename(UP_TWO) === 'dist' ? path.dirname(UP_TWO) : UP_TWO;

/**
 * Returns the absolute MNIST directory: the `--data` flag if given, else the `MNIST_DIR`
 * environment variable, else `<project root>/data/mnist`.
 */
export function resolveMnistDir(flag?: string): string {
  if (flag) return path.resolve(flag);
  const env = process.env['MNIST_DIR'];
  if (env) return path.resolve(env);
  return path.join(PROJECT_ROOT, 'data', 'mnist');
}

const HOW_TO_GET =
  'run `npm run download-mnist` to fetch it, or pass `--data DIR` / set `MNIST_DIR` to a ' +
  'directory that holds the MNIST .gz files';

/** The most bytes an MNIST file may unpack to: a header and 70,000 images of 28x28 (the train images are 47,040,016). */
const MAX_MNIST_BYTES = 16 + 70_000 * 784;

async function readIdxGz(file: string): Promise<IdxArray> {
  let gz: Buffer;
  try {
    gz = await readFile(file);
  } catch (error) {
    const missing = (error as NodeJS.ErrnoException).code === 'ENOENT';
    throw new DataFormatError(
      `${missing ? 'MNIST file not found' : 'cannot read MNIST file'}: ${file}; ${HOW_TO_GET}`,
      { cause: error },
    );
  }
  let raw: Buffer;
  try {
    // 1 MiB output chunks: the 16 KiB default makes the 47 MB train images ~3x slower.
    raw = await gunzipAsync(gz, { chunkSize: 1 << 20, maxOutputLength: MAX_MNIST_BYTES });
  } catch (error) {
    throw new DataFormatError(
      `${file}: not a valid gzip file (${(error as Error).message}); it is corrupt or ` +
        'incomplete, delete it and re-download with `npm run download-mnist`',
      { cause: error },
    );
  }
  return parseIdx(new Uint8Array(raw.buffer, raw.byteOffset, raw.byteLength), file);
}

/**
 * Loads one MNIST split from `dir` and returns images as float32 `[count, 784]` in `[0, 1]`
 * and labels as int32 `[count]`.
 *
 * @param dir - Directory holding the gzipped IDX files (see {@link resolveMnistDir}).
 * @param split - `'train'` (60000 examples) or `'test'` (10000 examples, the `t10k-` files).
 * @throws DataFormatError if a file is missing, not valid gzip, not a valid ubyte IDX file, the
 *   images are not rank 3 or the labels not rank 1, the image and label counts differ, or a
 *   label is outside `0..9`.
 */
export async function loadMnist(dir: string, split: MnistSplitName): Promise<MnistSplit> {
  const names = mnistFileNames(split);
  const imagesPath = path.join(dir, names.images);
  const labelsPath = path.join(dir, names.labels);
  // Both reads run at once; a failure is reported for the images file first, whichever fails first.
  const [imgResult, labResult] = await Promise.allSettled([readIdxGz(imagesPath), readIdxGz(labelsPath)]);
  if (imgResult.status === 'rejected') throw imgResult.reason;
  if (labResult.status === 'rejected') throw labResult.reason;
  const [img, lab] = [imgResult.value, labResult.value];

  if (img.dims.length !== 3) {
    throw new DataFormatError(
      `${imagesPath}: images must have rank 3 [count, rows, cols], got dims ` +
        `[${img.dims.join(', ')}]; is this a label file? Re-download with \`npm run download-mnist\``,
    );
  }
  if (lab.dims.length !== 1) {
    throw new DataFormatError(
      `${labelsPath}: labels must have rank 1 [count], got dims [${lab.dims.join(', ')}]; ` +
        'is this an image file? Re-download with `npm run download-mnist`',
    );
  }
  const [count, rows, cols] = img.dims as [number, number, number];
  if (rows !== 28 || cols !== 28) {
    throw new DataFormatError(`${imagesPath}: MNIST images are 28x28, this file holds ${rows}x${cols}; it is not MNIST, re-download it with \`npm run download-mnist\``);
  }
  if (lab.dims[0] !== count) {
    throw new DataFormatError(
      `MNIST ${split} split: ${imagesPath} has ${count} images but ${labelsPath} has ` +
        `${lab.dims[0]} labels; the files come from different sources or one is damaged, ` +
        're-download both with `npm run download-mnist`',
    );
  }

  const src = img.data;
  const images = new Float32Array(src.length);
  for (let i = 0; i < src.length; i++) images[i] = src[i] / 255;

  const labels = new Int32Array(count);
  for (let i = 0; i < count; i++) {
    const label = lab.data[i];
    if (label > 9) {
      throw new DataFormatError(
        `${labelsPath}: label ${label} at index ${i} is outside 0..9; the file is not MNIST ` +
          'or is damaged, re-download it with `npm run download-mnist`',
      );
    }
    labels[i] = label;
  }
  return { images, labels, count, rows, cols };
}
