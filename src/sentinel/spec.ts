/**
 * Sentinels as data: a {@link SentinelSpec} says what a sentinel does and where its data comes
 * from, so that a worker thread or child process can build the sentinel itself
 * (`Network.attachPlaced`). Losses are named; the metrics are the defaults (accuracy for
 * classification).
 */
import * as tf from '@tensorflow/tfjs';
import { type DataAccess, providerFromSpec } from '../data/index.js';
import type { SentinelDataSpec, SentinelSpec } from '../protocol/index.js';

export type { SentinelDataSpec, SentinelSpec };
import { InvalidArgumentError } from '../errors.js';
import { lossByName } from './loss.js';
import { Sentinel, type SentinelOptions } from './sentinel.js';

/** The tensors a spec carries (to be disposed by whoever owns the spec when it is not used). */
export function specTensors(spec: SentinelSpec): tf.Tensor[] {
  return spec.data.kind === 'tensors' ? [spec.data.x, spec.data.y] : [];
}

/** The loss a sentinel gets when none is named: softmax cross-entropy for class labels, else mean squared error. */
export function defaultLoss(data: { numClasses?: number }): 'softmaxCrossEntropy' | 'meanSquaredError' {
  return data.numClasses !== undefined ? 'softmaxCrossEntropy' : 'meanSquaredError';
}

/**
 * Builds the sentinel a spec describes, loading its data on this node (paths checked against
 * `access`). The spec's tensors are consumed.
 * @throws InvalidArgumentError for an unknown mode, loss or data kind, a refused path or module,
 *   or a range outside the data; DataFormatError when a data file is missing or malformed; the
 *   provider's and the sentinel's named errors for bad data or options.
 */
export async function sentinelFromSpec(spec: SentinelSpec, access: DataAccess = {}): Promise<Sentinel> {
  try {
    if (!['train', 'validate', 'test'].includes(spec.mode)) {
      throw new InvalidArgumentError(`A placed sentinel's mode must be 'train', 'validate' or 'test', not '${String(spec.mode)}'; run predict sentinels where their outputs are wanted.`);
    }
    if (spec.loss !== undefined) lossByName(spec.loss); // before the data is read
    const data = await providerFromSpec(spec.data, access);
    const loss = lossByName(spec.loss ?? defaultLoss(data));
    // Only the fields a spec has: a spec from another node carries nothing else into the sentinel.
    const { name, mode, batchSize, concurrency, epochs, target, timeLimitMs, batchTimeoutMs, trigger, shuffle, onBatchError } = spec;
    const given = Object.fromEntries(Object.entries({ batchSize, concurrency, epochs, target, timeLimitMs, batchTimeoutMs, trigger, shuffle, onBatchError }).filter(([, v]) => v !== undefined));
    const options: SentinelOptions = { ...given, name, mode, data, loss };
    return new Sentinel(options);
  } finally {
    tf.dispose(specTensors(spec));
  }
}
