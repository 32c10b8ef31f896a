/**
 * The fused wasm kernels against the tfjs-op path of the same optimizers: bit-identical weights
 * and slots for every variant, stale and fresh batches, a size that leaves a scalar tail; no
 * tensor leaks; the fallback where the kernels are not loaded.
 */
import * as tf from '@tensorflow/tfjs';
import { setupBackend } from '../../test/helpers.js';
import { InvalidArgumentError } from '../errors.js';
import { allFinite, columnSum, fusedKernelsActive, fusedModuleText, loadFusedKernels, sparseMatMul, transpose2d, useFusedKernels } from './fused.js';
import type { Optimizer } from '../optim/index.js';
import { Adam, DCASGD, SGD } from '../optim/index.js';

let backend = '';
beforeAll(async () => {
  backend = await setupBackend();
});
afterEach(() => useFusedKernels(true));

const OPTIMIZERS: [string, () => Optimizer][] = [
  ['DC-ASGD-a with momentum', () => new DCASGD({ learningRate: 0.02, momentum: 0.9 })],
  ['DC-ASGD-a', () => new DCASGD({ learningRate: 0.05 })],
  ['DC-ASGD-c with momentum', () => new DCASGD({ learningRate: 0.05, variant: 'constant', lambda: 0.5, momentum: 0.5 })],
  ['DC-ASGD-c', () => new DCASGD({ learningRate: 0.05, variant: 'constant', lambda: 0.5 })],
  ['SGD with momentum', () => new SGD({ learningRate: 0.1, momentum: 0.9 })],
  ['SGD', () => new SGD({ learningRate: 0.1 })],
  ['Adam', () => new Adam({ learningRate: 0.01 })],
];

/**
 * Six updates of a [37, 13] weight (481 elements: 120 four-lane steps and a scalar tail of 1)
 * and a [7] bias; odd steps use the previous version as forward weights (a stale batch), even
 * steps the current one. Returns the final weights and optimizer state as arrays.
 */
function train(make: () => Optimizer, fused: boolean): { values: Float32Array[]; leaked: number } {
  useFusedKernels(fused);
  const before = tf.memory().numTensors;
  const optimizer = make();
  let params = [tf.randomNormal([37, 13], 0, 1, 'float32', 1), tf.randomNormal([7], 0, 1, 'float32', 2)];
  let previous = params.map((p) => tf.clone(p));
  for (let step = 0; step < 6; step++) {
    const grads = params.map((p, i) => tf.randomNormal(p.shape, 0, 0.1, 'float32', 100 + 10 * step + i));
    const next = optimizer.update(params, grads, step % 2 ? previous : params);
    tf.dispose([...previous, ...grads]);
    previous = params;
    params = next;
  }
  const state = optimizer.getState();
  const values = [...params, ...state.map((s) => s.tensor)].map((t) => t.dataSync() as Float32Array);
  tf.dispose([...previous, ...params, ...state.map((s) => s.tensor)]);
  optimizer.dispose();
  return { values, leaked: tf.memory().numTensors - before };
}

describe('fused optimizer kernels', () => {
  test('are loaded on the wasm backend', () => {
    if (backend !== 'wasm') return;
    expect(fusedKernelsActive()).toBe(true);
    useFusedKernels(false);
    expect(fusedKernelsActive()).toBe(false);
  });

  test.each(OPTIMIZERS)('%s: bit-identical to the tfjs ops, and frees what it replaces', (_name, make) => {
    const reference = train(make, false);
    const fused = train(make, true);
    expect(fused.values.length).toBe(reference.values.length);
    fused.values.forEach((v, i) => {
      const r = reference.values[i] as Float32Array;
      expect(v.length).toBe(r.length);
      expect(Array.from(v)).toEqual(Array.from(r));
    });
    expect(fused.leaked).toBe(0);
    expect(reference.leaked).toBe(0);
  });

  test.each([
    ['DC-ASGD', () => new DCASGD({ learningRate: 0.02, momentum: 0.9 })],
    ['Adam', () => new Adam({ learningRate: 0.01 })],
  ] as [string, () => Optimizer][])('replace every elementwise tfjs kernel of a %s update on wasm', async (_name, make) => {
    if (backend !== 'wasm') return;
    const optimizer = make();
    const [w, old, g] = [tf.randomNormal([50, 10], 0, 1, 'float32', 1), tf.randomNormal([50, 10], 0, 1, 'float32', 2), tf.randomNormal([50, 10], 0, 1, 'float32', 3)];
    tf.dispose(optimizer.update([w], [g], [old])); // creates the slots
    const kernels = async (fused: boolean) => {
      useFusedKernels(fused);
      const profile = await tf.profile(() => optimizer.update([w], [g], [old])[0] as tf.Tensor);
      tf.dispose(profile.result as tf.Tensor);
      return profile.kernels.length;
    };
    expect(await kernels(false)).toBeGreaterThan(5);
    expect(await kernels(true)).toBe(0);
    tf.dispose([w, old, g]);
    optimizer.dispose();
  });

  test('do not leak tensors or bytes over many updates', () => {
    const optimizer = new DCASGD({ learningRate: 0.02, momentum: 0.9 });
    let w = tf.randomNormal([64, 33]);
    let old = tf.clone(w);
    const g = tf.randomNormal([64, 33], 0, 0.1);
    const step = () => {
      const [next] = optimizer.update([w], [g], [old]) as [tf.Tensor];
      old.dispose();
      old = w;
      w = next;
    };
    for (let i = 0; i < 3; i++) step(); // slots created
    const before = tf.memory();
    for (let i = 0; i < 20; i++) step();
    expect(tf.memory().numTensors).toBe(before.numTensors);
    expect(tf.memory().numBytes).toBe(before.numBytes);
    tf.dispose([w, old, g]);
    optimizer.dispose();
  });

  test('leave the tfjs path in charge on a backend without them', async () => {
    await tf.setBackend('cpu');
    try {
      expect(fusedKernelsActive()).toBe(false);
      expect(await loadFusedKernels()).toBe(false);
      const optimizer = new DCASGD({ learningRate: 0.1, momentum: 0.5 });
      const [w] = optimizer.update([tf.tensor1d([1, 2])], [tf.tensor1d([0.5, -1])]) as [tf.Tensor];
      // Fresh batch: g̃ = g; v = g; w − 0.1·v.
      const [w0, w1] = w.dataSync();
      expect(w0).toBeCloseTo(0.95, 6);
      expect(w1).toBeCloseTo(2.1, 6);
      w.dispose();
      optimizer.dispose();
    } finally {
      await tf.setBackend(backend);
    }
  });

  test.each([true, false])('allFinite (fused kernels on: %s) finds NaN and ±Infinity anywhere, also in the scalar tail', (fused) => {
    useFusedKernels(fused);
    for (const size of [1, 3, 4, 5, 17, 1000]) {
      const values = new Float32Array(size).map((_, i) => i - size / 2);
      const clean = tf.tensor1d(values);
      expect(allFinite(clean)).toBe(true);
      clean.dispose();
      for (const bad of [NaN, Infinity, -Infinity]) {
        for (const at of [0, size - 1, size >> 1]) {
          const copy = values.slice();
          copy[at] = bad;
          const t = tf.tensor1d(copy);
          expect(allFinite(t)).toBe(false);
          t.dispose();
        }
      }
    }
    // The largest finite float32 and denormals are finite.
    const edge = tf.tensor1d([3.4028234663852886e38, -3.4028234663852886e38, 1e-45, -0]);
    expect(allFinite(edge)).toBe(true);
    edge.dispose();
  });

  test.each([true, false])('transpose2d (fused kernels on: %s) equals tf.transpose for every edge case of the 4 x 4 blocks', (fused) => {
    useFusedKernels(fused);
    const before = tf.memory().numTensors;
    for (const [rows, cols] of [[1, 1], [1, 6], [6, 1], [4, 4], [5, 7], [8, 3], [3, 8], [13, 17], [512, 128], [128, 784]] as const) {
      const x = tf.randomNormal([rows, cols], 0, 1, 'float32', rows * 1000 + cols) as tf.Tensor2D;
      const [ours, reference] = [transpose2d(x), tf.transpose(x)];
      expect(ours.shape).toEqual([cols, rows]);
      expect(Array.from(ours.dataSync())).toEqual(Array.from(reference.dataSync()));
      tf.dispose([x, ours, reference]);
    }
    expect(tf.memory().numTensors).toBe(before);
  });

  test('module text declares every kernel once', () => {
    const text = fusedModuleText();
    const names = [...text.matchAll(/\(export "([a-z_]+)"\)/g)].map((m) => m[1]);
    expect(names.sort()).toEqual(
      ['adam', 'all_finite', 'col_sum', 'compress_rows', 'count_nonzero', 'spmm', 'dc_adaptive', 'dc_adaptive_momentum', 'dc_adaptive_stale', 'dc_adaptive_stale_momentum', 'dc_constant', 'dc_constant_momentum', 'sgd', 'sgd_momentum', 'transpose'].sort(),
    );
  });
});

/** A `[rows, cols]` matrix of normal values, each kept with probability `density`; row `emptyRow` all zeros. */
function sparseMatrix(rows: number, cols: number, density: number, seed: number, emptyRow = -1): tf.Tensor2D {
  return tf.tidy(() => {
    const keep = tf.cast(tf.less(tf.randomUniform([rows, cols], 0, 1, 'float32', seed + 1), density), 'float32');
    const rowMask = tf.cast(tf.notEqual(tf.range(0, rows), emptyRow), 'float32').reshape([rows, 1]);
    return tf.mul(tf.mul(tf.randomNormal([rows, cols], 0, 1, 'float32', seed), keep), rowMask) as tf.Tensor2D;
  });
}

describe('sparse products', () => {
  // n = 70 takes two 32-column blocks, one 4-column block and two single columns; k = 37 leaves
  // a 1-value tail after the 4-value blocks that compress_rows tests at once.
  test.each([
    [1, 1, 1, 1],
    [5, 37, 3, 0.3],
    [9, 8, 4, 0.5],
    [16, 37, 70, 0.25],
    [128, 784, 512, 0.19],
    [33, 64, 10, 0],
  ])('[%i, %i] · [%i columns] at density %f equals tf.matMul, with an all-zero row, and frees its scratch', (m, k, n, density) => {
    if (backend !== 'wasm') return;
    const a = sparseMatrix(m, k, density, m * 100 + k, m > 2 ? 2 : -1);
    const b = tf.randomNormal([k, n], 0, 1, 'float32', 5) as tf.Tensor2D;
    const reference = tf.matMul(a, b);
    const before = tf.memory();
    const ours = sparseMatMul(a, b, 1) as tf.Tensor2D;
    expect(tf.memory().numTensors).toBe(before.numTensors + 1);
    expect(tf.memory().numBytes).toBe(before.numBytes + 4 * m * n);
    expect(ours.shape).toEqual([m, n]);
    const [x, y] = [ours.dataSync(), reference.dataSync()];
    let worst = 0; // largest error relative to max(1, |reference|)
    for (let i = 0; i < x.length; i++) worst = Math.max(worst, Math.abs((x[i] as number) - (y[i] as number)) / Math.max(1, Math.abs(y[i] as number)));
    expect(worst).toBeLessThanOrEqual(1e-5);
    tf.dispose([a, b, reference, ours]);
  });

  test('leaves dense operands to the caller, without calling a lazy right-hand side', () => {
    const a = sparseMatrix(16, 32, 0.9, 1);
    let called = 0;
    const lazy = () => {
      called++;
      return tf.ones([32, 8]) as tf.Tensor2D;
    };
    const before = tf.memory().numTensors;
    expect(sparseMatMul(a, lazy, 0.5)).toBeUndefined();
    expect(called).toBe(0);
    expect(tf.memory().numTensors).toBe(before);
    if (backend === 'wasm') {
      // Sparse enough: the lazy operand is built, used and disposed.
      const product = sparseMatMul(a, lazy, 1) as tf.Tensor2D;
      expect(called).toBe(1);
      expect(tf.memory().numTensors).toBe(before + 1);
      product.dispose();
    }
    a.dispose();
  });

  test('names mismatched inner dimensions', () => {
    if (backend !== 'wasm') return;
    const [a, b] = [tf.zeros([4, 5]) as tf.Tensor2D, tf.ones([6, 3]) as tf.Tensor2D];
    const before = tf.memory().numTensors;
    expect(() => sparseMatMul(a, () => tf.ones([6, 3]) as tf.Tensor2D)).toThrow(InvalidArgumentError);
    expect(() => sparseMatMul(a, b)).toThrow(/\[4,5\] × \[6,3\] is not a product of matrices with equal inner dimensions/);
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([a, b]);
  });

  test('refuse operands that are not matrices, so that no kernel reads past a tensor\'s own buffer', () => {
    const [cube, vector, m] = [tf.zeros([2, 3, 4]), tf.ones([5]), tf.ones([3, 4])];
    const before = tf.memory().numTensors;
    expect(() => transpose2d(cube as never)).toThrow(/transpose2d takes a matrix \(\[rows, cols\]\); got shape \[2,3,4\]/);
    expect(() => columnSum(vector as never)).toThrow(InvalidArgumentError);
    expect(() => sparseMatMul(cube as never, m as tf.Tensor2D, 1)).toThrow(InvalidArgumentError);
    if (backend === 'wasm') expect(() => sparseMatMul(m as tf.Tensor2D, () => tf.ones([4, 2, 2]) as never, 1)).toThrow(/not a product of matrices/);
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([cube, vector, m]);
  });

  test('counts NaN as non-zero and carries it into the product', () => {
    if (backend !== 'wasm') return;
    const a = tf.tensor2d([[0, NaN, 0, 0, 0]]);
    const b = tf.ones([5, 3]) as tf.Tensor2D;
    const product = sparseMatMul(a, b, 0.5) as tf.Tensor2D;
    expect(Array.from(product.dataSync()).every(Number.isNaN)).toBe(true);
    tf.dispose([a, b, product]);
  });

  test('is off where the kernels are (fused kernels off: the caller multiplies densely)', () => {
    useFusedKernels(false);
    const [a, b] = [tf.zeros([4, 4]) as tf.Tensor2D, tf.ones([4, 4]) as tf.Tensor2D];
    expect(sparseMatMul(a, b, 1)).toBeUndefined();
    tf.dispose([a, b]);
  });

  test.each([true, false])('columnSum (fused kernels on: %s) equals tf.sum over axis 0, including the 1-3 last columns', (fused) => {
    useFusedKernels(fused);
    for (const [rows, cols] of [[1, 1], [3, 7], [128, 512], [128, 10], [0, 5]] as const) {
      const x = tf.randomNormal([rows, cols], 0, 1, 'float32', rows + cols) as tf.Tensor2D;
      const [ours, reference] = [columnSum(x), tf.sum(x, 0)];
      expect(ours.shape).toEqual([cols]);
      const [o, r] = [ours.dataSync(), reference.dataSync()];
      for (let i = 0; i < cols; i++) expect(Math.abs((o[i] as number) - (r[i] as number))).toBeLessThanOrEqual(1e-5 * Math.max(1, Math.abs(r[i] as number)));
      tf.dispose([x, ours, reference]);
    }
  });
});
