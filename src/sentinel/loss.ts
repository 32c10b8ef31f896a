/**
 * Losses and metrics a sentinel applies to the last gate's output. Each loss returns its mean
 * value over the batch and its gradient with respect to the predictions, in closed form.
 */
import * as tf from '@tensorflow/tfjs';
import { InvalidArgumentError, LabelRangeError, ShapeMismatchError } from '../errors.js';

/** A loss: mean value over the batch and the gradient of that mean w.r.t. the predictions. */
export interface Loss {
  readonly name: string;
  /** Mean loss of the batch (a number) and `dL/dpredictions` (same shape; caller owns it). */
  compute(predictions: tf.Tensor, targets: tf.Tensor, withGradient: boolean): { value: number; gradient?: tf.Tensor };
}

function checkLabels(logits: tf.Tensor, labels: tf.Tensor): void {
  const [batch, classes] = logits.shape as [number, number];
  if (logits.rank !== 2 || labels.shape[0] !== batch) {
    throw new ShapeMismatchError(`Cross-entropy needs logits [batch, classes] and labels [batch]; got [${logits.shape}] and [${labels.shape}].`);
  }
  if (labels.dtype === 'int32') {
    const values = labels.dataSync();
    for (let i = 0; i < values.length; i++) {
      const v = values[i] as number;
      if (v < 0 || v >= classes) {
        throw new LabelRangeError(`Label ${v} (sample ${i} of the batch) is outside [0, ${classes}); the network outputs ${classes} classes.`);
      }
    }
  }
}

/**
 * Softmax cross-entropy on logits `[batch, classes]` with integer labels `[batch]` (int32) or
 * target distributions `[batch, classes]` (float32). `L = −mean_b Σ_c t_bc log softmax(z)_bc`;
 * `dL/dz = (softmax(z) − t) / batch`.
 *
 * With integer labels and float32 logits (the usual classification case), the loss and its
 * gradient are computed in one pass over the logits read back from the backend, in float64 with
 * the max subtracted before `exp` (log-sum-exp); the gradient is rounded to float32. That is two
 * backend calls where the tfjs ops take about fifteen, whose dispatch costs more than the
 * arithmetic for a `[128, 10]` batch.
 * @throws LabelRangeError for a label outside `[0, classes)`; ShapeMismatchError for bad shapes.
 */
export const softmaxCrossEntropy: Loss = {
  name: 'softmaxCrossEntropy',
  compute(logits, targets, withGradient) {
    checkLabels(logits, targets);
    if (targets.dtype === 'int32' && logits.dtype === 'float32') return labelCrossEntropy(logits as tf.Tensor2D, targets.dataSync() as Int32Array, withGradient);
    return tf.tidy(() => {
      const [batch, classes] = logits.shape as [number, number];
      const t = targets.dtype === 'int32' ? tf.oneHot(targets as tf.Tensor1D, classes) : targets;
      const logProbabilities = tf.logSoftmax(logits);
      const value = tf.neg(tf.div(tf.sum(tf.mul(t, logProbabilities)), batch)).dataSync()[0] as number;
      if (!withGradient) return { value };
      return { value, gradient: tf.div(tf.sub(tf.exp(logProbabilities), t), batch) };
    });
  },
};

/** Softmax cross-entropy of float32 logits `[batch, classes]` against checked integer labels, in one pass. */
function labelCrossEntropy(logits: tf.Tensor2D, labels: Int32Array, withGradient: boolean): { value: number; gradient?: tf.Tensor } {
  const [batch, classes] = logits.shape;
  const z = logits.dataSync() as Float32Array;
  const gradient = withGradient ? new Float32Array(z.length) : undefined;
  let total = 0;
  for (let b = 0; b < batch; b++) {
    const row = b * classes;
    let max = -Infinity;
    for (let c = 0; c < classes; c++) max = Math.max(max, z[row + c] as number);
    let sum = 0;
    for (let c = 0; c < classes; c++) sum += Math.exp((z[row + c] as number) - max);
    const logSum = Math.log(sum);
    const label = labels[b] as number;
    total -= (z[row + label] as number) - max - logSum;
    if (gradient) {
      for (let c = 0; c < classes; c++) gradient[row + c] = Math.exp((z[row + c] as number) - max - logSum) / batch;
      gradient[row + label] = (gradient[row + label] as number) - 1 / batch;
    }
  }
  const value = batch > 0 ? total / batch : NaN;
  return gradient ? { value, gradient: tf.tensor2d(gradient, [batch, classes]) } : { value };
}

/**
 * Mean squared error: `L = mean over all elements of (p − t)²`; `dL/dp = 2 (p − t) / p.size`.
 * @throws ShapeMismatchError when predictions and targets differ in shape.
 */
export const meanSquaredError: Loss = {
  name: 'meanSquaredError',
  compute(predictions, targets, withGradient) {
    if (!tf.util.arraysEqual(predictions.shape, targets.shape)) {
      throw new ShapeMismatchError(`MSE needs predictions and targets of one shape; got [${predictions.shape}] and [${targets.shape}].`);
    }
    return tf.tidy(() => {
      const diff = tf.sub(predictions, targets);
      const value = tf.mean(tf.square(diff)).dataSync()[0] as number;
      if (!withGradient) return { value };
      return { value, gradient: tf.mul(diff, 2 / predictions.size) };
    });
  },
};

/** A metric summed over a batch's samples; the sentinel divides by the epoch's sample count. */
export interface Metric {
  readonly name: string;
  /** Sum of the per-sample metric over the batch. */
  batchSum(predictions: tf.Tensor, targets: tf.Tensor, labels?: Int32Array): number;
}

/**
 * Classification accuracy: the fraction of samples whose arg-max prediction is the label
 * (integer labels or one-hot targets). For one output column, a prediction counts as 1 when
 * it is ≥ 0.5 (binary accuracy, e.g. sigmoid outputs).
 */
export const accuracy: Metric = {
  name: 'accuracy',
  batchSum(predictions, targets, labels) {
    return tf.tidy(() => {
      const columns = predictions.shape[predictions.rank - 1] ?? 1;
      if (columns === 1) {
        const hits = tf.equal(tf.greaterEqual(predictions, 0.5), tf.greaterEqual(targets.reshape(predictions.shape), 0.5));
        return tf.sum(tf.cast(hits, 'int32')).dataSync()[0] as number;
      }
      const predicted = predictions.rank === 2 && predictions.dtype === 'float32' ? argMaxRows(predictions.dataSync() as Float32Array, columns) : tf.argMax(predictions, -1).dataSync();
      const truth = labels ?? (targets.dtype === 'int32' ? targets.dataSync() : tf.argMax(targets, -1).dataSync());
      let hits = 0;
      for (let i = 0; i < predicted.length; i++) if (predicted[i] === truth[i]) hits++;
      return hits;
    });
  },
};

/** The index of each row's largest value (the first one on ties, as `tf.argMax`; NaN never wins). */
function argMaxRows(values: Float32Array, columns: number): Int32Array {
  const rows = values.length / columns;
  const out = new Int32Array(rows);
  for (let r = 0; r < rows; r++) {
    let best = 0;
    for (let c = 1; c < columns; c++) if ((values[r * columns + c] as number) > (values[r * columns + best] as number)) best = c;
    out[r] = best;
  }
  return out;
}

/** The built-in losses by name, for CLIs and configuration files. */
export const LOSSES: Record<string, Loss> = { softmaxCrossEntropy, meanSquaredError };

/**
 * The loss of a name in {@link LOSSES}.
 * @throws InvalidArgumentError for a name that is not there.
 */
export function lossByName(name: string): Loss {
  const loss = Object.hasOwn(LOSSES, name) ? LOSSES[name] : undefined;
  if (!loss) throw new InvalidArgumentError(`Unknown loss '${name}'; use one of ${Object.keys(LOSSES).join(', ')}.`);
  return loss;
}
