/**
 * Sentinels as data: a {@link SentinelSpec} says what a sentinel does and where its data comes
 * from, so that a worker thread or child process can build the sentinel itself
 * (`Network.attachPlaced`). Losses are named; the metrics are the defaults (accuracy for
 * classification).
 */
import * as tf from '@tensorflow/tfjs';
import { loadMnist, resolveMnistDir } from '../data/index.js';
import { ArrayProvider } from '../data/index.js';
import { InvalidArgumentError } from '../errors.js';
import { LOSSES } from './loss.js';
import { Sentinel, type SentinelOptions } from './sentinel.js';

/**
 * Where a placed sentinel's samples come from.
 * - `mnist`: the node reads MNIST itself from `dir` (default: `MNIST_DIR`, else `data/mnist`),
 *   images `from` (default 0) to `to` (exclusive, default all) of `split`, each pixel in `[0, 1]`
 *   times `scale` (default 1). Nothing large crosses to the node.
 * - `tensors`: inputs `x` (`[samples, ...inputShape]`, float32) and labels `y` (`[samples]`,
 *   int32, with `numClasses`) or targets (`[samples, ...]`, float32). They travel with the
 *   request (transferred to a worker thread, copied to a child process); the node owns them.
 */
export type SentinelDataSpec =
  | { kind: 'mnist'; split: 'train' | 'test'; dir?: string; from?: number; to?: number; scale?: number; seed?: number }
  | { kind: 'tensors'; x: tf.Tensor; y: tf.Tensor; numClasses?: number; seed?: number };

/** A sentinel as data: {@link SentinelOptions} without functions, with its data as a {@link SentinelDataSpec}. */
export interface SentinelSpec {
  name: string;
  /** `train`, `validate` or `test` (a `predict` sentinel returns its outputs, so it runs where they are wanted). */
  mode: 'train' | 'validate' | 'test';
  data: SentinelDataSpec;
  batchSize?: number;
  concurrency?: number;
  epochs?: number;
  /** A name from `LOSSES` (default `'softmaxCrossEntropy'`). */
  loss?: string;
  target?: { metric: string; atLeast?: number; atMost?: number };
  timeLimitMs?: number;
  batchTimeoutMs?: number;
  trigger?: 'auto' | 'manual';
  shuffle?: boolean;
  onBatchError?: 'stop' | 'skip';
}

/** The tensors a spec carries (to be disposed by whoever owns the spec when it is not used). */
export function specTensors(spec: SentinelSpec): tf.Tensor[] {
  return spec.data.kind === 'tensors' ? [spec.data.x, spec.data.y] : [];
}

/**
 * Builds the sentinel a spec describes, loading its data. The spec's tensors are consumed.
 * @throws InvalidArgumentError for an unknown mode, loss or data kind, or an MNIST range outside
 *   the split; DataFormatError when the MNIST files are missing or malformed; the provider's and
 *   the sentinel's named errors for bad data or options.
 */
export async function sentinelFromSpec(spec: SentinelSpec): Promise<Sentinel> {
  try {
    if (!['train', 'validate', 'test'].includes(spec.mode)) {
      throw new InvalidArgumentError(`A placed sentinel's mode must be 'train', 'validate' or 'test', not '${String(spec.mode)}'; run predict sentinels where their outputs are wanted.`);
    }
    const loss = LOSSES[spec.loss ?? 'softmaxCrossEntropy'];
    if (!loss) throw new InvalidArgumentError(`Unknown loss '${spec.loss}'; use one of ${Object.keys(LOSSES).join(', ')}.`);
    const data = await providerFromSpec(spec.data);
    const { data: _data, loss: _loss, ...rest } = spec;
    const options: SentinelOptions = { ...rest, data, loss };
    return new Sentinel(options);
  } finally {
    tf.dispose(specTensors(spec));
  }
}

async function providerFromSpec(data: SentinelDataSpec): Promise<ArrayProvider> {
  if (data.kind === 'tensors') return new ArrayProvider({ x: data.x, y: data.y, numClasses: data.numClasses, seed: data.seed });
  if (data.kind !== 'mnist') throw new InvalidArgumentError(`Unknown sentinel data kind '${String((data as { kind?: unknown }).kind)}'; use 'mnist' or 'tensors'.`);
  const split = await loadMnist(resolveMnistDir(data.dir), data.split);
  const from = data.from ?? 0;
  const to = data.to ?? split.count;
  if (!(Number.isInteger(from) && Number.isInteger(to) && from >= 0 && from < to && to <= split.count)) {
    throw new InvalidArgumentError(`MNIST ${data.split} images ${from}-${to} are not in the split, which has ${split.count}; use 0 <= from < to <= ${split.count}.`);
  }
  const scale = data.scale ?? 1;
  const x = split.images.subarray(from * 784, to * 784).map((v) => v * scale);
  return new ArrayProvider({ x, y: split.labels.subarray(from, to), inputShape: [784], numClasses: 10, seed: data.seed });
}
