/**
 * Forward and backward of one tfjs-layers layer with explicit weights, so that a gate can run a
 * batch's backward at the weight version its forward used (weight stashing). Dense, Dropout,
 * Flatten and Reshape (here), Conv2D (`conv.ts`) and MaxPooling2D (`pool.ts`) have hand-written
 * backward passes that reuse the forward activations and
 * use plain `matMul` with explicit transposes (on wasm, `matMul` with `transposeA/B` falls back to
 * a slow scalar loop; the transposes run as SIMD kernels, `transpose2d`). Every other layer falls back to tfjs autograd on that layer alone,
 * recomputing its forward at the stashed weights.
 */
import * as tf from '@tensorflow/tfjs';
import { InvalidArgumentError } from '../errors.js';
import { columnSum, sparseMatMul, transpose2d } from '../kernels/index.js';
import { ConvOp, convSupported } from './conv.js';
import { MaxPoolOp, maxPoolSupported } from './pool.js';

/** What a forward pass keeps for its backward pass; owned by the gate until backward or detach. */
export interface Saved {
  tensors: tf.Tensor[];
  inputShape: number[];
}

/** Result of {@link LayerOp.backward}; `dx` is absent when the caller did not ask for it. */
export interface OpGradients {
  dx?: tf.Tensor;
  grads: tf.Tensor[];
}

/** One layer's computation as a function of explicit trainable weights. */
export interface LayerOp {
  readonly layer: tf.layers.Layer;
  /** The layer's trainable weights, in `layer.trainableWeights` order. */
  readonly weights: tf.LayerVariable[];
  /** Computes the layer on `x` with weights `w`; in training mode, keeps what backward needs. */
  forward(x: tf.Tensor, w: tf.Tensor[], training: boolean): { y: tf.Tensor; saved: Saved };
  /** Gradients with respect to the weights `w` (the version forward used) and, if asked, `x`. */
  backward(dy: tf.Tensor, saved: Saved, w: tf.Tensor[], needDx: boolean): OpGradients;
}

/** Draws dropout masks from a seeded stream; each call advances the seed. */
export interface SeedSource {
  nextSeed(): number;
}

const HANDWRITTEN_ACTIVATIONS = new Set(['linear', 'relu', 'sigmoid', 'tanh']);

function activationName(layer: tf.layers.Layer): string {
  const activation = (layer.getConfig() as { activation?: unknown }).activation;
  return typeof activation === 'string' ? activation : 'custom';
}

/** `a · b` for 2-D tensors: sparse when `a` is mostly zeros (`sparseMatMul`), else tfjs `matMul`. */
function product(a: tf.Tensor2D, b: tf.Tensor2D): tf.Tensor2D {
  return sparseMatMul(a, b) ?? tf.matMul(a, b);
}

/** `a · bᵀ` for 2-D tensors without the slow transposed `matMul` path. */
function matMulTransposeB(a: tf.Tensor2D, b: tf.Tensor2D): tf.Tensor2D {
  const sparse = sparseMatMul(a, () => transpose2d(b));
  if (sparse) return sparse;
  const [rows, inner] = a.shape;
  const cols = b.shape[0];
  // Transpose whichever side moves fewer elements: b, or a and the result.
  if (cols * inner <= rows * (inner + cols)) return tf.matMul(a, transpose2d(b));
  return transpose2d(tf.matMul(b, transpose2d(a)));
}

class DenseOp implements LayerOp {
  readonly weights: tf.LayerVariable[];
  private readonly activation: string;
  private readonly useBias: boolean;

  constructor(readonly layer: tf.layers.Layer) {
    this.weights = layer.trainableWeights;
    this.activation = activationName(layer);
    this.useBias = this.weights.length === 2;
  }

  forward(x: tf.Tensor, w: tf.Tensor[], training: boolean): { y: tf.Tensor; saved: Saved } {
    return tf.tidy(() => {
      let z: tf.Tensor = product(x as tf.Tensor2D, w[0] as tf.Tensor2D);
      if (this.useBias) z = tf.add(z, w[1] as tf.Tensor);
      let y = z;
      if (this.activation === 'relu') y = tf.relu(z);
      else if (this.activation === 'sigmoid') y = tf.sigmoid(z);
      else if (this.activation === 'tanh') y = tf.tanh(z);
      // Saved tensors are owned copies: x belongs to the caller and y travels downstream.
      const tensors = training ? (this.activation === 'linear' ? [tf.clone(x)] : [tf.clone(x), tf.clone(y)]) : [];
      return { y, saved: { tensors, inputShape: x.shape } };
    });
  }

  backward(dy: tf.Tensor, saved: Saved, w: tf.Tensor[], needDx: boolean): OpGradients {
    return tf.tidy(() => {
      const [x, y] = saved.tensors as [tf.Tensor2D, tf.Tensor2D | undefined];
      let dz = dy as tf.Tensor2D;
      if (this.activation === 'relu') dz = tf.mul(dy, tf.step(y as tf.Tensor2D));
      else if (this.activation === 'sigmoid') dz = tf.mul(dy, tf.mul(y as tf.Tensor2D, tf.sub(1, y as tf.Tensor2D)));
      else if (this.activation === 'tanh') dz = tf.mul(dy, tf.sub(1, tf.square(y as tf.Tensor2D)));
      const grads: tf.Tensor[] = [product(transpose2d(x), dz)];
      if (this.useBias) grads.push(columnSum(dz));
      return needDx ? { grads, dx: matMulTransposeB(dz, w[0] as tf.Tensor2D) } : { grads };
    });
  }
}

class DropoutOp implements LayerOp {
  readonly weights: tf.LayerVariable[] = [];
  private readonly rate: number;

  constructor(
    readonly layer: tf.layers.Layer,
    private readonly seeds: SeedSource,
  ) {
    this.rate = (layer.getConfig() as { rate: number }).rate;
  }

  forward(x: tf.Tensor, _w: tf.Tensor[], training: boolean): { y: tf.Tensor; saved: Saved } {
    if (!training || this.rate === 0) return { y: tf.clone(x), saved: { tensors: [], inputShape: x.shape } };
    return tf.tidy(() => {
      const keep = 1 - this.rate;
      const uniform = tf.randomUniform(x.shape, 0, 1, 'float32', this.seeds.nextSeed());
      const mask = tf.mul(tf.step(tf.sub(uniform, this.rate)), 1 / keep);
      return { y: tf.mul(x, mask), saved: { tensors: [mask], inputShape: x.shape } };
    });
  }

  backward(dy: tf.Tensor, saved: Saved): OpGradients {
    const mask = saved.tensors[0];
    return { grads: [], dx: mask ? tf.mul(dy, mask) : tf.clone(dy) };
  }
}

class ReshapeOp implements LayerOp {
  readonly weights: tf.LayerVariable[] = [];

  constructor(readonly layer: tf.layers.Layer) {}

  forward(x: tf.Tensor): { y: tf.Tensor; saved: Saved } {
    const outputShape = this.layer.computeOutputShape(x.shape) as number[];
    return { y: tf.reshape(x, outputShape), saved: { tensors: [], inputShape: x.shape } };
  }

  backward(dy: tf.Tensor, saved: Saved): OpGradients {
    return { grads: [], dx: tf.reshape(dy, saved.inputShape) };
  }
}

/** Any layer: forward through `layer.apply`, backward through tfjs autograd at stashed weights. */
class AutogradOp implements LayerOp {
  readonly weights: tf.LayerVariable[];

  constructor(readonly layer: tf.layers.Layer) {
    this.weights = layer.trainableWeights;
  }

  /** Runs `fn` with the layer's variables holding `w`, then restores their values. */
  private withWeights<T>(w: tf.Tensor[], fn: () => T): T {
    const current = this.weights.map((v) => v.read());
    const same = w.every((t, i) => t.dataId === current[i]?.dataId);
    if (same) return fn();
    const restore = current.map((t) => tf.keep(tf.clone(t)));
    this.weights.forEach((v, i) => v.write(w[i] as tf.Tensor));
    try {
      return fn();
    } finally {
      this.weights.forEach((v, i) => v.write(restore[i] as tf.Tensor));
      restore.forEach((t) => t.dispose());
    }
  }

  forward(x: tf.Tensor, w: tf.Tensor[], training: boolean): { y: tf.Tensor; saved: Saved } {
    const y = this.withWeights(w, () => tf.tidy(() => this.layer.apply(x, { training }) as tf.Tensor));
    return { y, saved: { tensors: training ? [tf.clone(x)] : [], inputShape: x.shape } };
  }

  backward(dy: tf.Tensor, saved: Saved, w: tf.Tensor[], needDx: boolean): OpGradients {
    const x = saved.tensors[0] as tf.Tensor;
    // Recomputing the forward in training mode would update moving statistics (batch norm) a
    // second time for this batch: keep their values and put them back afterwards.
    const statistics = this.layer.nonTrainableWeights.map((v) => tf.keep(tf.clone(v.read())));
    return this.withWeights(w, () => {
      const variables = this.weights.map((v) => v.read());
      let result: { value: tf.Tensor; grads: (tf.Tensor | null)[] };
      try {
        result = tf.engine().gradients(() => this.layer.apply(x, { training: true }) as tf.Tensor, [x, ...variables], dy, true);
      } finally {
        this.layer.nonTrainableWeights.forEach((v, i) => v.write(statistics[i] as tf.Tensor));
        statistics.forEach((t) => t.dispose());
      }
      const { value, grads } = result;
      value.dispose();
      const [dx, ...weightGrads] = grads;
      const filled = weightGrads.map((g, i) => g ?? tf.zerosLike(variables[i] as tf.Tensor));
      if (!needDx) dx?.dispose();
      return needDx ? { dx: dx ?? tf.zerosLike(x), grads: filled } : { grads: filled };
    });
  }
}

/**
 * Chooses the fastest exact implementation for a built layer.
 * @param inputRank rank of the layer's input including the batch axis.
 */
export function createOp(layer: tf.layers.Layer, inputRank: number, seeds: SeedSource): LayerOp {
  const kind = layer.getClassName();
  if (kind === 'Dense' && inputRank === 2 && HANDWRITTEN_ACTIVATIONS.has(activationName(layer))) {
    return new DenseOp(layer);
  }
  if (convSupported(layer)) return new ConvOp(layer);
  if (maxPoolSupported(layer)) return new MaxPoolOp(layer);
  if ((kind === 'MaxPooling2D' || kind === 'MaxPooling1D') && tf.getBackend() === 'wasm') {
    // tfjs 4.22's wasm MaxPoolGrad kernel returns wrong gradients (see gate/conv.test.ts).
    throw new InvalidArgumentError(
      `${kind} '${layer.name}' cannot train on the wasm backend unless its windows tile the input (poolSize equal to strides, padding 'valid'): the wasm MaxPoolGrad kernel of tfjs 4.22 is wrong. Use such a pooling layer, or the cpu or tensorflow backend.`,
    );
  }
  if (kind === 'Dropout') return new DropoutOp(layer, seeds);
  if (kind === 'Flatten' || kind === 'Reshape') return new ReshapeOp(layer);
  return new AutogradOp(layer);
}
