/**
 * Splitting and joining tensors along their last axis, the axis of a Dense layer's output units,
 * for gates split by output units (see `Gate`).
 */
import * as tf from '@tensorflow/tfjs';
import { ShapeMismatchError } from '../errors.js';

/**
 * Splits `t` (`[..., Σ sizes]`) into consecutive slices of `sizes[i]` along the last axis; the
 * caller owns the slices and still owns `t`.
 * @throws ShapeMismatchError when the last axis is not `Σ sizes` long.
 */
export function splitLastAxis(t: tf.Tensor, sizes: number[]): tf.Tensor[] {
  const total = sizes.reduce((a, b) => a + b, 0);
  if (t.rank === 0 || t.shape[t.rank - 1] !== total) {
    throw new ShapeMismatchError(`Cannot split a tensor of shape [${t.shape}] into last-axis slices of ${sizes.join(' + ')}.`);
  }
  return tf.split(t, sizes, -1);
}

/** Joins tensors along their last axis (the inverse of {@link splitLastAxis}); the caller owns the result. */
export function concatLastAxis(parts: tf.Tensor[]): tf.Tensor {
  return parts.length === 1 ? tf.clone(parts[0] as tf.Tensor) : tf.concat(parts, -1);
}
