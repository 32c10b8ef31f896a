/**
 * The hand-written Conv2D backward against tfjs autograd on the cpu backend (which, unlike
 * wasm, has a Conv2DBackpropFilter kernel), for both paddings, strides 1 and 2, all activations;
 * and the MaxPooling2D backward against autograd on the current backend.
 */
import * as tf from '@tensorflow/tfjs';
import { setupBackend } from '../../test/helpers.js';
import { mulberry32 } from '../data/index.js';
import { ConvOp } from './conv.js';
import { InvalidArgumentError } from '../errors.js';
import { createOp } from './ops.js';
import { MaxPoolOp } from './pool.js';

let backend = '';
beforeAll(async () => {
  backend = await setupBackend();
});

function values(n: number, seed: number): Float32Array {
  const random = mulberry32(seed);
  return Float32Array.from({ length: n }, () => random() * 2 - 1);
}

const cases = [
  { padding: 'same', strides: 1, activation: 'relu', kernel: [3, 3] },
  { padding: 'same', strides: 1, activation: 'linear', kernel: [4, 4] }, // even kernel: asymmetric padding
  { padding: 'valid', strides: 1, activation: 'tanh', kernel: [2, 3] },
  { padding: 'same', strides: 2, activation: 'sigmoid', kernel: [3, 3] },
  { padding: 'valid', strides: 2, activation: 'linear', kernel: [3, 3] },
] as const;

test.each(cases)('conv2d %o: gradients equal tfjs autograd', async ({ padding, strides, activation, kernel: [kh, kw] }) => {
  const xShape = [2, 7, 6, 3];
  const layer = tf.layers.conv2d({ filters: 4, kernelSize: [kh, kw], padding, strides, activation });
  layer.build([null, 7, 6, 3]);
  const op = new ConvOp(layer);
  const x = tf.tensor4d(values(2 * 7 * 6 * 3, 1), xShape as [number, number, number, number]);
  const kernel = tf.tensor4d(values(kh * kw * 3 * 4, 2), [kh, kw, 3, 4]);
  const bias = tf.tensor1d(values(4, 3));
  const { y, saved } = op.forward(x, [kernel, bias], true);
  const dy = tf.tensor(values(y.size, 4), y.shape);
  const ours = op.backward(dy, saved, [kernel, bias], true);
  const got = [ours.dx as tf.Tensor, ...ours.grads].map((t) => Array.from(t.dataSync()));
  const forward = Array.from(y.dataSync());
  tf.dispose([y, dy, x, kernel, bias, ours.dx as tf.Tensor, ...ours.grads, ...saved.tensors]);

  await tf.setBackend('cpu');
  const reference = tf.tidy(() => {
    const f = (a: tf.Tensor4D, k: tf.Tensor4D, b: tf.Tensor1D) => {
      const z = tf.add(tf.conv2d(a, k, strides, padding), b);
      return activation === 'relu' ? tf.relu(z) : activation === 'tanh' ? tf.tanh(z) : activation === 'sigmoid' ? tf.sigmoid(z) : z;
    };
    const args = [tf.tensor4d(values(2 * 7 * 6 * 3, 1), xShape as [number, number, number, number]), tf.tensor4d(values(kh * kw * 3 * 4, 2), [kh, kw, 3, 4]), tf.tensor1d(values(4, 3))] as const;
    const out = f(...args);
    const grads = tf.grads((a, k, b) => f(a as tf.Tensor4D, k as tf.Tensor4D, b as tf.Tensor1D))([...args], tf.tensor(values(out.size, 4), out.shape));
    return { forward: Array.from(out.dataSync()), grads: grads.map((g) => Array.from(g.dataSync())) };
  });
  await tf.setBackend(backend);

  const close = (a: number[], b: number[]) => Math.max(...a.map((v, i) => Math.abs(v - (b[i] as number))));
  expect(close(forward, reference.forward)).toBeLessThan(1e-5);
  got.forEach((g, i) => expect(close(g, reference.grads[i] as number[])).toBeLessThan(1e-4));
});

test.each([
  { poolSize: [2, 2] },
  { poolSize: [3, 2] }, // 7x7 input: a leftover row and column
] as const)('maxPooling2d %o: gradient equals tfjs autograd on the cpu backend', async ({ poolSize }) => {
  const op = new MaxPoolOp(tf.layers.maxPooling2d({ poolSize: [...poolSize] }));
  const shape: [number, number, number, number] = [2, 7, 7, 3];
  const x = tf.tensor4d(values(2 * 7 * 7 * 3, 5), shape);
  const { y, saved } = op.forward(x, [], true);
  const dy = tf.tensor(values(y.size, 6), y.shape);
  const { dx } = op.backward(dy, saved);
  const got = Array.from((dx as tf.Tensor).dataSync());
  const dyShape = y.shape;
  tf.dispose([x, y, dy, dx as tf.Tensor, ...saved.tensors]);

  await tf.setBackend('cpu'); // the wasm MaxPoolGrad kernel is wrong in tfjs 4.22
  const reference = tf.tidy(() => {
    const f = (a: tf.Tensor) => tf.maxPool(a as tf.Tensor4D, [...poolSize], [...poolSize], 'valid');
    return Array.from(tf.grad(f)(tf.tensor4d(values(2 * 7 * 7 * 3, 5), shape), tf.tensor(values(dyShape.reduce((a, b) => a * b), 6), dyShape)).dataSync());
  });
  await tf.setBackend(backend);
  expect(Math.max(...got.map((v, i) => Math.abs(v - (reference[i] as number))))).toBe(0);
});

test('a max-pooling layer whose windows overlap is refused on wasm, where its gradient kernel is wrong', () => {
  const overlapping = tf.layers.maxPooling2d({ poolSize: 3, strides: 1, padding: 'same' });
  const seeds = { nextSeed: () => 1 };
  if (backend === 'wasm') expect(() => createOp(overlapping, 4, seeds)).toThrow(InvalidArgumentError);
  else expect(() => createOp(overlapping, 4, seeds)).not.toThrow();
  expect(() => createOp(tf.layers.maxPooling2d({ poolSize: 2 }), 4, seeds)).not.toThrow();
});
