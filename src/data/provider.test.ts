import * as tf from '@tensorflow/tfjs';
import { InvalidArgumentError, NonFiniteError } from '../errors.js';
import { ArrayProvider, sampleOrder } from './provider.js';

describe('sampleOrder', () => {
  test('without a seed it is 0 … n-1 in order', () => {
    expect(Array.from(sampleOrder(5))).toEqual([0, 1, 2, 3, 4]);
  });

  test('with a seed it is a permutation that depends on the seed only', () => {
    const a = sampleOrder(1000, 7);
    expect([...a].sort((x, y) => x - y)).toEqual(Array.from(sampleOrder(1000)));
    expect(Array.from(sampleOrder(1000, 7))).toEqual(Array.from(a));
    expect(Array.from(sampleOrder(1000, 8))).not.toEqual(Array.from(a));
    expect(Array.from(a)).not.toEqual(Array.from(sampleOrder(1000)));
  });
});

describe('ArrayProvider.batches', () => {
  const features = 3;
  const n = 10;
  // Sample i has features [i, i, i] and label i % 4, so every batch says which samples it holds.
  const provider = () =>
    new ArrayProvider({
      x: Float32Array.from({ length: n * features }, (_, k) => Math.floor(k / features)),
      y: Int32Array.from({ length: n }, (_, i) => i % 4),
      inputShape: [features],
      numClasses: 4,
      seed: 3,
    });

  test('an epoch yields every sample once, with its own label, in batches of the given size', () => {
    const before = tf.memory().numTensors;
    const seen: number[] = [];
    const sizes: number[] = [];
    for (const batch of { [Symbol.iterator]: () => provider().batches(0, 4, true) }) {
      const x = batch.x.arraySync() as number[][];
      x.forEach((row, r) => {
        expect(row).toEqual([batch.indices[r], batch.indices[r], batch.indices[r]]);
        expect(batch.labels?.[r]).toBe((batch.indices[r] as number) % 4);
      });
      seen.push(...batch.indices);
      sizes.push(batch.size);
      tf.dispose([batch.x, batch.y]);
    }
    expect(sizes).toEqual([4, 4, 2]);
    expect([...seen].sort((a, b) => a - b)).toEqual(Array.from(sampleOrder(n)));
    expect(tf.memory().numTensors).toBe(before);
  });

  test('the order is reshuffled per epoch and repeats for the same seed and epoch', () => {
    const order = (epoch: number, shuffle = true) => {
      const out: number[] = [];
      for (const batch of { [Symbol.iterator]: () => provider().batches(epoch, 10, shuffle) }) {
        out.push(...batch.indices);
        tf.dispose([batch.x, batch.y]);
      }
      return out;
    };
    expect(order(1)).toEqual(order(1));
    expect(order(1)).not.toEqual(order(2));
    expect(order(1, false)).toEqual(Array.from(sampleOrder(n)));
  });

  test('a non-finite input is a NonFiniteError naming its sample', () => {
    const x = new Float32Array(n * features);
    x[7 * features + 1] = Number.NaN;
    expect(() => new ArrayProvider({ x, y: new Int32Array(n), inputShape: [features], numClasses: 2 })).toThrow(new NonFiniteError('x holds NaN at sample 7; remove or impute non-finite values.'));
  });
});

describe('ArrayProvider checks', () => {
  test('non-finite regression targets and a numClasses that is not a whole number are refused', () => {
    expect(() => new ArrayProvider({ x: [1, 2], y: [0.5, NaN], inputShape: [1] })).toThrow(/y holds NaN at sample 1; regression targets must be finite/);
    expect(() => new ArrayProvider({ x: [1, 2], y: [0, 1], inputShape: [1], numClasses: NaN })).toThrow(InvalidArgumentError);
    expect(() => new ArrayProvider({ x: [1, 2], y: [0, 1], inputShape: [1], numClasses: 2.5 })).toThrow(/numClasses must be a whole number/);
    expect(new ArrayProvider({ x: [1, 2], y: [0, 1], inputShape: [1], numClasses: 2 }).size).toBe(2);
  });
});
