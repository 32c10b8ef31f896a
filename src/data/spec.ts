/**
 * Data as data: a {@link DataSpec} says where a sentinel's samples come from, so that a worker
 * thread, a child process or a host on another machine can build the provider itself. Files
 * and modules are read on the node that builds the provider; no code ever travels, and a node
 * can restrict which of its directories a spec may name ({@link DataAccess}).
 */
import { realpathSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type * as tf from '@tensorflow/tfjs';
import { InvalidArgumentError } from '../errors.js';
import { type Dataset, datasetProvider, datasetSize, readCsv, readIdxPair, readJsonl, sliceDataset } from './files.js';
import { loadMnist, resolveMnistDir } from './mnist.js';
import { ArrayProvider, type DataProvider } from './provider.js';

/** A range of samples (`from` inclusive, `to` exclusive; default all) and the shuffle seed. */
interface Range {
  from?: number;
  to?: number;
  seed?: number;
}

/**
 * Where a sentinel's samples come from.
 * - `mnist`: MNIST read on the node from `dir` (default `MNIST_DIR`, else `data/mnist`), images
 *   of `split` with each pixel in `[0, 1]` times `scale` (default 1).
 * - `tensors`: inputs `x` (`[samples, ...inputShape]`, float32) and labels `y` (`[samples]` int32
 *   with `numClasses`) or targets (`[samples, ...]` float32), sent along; the node owns them.
 * - `csv`: a CSV file of numbers on the node ({@link readCsv}).
 * - `jsonl`: a JSON-lines file on the node, one `{"x": [...], "y": ...}` per line ({@link readJsonl}).
 * - `idx`: an IDX inputs file and an IDX labels file on the node ({@link readIdxPair}).
 * - `module`: a JavaScript/TypeScript module on the node whose export `export` (default
 *   `'default'`) is a {@link DataProvider}, or a function of `options` that returns one (or a
 *   promise of one).
 */
export type DataSpec =
  | ({ kind: 'mnist'; split: 'train' | 'test'; dir?: string; scale?: number } & Range)
  | { kind: 'tensors'; x: tf.Tensor; y: tf.Tensor; numClasses?: number; seed?: number }
  | ({ kind: 'csv'; path: string; target?: string | number | (string | number)[]; features?: (string | number)[]; classes?: number; delimiter?: string; header?: boolean } & Range)
  | ({ kind: 'jsonl'; path: string; x?: string; y?: string; classes?: number } & Range)
  | ({ kind: 'idx'; images: string; labels: string; scale?: number; classes?: number } & Range)
  | { kind: 'module'; path: string; export?: string; options?: Record<string, unknown> };

/** The data kinds of a {@link DataSpec}. */
export const DATA_KINDS = ['mnist', 'tensors', 'csv', 'jsonl', 'idx', 'module'] as const;

/**
 * What a node lets a {@link DataSpec} read. `roots` undefined: any path (a worker thread or child
 * process started by this user for its own sentinels). Otherwise every file and directory must
 * lie inside one of `roots`, symbolic links resolved (a host serving requests from other
 * machines), and a `module` spec, which runs code from the node's disk, is refused unless
 * `modules` is true.
 */
export interface DataAccess {
  roots?: string[];
  /** With `roots`: let `module` specs import modules under the roots. Default false. */
  modules?: boolean;
}

/** Whether `file` is `root` or inside it (both absolute, resolved). */
function inside(root: string, file: string): boolean {
  const relative = path.relative(root, file);
  return relative === '' || (relative !== '..' && !relative.startsWith(`..${path.sep}`) && !path.isAbsolute(relative));
}

/** The real path of a file, or of its nearest existing parent joined with the rest (for files still to be read). */
function realPath(file: string): string {
  try {
    return realpathSync(file);
  } catch {
    const parent = path.dirname(file);
    return parent === file ? file : path.join(realPath(parent), path.basename(file));
  }
}

/**
 * Resolves a spec's path against the node's working directory and checks it against `access`,
 * after resolving symbolic links (so that a link inside a root cannot lead out of it).
 * @throws InvalidArgumentError for a path outside every root.
 */
export function allowedPath(file: string, access: DataAccess = {}): string {
  const resolved = path.resolve(file);
  if (access.roots === undefined) return resolved;
  const real = realPath(resolved);
  if (!access.roots.some((root) => inside(realPath(path.resolve(root)), real))) {
    const where = access.roots.length === 0 ? 'this node allows no data files from other nodes (start it with --data-root DIR)' : `this node reads data only under ${access.roots.join(', ')}`;
    throw new InvalidArgumentError(`Data path ${file} is refused: ${where}.`);
  }
  return real;
}

const isProvider = (value: unknown): value is DataProvider =>
  typeof value === 'object' && value !== null && typeof (value as DataProvider).batches === 'function' && Number.isInteger((value as DataProvider).size) && Array.isArray((value as DataProvider).inputShape);

/**
 * Imports a provider module from this node's disk.
 * @throws InvalidArgumentError when the module cannot be imported, lacks the export, its function
 *   throws, or the export is neither a provider nor a function returning one.
 */
export async function loadProviderModule(file: string, exportName = 'default', options: Record<string, unknown> = {}): Promise<DataProvider> {
  let module: Record<string, unknown>;
  try {
    module = (await import(pathToFileURL(file).href)) as Record<string, unknown>;
  } catch (error) {
    throw new InvalidArgumentError(`Cannot import the data module ${file}: ${(error as Error).message}`, { cause: error });
  }
  const value = Object.hasOwn(module, exportName) ? module[exportName] : undefined;
  let provider: unknown;
  try {
    provider = typeof value === 'function' ? await (value as (o: Record<string, unknown>) => unknown)(options) : value;
  } catch (error) {
    throw new InvalidArgumentError(`The data module ${file} failed to make its provider: ${(error as Error).message}`, { cause: error });
  }
  if (!isProvider(provider)) {
    throw new InvalidArgumentError(`The export '${exportName}' of ${file} is not a DataProvider (an object with size, inputShape and batches()) or a function returning one.`);
  }
  return provider;
}

function ranged(ds: Dataset, spec: Range): Dataset {
  return spec.from === undefined && spec.to === undefined ? ds : sliceDataset(ds, spec.from ?? 0, spec.to ?? datasetSize(ds));
}

/**
 * Builds the provider a spec describes, reading its files on this node. A `tensors` spec's
 * tensors are read, not disposed (the caller owns them).
 * @throws InvalidArgumentError for an unknown kind, a path refused by `access`, or a range outside
 *   the data; DataFormatError for missing or malformed files; the provider's named errors
 *   (LabelRangeError, NonFiniteError, ShapeMismatchError) for bad data.
 */
export async function providerFromSpec(spec: DataSpec, access: DataAccess = {}): Promise<DataProvider> {
  switch (spec.kind) {
    case 'tensors':
      return new ArrayProvider({ x: spec.x, y: spec.y, numClasses: spec.numClasses, seed: spec.seed });
    case 'mnist': {
      const dir = spec.dir === undefined ? resolveMnistDir() : allowedPath(spec.dir, access);
      const split = await loadMnist(dir, spec.split);
      const scale = spec.scale ?? 1;
      const ds = ranged({ x: split.images, y: split.labels, inputShape: [784], numClasses: 10 }, spec);
      return datasetProvider(scale === 1 ? ds : { ...ds, x: ds.x.map((v) => v * scale) }, spec.seed);
    }
    case 'csv':
      return datasetProvider(ranged(await readCsv(allowedPath(spec.path, access), spec), spec), spec.seed);
    case 'jsonl':
      return datasetProvider(ranged(await readJsonl(allowedPath(spec.path, access), spec), spec), spec.seed);
    case 'idx':
      return datasetProvider(ranged(await readIdxPair(allowedPath(spec.images, access), allowedPath(spec.labels, access), spec), spec), spec.seed);
    case 'module':
      if (access.roots !== undefined && !access.modules) {
        throw new InvalidArgumentError(`Data module ${spec.path} is refused: this node runs no data modules for other nodes (start it with --data-modules to allow modules under its --data-root).`);
      }
      return loadProviderModule(allowedPath(spec.path, access), spec.export, spec.options);
    default:
      throw new InvalidArgumentError(`Unknown data kind '${String((spec as { kind?: unknown }).kind)}'; use one of ${DATA_KINDS.join(', ')}.`);
  }
}
