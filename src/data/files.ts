/**
 * Datasets read from files on this node: CSV (parsed by `csv-parse`), JSON lines, and IDX
 * (raw or gzipped). Each reader returns a {@link Dataset}: flat typed arrays plus shapes, ready
 * for an {@link ArrayProvider} and cheap to cut into shards ({@link sliceDataset}).
 */
import { readFile } from 'node:fs/promises';
import { gunzipSync } from 'node:zlib';
import { parse } from 'csv-parse/sync';
import { DataFormatError, InvalidArgumentError } from '../errors.js';
import { parseIdx } from './idx.js';
import { ArrayProvider } from './provider.js';

/** A whole dataset in memory: inputs `[n, ...inputShape]` and labels `[n]` or targets `[n, ...targetShape]`, row-major. */
export interface Dataset {
  x: Float32Array;
  /** Class labels (int32, with `numClasses`) or regression targets (float32). */
  y: Int32Array | Float32Array;
  inputShape: number[];
  /** Set for classification. */
  numClasses?: number;
  /** Per-sample target shape of regression targets, e.g. `[1]`. */
  targetShape?: number[];
}

/** Options of {@link readCsv}. */
export interface CsvOptions {
  /** Target column name(s), or 0-based indices without a header. Default: the last column. */
  target?: string | number | (string | number)[];
  /** Feature columns; default every column that is not a target. */
  features?: (string | number)[];
  /** Number of classes: the (single) target column then holds integer labels `0..classes-1`. */
  classes?: number;
  /** Field delimiter. Default `,`. */
  delimiter?: string;
  /** Whether the first row names the columns. Default: true when `target` or `features` name a column, else detected (a first row with a non-number field). */
  header?: boolean;
}

/** The number of samples of a dataset. */
export const datasetSize = (ds: Dataset): number => ds.x.length / ds.inputShape.reduce((a, b) => a * b, 1);

/** Reads a file, naming it in the error. */
async function read(file: string): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch (error) {
    throw new DataFormatError(`Cannot read data file ${file}: ${(error as Error).message}. Check the path (it is read on the node that builds the sentinel).`, { cause: error });
  }
}

function number(value: unknown, where: string): number {
  const v = typeof value === 'number' ? value : typeof value === 'string' && value.trim() !== '' ? Number(value) : NaN;
  if (!Number.isFinite(v)) throw new DataFormatError(`${where}: '${String(value)}' is not a finite number; clean or impute the value.`);
  return v;
}

function checkClasses(classes: number | undefined): void {
  if (classes !== undefined && !(Number.isInteger(classes) && classes >= 1)) throw new InvalidArgumentError(`classes must be a positive integer, got ${classes}.`);
}

function labels(values: number[], classes: number, where: (i: number) => string): Int32Array {
  values.forEach((v, i) => {
    if (!Number.isInteger(v) || v < 0 || v >= classes) throw new DataFormatError(`${where(i)}: label ${v} is not an integer in [0, ${classes}); fix the label or the number of classes.`);
  });
  return Int32Array.from(values);
}

/**
 * Reads a CSV file of numbers: each row one sample, its feature columns the input `[features]`
 * and its target column(s) the label or targets.
 * @throws DataFormatError for an unreadable file, ragged rows, a non-numeric field or a label out
 *   of range; InvalidArgumentError for a column that is not in the file.
 */
export async function readCsv(file: string, options: CsvOptions = {}): Promise<Dataset> {
  checkClasses(options.classes);
  let rows: string[][];
  try {
    rows = parse(await read(file), { delimiter: options.delimiter ?? ',', skip_empty_lines: true, trim: true, relax_column_count: false }) as string[][];
  } catch (error) {
    if (error instanceof DataFormatError) throw error;
    throw new DataFormatError(`${file}: not valid CSV (${(error as Error).message}).`, { cause: error });
  }
  const named = [options.target, ...(options.features ?? [])].flat().some((c) => typeof c === 'string' && !/^\d+$/.test(c));
  const first = rows[0] ?? [];
  const header = options.header ?? (named || first.some((f) => f !== '' && !Number.isFinite(Number(f))));
  const names = header ? first : first.map((_, i) => String(i));
  const body = header ? rows.slice(1) : rows;
  if (body.length === 0) throw new DataFormatError(`${file}: no data rows.`);
  const column = (c: string | number): number => {
    const i = typeof c === 'number' ? c : names.includes(c) || !/^\d+$/.test(c) ? names.indexOf(c) : Number(c); // '3' is column 3 unless a column is named so
    if (!(Number.isInteger(i) && i >= 0 && i < names.length)) throw new InvalidArgumentError(`${file}: no column ${JSON.stringify(c)}; the columns are ${names.join(', ')}.`);
    return i;
  };
  const targets = (options.target === undefined ? [names.length - 1] : [options.target].flat().map(column));
  const features = options.features ? options.features.map(column) : names.map((_, i) => i).filter((i) => !targets.includes(i));
  if (features.length === 0) throw new InvalidArgumentError(`${file}: no feature columns left besides the target.`);
  if (options.classes !== undefined && targets.length !== 1) throw new InvalidArgumentError(`With classes, give exactly one target column, not ${targets.length}.`);
  const x = new Float32Array(body.length * features.length);
  const y: number[] = [];
  body.forEach((row, r) => {
    const line = r + (header ? 2 : 1);
    features.forEach((c, j) => (x[r * features.length + j] = number(row[c], `${file} line ${line}, column ${names[c]}`)));
    targets.forEach((c) => y.push(number(row[c], `${file} line ${line}, column ${names[c]}`)));
  });
  if (options.classes !== undefined) return { x, y: labels(y, options.classes, (i) => `${file} line ${i + (header ? 2 : 1)}`), inputShape: [features.length], numClasses: options.classes };
  return { x, y: Float32Array.from(y), inputShape: [features.length], targetShape: [targets.length] };
}

/** Options of {@link readJsonl}. */
export interface JsonlOptions {
  /** Field of the input (a number or a nested array of numbers). Default `'x'`. */
  x?: string;
  /** Field of the label or target(s). Default `'y'`. */
  y?: string;
  /** Number of classes: `y` then holds an integer label. */
  classes?: number;
}

/** The shape of a nested array of numbers, e.g. `[28, 28]`; `[]` for a number; at most 8 dimensions are looked at. */
function shapeOf(value: unknown, depth = 0): number[] {
  return Array.isArray(value) && depth < 8 ? [value.length, ...shapeOf(value[0], depth + 1)] : [];
}

/**
 * Reads a JSON-lines file: one object per line, such as `{"x": [0.1, 0.2], "y": 1}`. Every
 * line's input must have the first line's shape.
 * @throws DataFormatError for a line that is not JSON, lacks a field, holds a non-number or has
 *   another shape than the first line; a label out of range.
 */
export async function readJsonl(file: string, options: JsonlOptions = {}): Promise<Dataset> {
  checkClasses(options.classes);
  const [xKey, yKey] = [options.x ?? 'x', options.y ?? 'y'];
  const lines = (await read(file)).toString('utf8').split('\n');
  const xs: number[] = [];
  const ys: number[] = [];
  let inputShape: number[] | undefined;
  let targetShape: number[] | undefined;
  lines.forEach((text, i) => {
    if (text.trim() === '') return;
    const where = `${file} line ${i + 1}`;
    let row: unknown;
    try {
      row = JSON.parse(text);
    } catch (error) {
      throw new DataFormatError(`${where}: not JSON (${(error as Error).message}).`, { cause: error });
    }
    if (row === null || typeof row !== 'object' || Array.isArray(row) || !Object.hasOwn(row, xKey) || !Object.hasOwn(row, yKey)) throw new DataFormatError(`${where}: expected an object with fields '${xKey}' and '${yKey}'.`);
    const record = row as Record<string, unknown>;
    const [x, y] = [record[xKey], record[yKey]];
    const [xShape, yShape] = [shapeOf(x), shapeOf(y)];
    inputShape ??= xShape.length === 0 ? [1] : xShape;
    targetShape ??= yShape.length === 0 ? [1] : yShape;
    const flatX = [x].flat(8) as unknown[];
    const flatY = [y].flat(8) as unknown[];
    if (flatX.length !== inputShape.reduce((a, b) => a * b, 1) || flatY.length !== targetShape.reduce((a, b) => a * b, 1)) {
      throw new DataFormatError(`${where}: '${xKey}' has shape [${xShape}] and '${yKey}' [${yShape}], but line 1 had [${inputShape}] and [${targetShape}]; every line needs the same shapes.`);
    }
    flatX.forEach((v) => xs.push(number(v as number, `${where}, '${xKey}'`)));
    flatY.forEach((v) => ys.push(number(v as number, `${where}, '${yKey}'`)));
  });
  if (!inputShape || !targetShape) throw new DataFormatError(`${file}: no data lines.`);
  const x = Float32Array.from(xs);
  if (options.classes !== undefined) {
    if (ys.length !== xs.length / inputShape.reduce((a, b) => a * b, 1)) throw new DataFormatError(`${file}: with classes, '${yKey}' must be one integer label per line.`);
    return { x, y: labels(ys, options.classes, (i) => `${file} sample ${i}`), inputShape, numClasses: options.classes };
  }
  return { x, y: Float32Array.from(ys), inputShape, targetShape };
}

/** Options of {@link readIdxPair}. */
export interface IdxOptions {
  /** Each input byte is multiplied by this (default 1/255, so pixels land in [0, 1]). */
  scale?: number;
  /** Number of classes of the labels file (default: its largest label + 1). */
  classes?: number;
}

/** The most bytes a gzipped IDX file may unpack to (1 GiB; MNIST's largest is 47 MB). */
const MAX_IDX_BYTES = 1 << 30;

async function idxFile(file: string) {
  const bytes = await read(file);
  let raw: Buffer = bytes;
  if (bytes[0] === 0x1f && bytes[1] === 0x8b) {
    try {
      raw = gunzipSync(bytes, { maxOutputLength: MAX_IDX_BYTES });
    } catch (error) {
      throw new DataFormatError(`${file}: not a valid gzip file of at most ${MAX_IDX_BYTES} bytes unpacked (${(error as Error).message}).`, { cause: error });
    }
  }
  return parseIdx(new Uint8Array(raw.buffer, raw.byteOffset, raw.byteLength), file);
}

/**
 * Reads an IDX inputs file (ubyte, `[n, ...inputShape]`) and an IDX labels file (ubyte, `[n]`),
 * each raw or gzipped, as MNIST ships them.
 * @throws DataFormatError for a malformed file, labels that are not rank 1, or counts that differ.
 */
export async function readIdxPair(images: string, labelsFile: string, options: IdxOptions = {}): Promise<Dataset> {
  checkClasses(options.classes);
  const [img, lab] = await Promise.all([idxFile(images), idxFile(labelsFile)]);
  if (lab.dims.length !== 1 || img.dims[0] !== lab.dims[0] || img.dims.length < 2) {
    throw new DataFormatError(`${images} has dims [${img.dims}] and ${labelsFile} [${lab.dims}]; expected [n, ...] inputs and [n] labels with the same n.`);
  }
  const scale = options.scale ?? 1 / 255;
  const x = Float32Array.from(img.data, (v) => v * scale);
  const classes = options.classes ?? lab.data.reduce((m, v) => Math.max(m, v), 0) + 1;
  return { x, y: labels(Array.from(lab.data), classes, (i) => `${labelsFile} sample ${i}`), inputShape: img.dims.slice(1), numClasses: classes };
}

/**
 * Samples `from` (inclusive) to `to` (exclusive) of a dataset, as views (no copy).
 * @throws InvalidArgumentError for a range outside the dataset.
 */
export function sliceDataset(ds: Dataset, from: number, to: number): Dataset {
  const n = datasetSize(ds);
  if (!(Number.isInteger(from) && Number.isInteger(to) && from >= 0 && from < to && to <= n)) {
    throw new InvalidArgumentError(`Samples ${from}-${to} are not in the dataset, which has ${n}; use 0 <= from < to <= ${n}.`);
  }
  const perX = ds.x.length / n;
  const perY = ds.y.length / n;
  const y = ds.y.subarray(from * perY, to * perY);
  return { ...ds, x: ds.x.subarray(from * perX, to * perX), y };
}

/**
 * The k-th (1-based) of n parts of a dataset, one per training sentinel: samples
 * `floor((k-1)·N/n)` to `floor(k·N/n)`, so the parts cover the dataset once and differ in size
 * by at most one.
 * @throws InvalidArgumentError unless 1 <= k <= n <= the number of samples.
 */
export function shardDataset(ds: Dataset, k: number, n: number): Dataset {
  const total = datasetSize(ds);
  if (!(Number.isInteger(k) && Number.isInteger(n) && k >= 1 && k <= n)) throw new InvalidArgumentError(`A shard must be k/n with 1 <= k <= n, got ${k}/${n}.`);
  if (n > total) throw new InvalidArgumentError(`Cannot cut ${total} samples into ${n} shards; use at most ${total}.`);
  return sliceDataset(ds, Math.floor(((k - 1) * total) / n), Math.floor((k * total) / n));
}

/** An {@link ArrayProvider} over a dataset, reshuffled each epoch from `seed`. */
export function datasetProvider(ds: Dataset, seed?: number): ArrayProvider {
  return new ArrayProvider({ x: ds.x, y: ds.y, inputShape: ds.inputShape, numClasses: ds.numClasses, targetShape: ds.targetShape, seed });
}
