/**
 * MaxPooling2D with a hand-written backward pass, for windows that tile the input (pool size =
 * strides, `valid` padding, channels-last). The input is rearranged so that each window's
 * values lie on the last axis; the gradient goes to the first position (row-major) holding the
 * window's maximum, as in tfjs's `MaxPoolGrad` on the cpu backend, and is rearranged back.
 * This op exists because in tfjs 4.22 the wasm backend's `MaxPoolGrad` kernel returns wrong
 * gradients and its `MaxPoolWithArgmax` wrong indices (see gate/conv.test.ts).
 */
import * as tf from '@tensorflow/tfjs';
import type { LayerOp, OpGradients, Saved } from './ops.js';

interface PoolConfig {
  poolSize: [number, number];
  strides: [number, number];
  padding: 'same' | 'valid';
  dataFormat?: string;
}

/** True when {@link MaxPoolOp} computes this layer exactly; otherwise autograd is used. */
export function maxPoolSupported(layer: tf.layers.Layer): boolean {
  if (layer.getClassName() !== 'MaxPooling2D') return false;
  const c = layer.getConfig() as unknown as PoolConfig;
  return (
    (c.dataFormat ?? 'channelsLast') === 'channelsLast' &&
    c.padding === 'valid' &&
    c.poolSize[0] === c.strides[0] &&
    c.poolSize[1] === c.strides[1]
  );
}

/** A tiling MaxPooling2D layer (see module comment). */
export class MaxPoolOp implements LayerOp {
  readonly weights: tf.LayerVariable[] = [];
  private readonly pool: [number, number];

  constructor(readonly layer: tf.layers.Layer) {
    this.pool = (layer.getConfig() as unknown as PoolConfig).poolSize;
  }

  forward(x: tf.Tensor, _w: tf.Tensor[], training: boolean): { y: tf.Tensor; saved: Saved } {
    const y = tf.maxPool(x as tf.Tensor4D, this.pool, this.pool, 'valid');
    return { y, saved: { tensors: training ? [tf.clone(x)] : [], inputShape: x.shape } };
  }

  backward(dy: tf.Tensor, saved: Saved): OpGradients {
    const x = saved.tensors[0] as tf.Tensor4D;
    const [p, q] = this.pool;
    const dx = tf.tidy(() => {
      const [batch, height, width, channels] = x.shape;
      const outH = Math.floor(height / p);
      const outW = Math.floor(width / q);
      const cropped = height === outH * p && width === outW * q ? x : tf.slice(x, [0, 0, 0, 0], [batch, outH * p, outW * q, channels]);
      // Each window's p·q values on the last axis, in row-major window order: [windows, p·q].
      const windows = tf.reshape(tf.transpose(tf.reshape(cropped, [batch, outH, p, outW, q, channels]), [0, 1, 3, 5, 2, 4]), [-1, p * q]);
      const first = tf.oneHot(tf.argMax(windows, 1), p * q); // argMax takes the first maximum
      const spread = tf.mul(first, tf.reshape(dy, [-1, 1]));
      const back = tf.transpose(tf.reshape(spread, [batch, outH, outW, channels, p, q]), [0, 1, 4, 2, 5, 3]);
      const tiled = tf.reshape(back, [batch, outH * p, outW * q, channels]);
      const extraH = height - outH * p;
      const extraW = width - outW * q;
      return extraH || extraW ? tf.pad(tiled, [[0, 0], [0, extraH], [0, extraW], [0, 0]]) : tiled;
    });
    return { grads: [], dx };
  }
}
