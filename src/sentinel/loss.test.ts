/**
 * The losses and metrics against references: softmax cross-entropy on integer labels (the
 * one-pass path) against the tfjs ops on one-hot targets, also for logits that overflow a naive
 * `exp`, and against finite differences; accuracy's arg-max against `tf.argMax`, ties included.
 */
import * as tf from '@tensorflow/tfjs';
import { setupBackend } from '../../test/helpers.js';
import { LabelRangeError } from '../errors.js';
import { accuracy, softmaxCrossEntropy } from './loss.js';

beforeAll(async () => {
  await setupBackend();
});

const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => Array.from(a).reduce((m, v, i) => Math.max(m, Math.abs(v - (b[i] as number))), 0);

describe('softmaxCrossEntropy', () => {
  test.each([
    ['ordinary logits', 1],
    ['logits of ±1000, which overflow exp', 1000],
  ])('on integer labels equals the tfjs ops on one-hot targets (%s)', (_name, scale) => {
    const before = tf.memory().numTensors;
    const logits = tf.tidy(() => tf.mul(tf.randomNormal([37, 10], 0, 1, 'float32', 3), scale)) as tf.Tensor2D;
    const labels = tf.tensor1d(Array.from({ length: 37 }, (_, i) => (i * 7) % 10), 'int32');
    const oneHot = tf.tidy(() => tf.oneHot(labels, 10).toFloat());
    const fast = softmaxCrossEntropy.compute(logits, labels, true);
    const reference = softmaxCrossEntropy.compute(logits, oneHot, true);
    expect(Number.isFinite(fast.value)).toBe(true);
    expect(Math.abs(fast.value - reference.value)).toBeLessThan(1e-5 * Math.max(1, reference.value));
    expect(fast.gradient?.shape).toEqual([37, 10]);
    expect(maxAbsDiff(fast.gradient?.dataSync() ?? [], reference.gradient?.dataSync() ?? [])).toBeLessThan(1e-7);
    expect(softmaxCrossEntropy.compute(logits, labels, false).gradient).toBeUndefined();
    tf.dispose([logits, labels, oneHot, fast.gradient as tf.Tensor, reference.gradient as tf.Tensor]);
    expect(tf.memory().numTensors).toBe(before);
  });

  test('its gradient matches central finite differences of its value', () => {
    const z = [0.3, -1.2, 2.0, 0.0, 0.7, -0.4];
    const labels = tf.tensor1d([2, 0], 'int32');
    const value = (v: number[]) => tf.tidy(() => softmaxCrossEntropy.compute(tf.tensor2d(v, [2, 3]), labels, false).value);
    const logits = tf.tensor2d(z, [2, 3]);
    const { gradient } = softmaxCrossEntropy.compute(logits, labels, true);
    const h = 1e-3;
    const numeric = z.map((_, i) => (value(z.map((v, j) => (j === i ? v + h : v))) - value(z.map((v, j) => (j === i ? v - h : v)))) / (2 * h));
    expect(maxAbsDiff(gradient?.dataSync() ?? [], numeric)).toBeLessThan(1e-4);
    tf.dispose([labels, logits, gradient as tf.Tensor]);
  });

  test('a label outside the classes is a LabelRangeError naming it', () => {
    const [logits, labels] = [tf.zeros([2, 3]), tf.tensor1d([1, 3], 'int32')];
    expect(() => softmaxCrossEntropy.compute(logits, labels, true)).toThrow(LabelRangeError);
    expect(() => softmaxCrossEntropy.compute(logits, labels, true)).toThrow(/Label 3 \(sample 1/);
    tf.dispose([logits, labels]);
  });
});

test('accuracy counts arg-max hits as tf.argMax does, the first index winning ties', () => {
  const predictions = tf.tensor2d([[0.1, 0.9, 0.9], [2, 1, 0], [0, 0, 0], [-1, -3, -0.5]]);
  const labels = Int32Array.from([1, 0, 0, 0]);
  const expected = tf.argMax(predictions, -1).dataSync();
  expect(Array.from(expected)).toEqual([1, 0, 0, 2]);
  expect(accuracy.batchSum(predictions, tf.tensor1d(labels, 'int32'), labels)).toBe(3);
  predictions.dispose();
});
