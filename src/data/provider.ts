/**
 * Data providers: what a sentinel draws its batches from. {@link ArrayProvider} holds a whole
 * dataset in memory (typed arrays or tensors) and reshuffles it every epoch from a seed.
 */
import * as tf from '@tensorflow/tfjs';
import { backendCopiesData } from '../backend.js';
import { InvalidArgumentError, LabelRangeError, NonFiniteError, ShapeMismatchError } from '../errors.js';

/** One batch; the receiver owns `x` and `y`. */
export interface Batch {
  /** Inputs, `[size, ...inputShape]`, float32. */
  x: tf.Tensor;
  /** Targets: class labels `[size]` int32, or targets `[size, ...targetShape]` float32. */
  y: tf.Tensor;
  /** Class labels on the JS side (classification only), for metrics without a device read. */
  labels?: Int32Array;
  /** Dataset indices of the samples, in batch order. */
  indices: Int32Array;
  /** Number of samples (the last batch of an epoch may be smaller). */
  size: number;
}

/** A source of batches for one sentinel. */
export interface DataProvider {
  /** Samples per epoch. */
  readonly size: number;
  /** Per-sample input shape, e.g. `[784]`. */
  readonly inputShape: number[];
  /** Number of classes for classification data, else undefined. */
  readonly numClasses?: number;
  /** The batches of one epoch, shuffled by `(seed, epoch)` when `shuffle` is set. */
  batches(epoch: number, batchSize: number, shuffle: boolean): Iterator<Batch>;
}

/** Options of {@link ArrayProvider}. */
export interface ArrayProviderOptions {
  /** Inputs, `[n, ...inputShape]` flattened row-major (typed array), or a tensor. */
  x: Float32Array | number[] | tf.Tensor;
  /** Class labels `[n]` (integers) or targets `[n, ...targetShape]` flattened, or a tensor. */
  y: Int32Array | Float32Array | number[] | tf.Tensor;
  /** Per-sample input shape; taken from `x` when it is a tensor. */
  inputShape?: number[];
  /** Set for classification: labels must be integers in `[0, numClasses)`. */
  numClasses?: number;
  /** Per-sample target shape for regression targets, e.g. `[1]`. Ignored with `numClasses`. */
  targetShape?: number[];
  /** Shuffle seed. Default 0. */
  seed?: number;
}

/** A small, fast seeded PRNG (mulberry32); returns floats in [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const size = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

/** The index of the first NaN or ±Infinity in `values`, or -1 (a function of its own for the reason {@link sampleOrder} gives). */
function indexOfNonFinite(values: Float32Array): number {
  for (let i = 0; i < values.length; i++) if (!Number.isFinite(values[i])) return i;
  return -1;
}

/**
 * The indices `0 … n-1`, in order or, with a `seed`, in a Fisher–Yates shuffle driven by
 * {@link mulberry32}. A function of its own rather than part of the `batches` generator: V8
 * then optimizes the shuffle loop once, instead of compiling the generator on stack
 * replacement at the start of every pass (and of every new provider).
 */
export function sampleOrder(n: number, seed?: number): Int32Array {
  const order = new Int32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  if (seed === undefined) return order;
  const random = mulberry32(seed);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    const t = order[i] as number;
    order[i] = order[j] as number;
    order[j] = t;
  }
  return order;
}

/**
 * An in-memory dataset. Validates everything once at construction, so that bad data fails
 * before training starts.
 *
 * @throws ShapeMismatchError when `x` and `y` disagree on the number of samples;
 *   NonFiniteError when `x`, or a regression target in `y`, holds NaN or ±Infinity; LabelRangeError for a label that is not an
 *   integer in `[0, numClasses)`.
 */
export class ArrayProvider implements DataProvider {
  readonly size: number;
  readonly inputShape: number[];
  readonly numClasses?: number;
  private readonly x: Float32Array;
  private readonly y: Float32Array | Int32Array;
  private readonly targetShape: number[];
  private readonly seed: number;

  constructor(options: ArrayProviderOptions) {
    this.inputShape = options.x instanceof tf.Tensor ? options.x.shape.slice(1) : (options.inputShape ?? []);
    if (this.inputShape.length === 0) {
      throw new InvalidArgumentError('ArrayProvider needs inputShape (e.g. [784]) when x is not a tensor.');
    }
    this.x = options.x instanceof tf.Tensor ? (options.x.dataSync() as Float32Array) : Float32Array.from(options.x);
    const features = size(this.inputShape);
    if (this.x.length % features !== 0) {
      throw new ShapeMismatchError(`x has ${this.x.length} values, not a multiple of the ${features} features of shape [${this.inputShape}].`);
    }
    this.size = this.x.length / features;
    this.seed = options.seed ?? 0;
    if (options.numClasses !== undefined && !(Number.isInteger(options.numClasses) && options.numClasses >= 1 && options.numClasses <= 2 ** 24)) {
      throw new InvalidArgumentError(`numClasses must be a whole number from 1 to 2^24, got ${options.numClasses}.`);
    }
    this.numClasses = options.numClasses;
    const rawY = options.y instanceof tf.Tensor ? options.y.dataSync() : options.y;
    if (this.numClasses !== undefined) {
      this.targetShape = [];
      const labels = rawY as ArrayLike<number>;
      for (let i = 0; i < labels.length; i++) {
        const v = labels[i] as number;
        if (!Number.isInteger(v) || v < 0 || v >= this.numClasses) {
          throw new LabelRangeError(`Label ${v} at sample ${i} is not an integer in [0, ${this.numClasses}). Fix the labels or numClasses.`);
        }
      }
      this.y = Int32Array.from(labels);
    } else {
      this.targetShape = options.y instanceof tf.Tensor ? options.y.shape.slice(1) : (options.targetShape ?? [1]);
      this.y = Float32Array.from(rawY as ArrayLike<number>);
    }
    const perSample = size(this.targetShape);
    if (this.y.length !== this.size * perSample) {
      throw new ShapeMismatchError(`x has ${this.size} samples but y has ${this.y.length / perSample}; they must match.`);
    }
    const bad = indexOfNonFinite(this.x);
    if (bad >= 0) throw new NonFiniteError(`x holds ${this.x[bad]} at sample ${Math.floor(bad / features)}; remove or impute non-finite values.`);
    if (this.numClasses === undefined) {
      const badY = indexOfNonFinite(this.y as Float32Array);
      if (badY >= 0) throw new NonFiniteError(`y holds ${this.y[badY]} at sample ${Math.floor(badY / perSample)}; regression targets must be finite numbers.`);
    }
  }

  *batches(epoch: number, batchSize: number, shuffle: boolean): Iterator<Batch> {
    if (!Number.isInteger(batchSize) || batchSize < 1) {
      throw new InvalidArgumentError(`Invalid batch size: ${batchSize}. It must be a positive integer.`);
    }
    const order = sampleOrder(this.size, shuffle ? this.seed * 1_000_003 + epoch : undefined);
    const features = size(this.inputShape);
    const perTarget = size(this.targetShape);
    // Where tensors copy their values at creation (wasm), one scratch buffer serves every batch.
    const scratch = backendCopiesData() ? new Float32Array(batchSize * features) : undefined;
    for (let start = 0; start < this.size; start += batchSize) {
      const indices = order.subarray(start, Math.min(start + batchSize, this.size));
      const n = indices.length;
      const xs = scratch ? scratch.subarray(0, n * features) : new Float32Array(n * features);
      const ys = this.numClasses !== undefined ? new Int32Array(n) : new Float32Array(n * perTarget);
      indices.forEach((sample, row) => {
        xs.set(this.x.subarray(sample * features, (sample + 1) * features), row * features);
        ys.set(this.y.subarray(sample * perTarget, (sample + 1) * perTarget), row * perTarget);
      });
      const classification = this.numClasses !== undefined;
      yield {
        x: tf.tensor(xs, [n, ...this.inputShape], 'float32'),
        y: tf.tensor(ys, classification ? [n] : [n, ...this.targetShape], classification ? 'int32' : 'float32'),
        labels: classification ? (ys as Int32Array) : undefined,
        indices: Int32Array.from(indices),
        size: n,
      };
    }
  }
}
