/**
 * Losses and metrics a sentinel applies to the last gate's output. Each loss returns its mean
 * value over the batch and its gradient with respect to the predictions, in closed form.
 */
import * as tf from '@tensorflow/tfjs';
import { LabelRangeError, ShapeMismatchError } from '../errors.js';

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
 * @throws LabelRangeError for a label outside `[0, classes)`; ShapeMismatchError for bad shapes.
 */
export const softmaxCrossEntropy: Loss = {
  name: 'softmaxCrossEntropy',
  compute(logits, targets, withGradient) {
    checkLabels(logits, targets);
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
      const predicted = tf.argMax(predictions, -1).dataSync();
      const truth = labels ?? (targets.dtype === 'int32' ? targets.dataSync() : tf.argMax(targets, -1).dataSync());
      let hits = 0;
      for (let i = 0; i < predicted.length; i++) if (predicted[i] === truth[i]) hits++;
      return hits;
    });
  },
};

/** The built-in losses by name, for CLIs and configuration files. */
export const LOSSES: Record<string, Loss> = { softmaxCrossEntropy, meanSquaredError };
