/**
 * Conv2D with a hand-written backward pass. The wasm backend has no `Conv2DBackpropFilter`
 * kernel (so tfjs autograd cannot train a conv layer there) and a slow `Conv2DBackpropInput`.
 * With stride 1 both gradients are forward convolutions, which run on the fast kernel:
 * the filter gradient correlates the input with `dz` (batch and channel axes swapped), and the
 * input gradient correlates the padded `dz` with the flipped kernel. With larger strides the
 * filter gradient is `patchesᵀ · dz` (im2col by strided slices) and the input gradient uses
 * `conv2dTranspose`. Supports channels-last, `same`/`valid` padding, dilation 1.
 */
import * as tf from '@tensorflow/tfjs';
import { transpose2d } from '../kernels/index.js';
import type { LayerOp, OpGradients, Saved } from './ops.js';

interface ConvConfig {
  kernelSize: number[];
  strides: number[];
  padding: 'same' | 'valid';
  dataFormat?: string;
  dilationRate?: number | number[];
  activation?: string;
  useBias?: boolean;
}

const ACTIVATIONS = new Set(['linear', 'relu', 'sigmoid', 'tanh']);

/** True when {@link ConvOp} computes this layer exactly; otherwise autograd is used. */
export function convSupported(layer: tf.layers.Layer): boolean {
  if (layer.getClassName() !== 'Conv2D') return false;
  const c = layer.getConfig() as unknown as ConvConfig;
  const dilation = Array.isArray(c.dilationRate) ? c.dilationRate : [c.dilationRate ?? 1];
  return (
    (c.dataFormat ?? 'channelsLast') === 'channelsLast' &&
    dilation.every((d) => d === 1) &&
    (c.padding === 'same' || c.padding === 'valid') &&
    ACTIVATIONS.has(c.activation ?? 'linear')
  );
}

/** A Conv2D layer (see module comment). */
export class ConvOp implements LayerOp {
  readonly weights: tf.LayerVariable[];
  private readonly config: ConvConfig;

  constructor(readonly layer: tf.layers.Layer) {
    this.weights = layer.trainableWeights;
    this.config = layer.getConfig() as unknown as ConvConfig;
  }

  private get strides(): [number, number] {
    return [this.config.strides[0] ?? 1, this.config.strides[1] ?? 1];
  }

  forward(x: tf.Tensor, w: tf.Tensor[], training: boolean): { y: tf.Tensor; saved: Saved } {
    return tf.tidy(() => {
      let z: tf.Tensor = tf.conv2d(x as tf.Tensor4D, w[0] as tf.Tensor4D, this.strides, this.config.padding);
      if (w[1]) z = tf.add(z, w[1]);
      const act = this.config.activation ?? 'linear';
      const y = act === 'relu' ? tf.relu(z) : act === 'sigmoid' ? tf.sigmoid(z) : act === 'tanh' ? tf.tanh(z) : z;
      const tensors = training ? [tf.clone(x), tf.clone(y)] : [];
      return { y, saved: { tensors, inputShape: x.shape } };
    });
  }

  backward(dy: tf.Tensor, saved: Saved, w: tf.Tensor[], needDx: boolean): OpGradients {
    return tf.tidy(() => {
      const [x, y] = saved.tensors as [tf.Tensor4D, tf.Tensor4D];
      const act = this.config.activation ?? 'linear';
      let dz = dy as tf.Tensor4D;
      if (act === 'relu') dz = tf.mul(dy, tf.step(y));
      else if (act === 'sigmoid') dz = tf.mul(dy, tf.mul(y, tf.sub(1, y)));
      else if (act === 'tanh') dz = tf.mul(dy, tf.sub(1, tf.square(y)));
      const kernel = w[0] as tf.Tensor4D;
      const unitStride = this.strides[0] === 1 && this.strides[1] === 1;
      const grads: tf.Tensor[] = [unitStride ? this.filterGradient(x, dz, kernel) : this.filterGradientIm2col(x, dz, kernel)];
      if (w[1]) grads.push(tf.sum(dz, [0, 1, 2]));
      if (!needDx) return { grads };
      const dx = unitStride ? this.inputGradient(dz, kernel, x.shape) : tf.conv2dTranspose(dz, kernel, x.shape, this.strides, this.config.padding);
      return { grads, dx };
    });
  }

  /** Padding before the first row and column that the forward pass used (stride 1). */
  private leadingPad(kh: number, kw: number): [number, number] {
    return this.config.padding === 'same' ? [Math.floor((kh - 1) / 2), Math.floor((kw - 1) / 2)] : [0, 0];
  }

  /** Stride 1: `dW[a,b,c,f] = Σ_{n,i,j} x[n,i+a,j+b,c] dz[n,i,j,f]`, a convolution over the batch axis. */
  private filterGradient(x: tf.Tensor4D, dz: tf.Tensor4D, kernel: tf.Tensor4D): tf.Tensor4D {
    const [kh, kw] = kernel.shape;
    const [top, left] = this.leadingPad(kh, kw);
    const [, h, wd] = x.shape;
    const [, outH, outW] = dz.shape;
    const padded = this.config.padding === 'same' ? tf.pad(x, [[0, 0], [top, outH + kh - 1 - h - top], [left, outW + kw - 1 - wd - left], [0, 0]]) : x;
    // x as [channels, H, W, batch] correlated with dz as a [outH, outW, batch, filters] kernel.
    const correlation = tf.conv2d(tf.transpose(padded, [3, 1, 2, 0]), tf.transpose(dz, [1, 2, 0, 3]), 1, 'valid');
    return tf.transpose(correlation, [1, 2, 0, 3]);
  }

  /** Stride 1: `dx` is `dz`, padded to full size, correlated with the flipped, transposed kernel. */
  private inputGradient(dz: tf.Tensor4D, kernel: tf.Tensor4D, xShape: number[]): tf.Tensor4D {
    const [kh, kw] = kernel.shape;
    const [top, left] = this.leadingPad(kh, kw);
    const [, h, wd] = xShape as [number, number, number, number];
    const [, outH, outW] = dz.shape;
    const padTop = kh - 1 - top;
    const padLeft = kw - 1 - left;
    const padded = tf.pad(dz, [[0, 0], [padTop, h + kh - 1 - outH - padTop], [padLeft, wd + kw - 1 - outW - padLeft], [0, 0]]);
    const flipped = tf.transpose(tf.reverse(kernel, [0, 1]), [0, 1, 3, 2]);
    return tf.conv2d(padded, flipped, 1, 'valid');
  }

  /** Any stride: `dW = patchesᵀ · dz` with im2col patches. */
  private filterGradientIm2col(x: tf.Tensor4D, dz: tf.Tensor4D, kernel: tf.Tensor4D): tf.Tensor4D {
    const [kh, kw, channels, filters] = kernel.shape;
    const [, outH, outW] = dz.shape;
    const patches = this.patches(x, kh, kw, outH, outW);
    const rows = dz.shape[0] * outH * outW;
    const dW = tf.matMul(transpose2d(tf.reshape(patches, [rows, kh * kw * channels]) as tf.Tensor2D), tf.reshape(dz, [rows, filters]) as tf.Tensor2D);
    return tf.reshape(dW, kernel.shape);
  }

  /** im2col: `[batch, outH, outW, kh·kw·channels]`, channel order (kh, kw, c) like the kernel. */
  private patches(x: tf.Tensor4D, kh: number, kw: number, outH: number, outW: number): tf.Tensor4D {
    const [sh, sw] = this.strides;
    let padded = x;
    if (this.config.padding === 'same') {
      const [, h, wd] = x.shape;
      const padH = Math.max((outH - 1) * sh + kh - h, 0);
      const padW = Math.max((outW - 1) * sw + kw - wd, 0);
      const top = Math.floor(padH / 2);
      const left = Math.floor(padW / 2);
      padded = tf.pad(x, [[0, 0], [top, padH - top], [left, padW - left], [0, 0]]);
    }
    const [batch, , , channels] = padded.shape;
    const slices: tf.Tensor4D[] = [];
    for (let i = 0; i < kh; i++) {
      for (let j = 0; j < kw; j++) {
        const end = [batch, i + (outH - 1) * sh + 1, j + (outW - 1) * sw + 1, channels];
        slices.push(
          sh === 1 && sw === 1
            ? tf.slice(padded, [0, i, j, 0], [batch, outH, outW, channels])
            : (tf.stridedSlice(padded, [0, i, j, 0], end, [1, sh, sw, 1]) as tf.Tensor4D),
        );
      }
    }
    return tf.concat(slices, 3);
  }
}
