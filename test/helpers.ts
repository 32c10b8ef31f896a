/**
 * Shared test helpers: backend start-up, small synthetic datasets, and the MNIST location
 * beside the clone (`../shared/data/mnist`).
 */
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/backend.js';
import { ArrayProvider, mulberry32 } from '../src/data/index.js';

/** Project root (the directory that holds package.json). */
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
/** MNIST as CI provides it: `shared/data/mnist` beside the clone, or `MNIST_DIR`. */
export const MNIST_DIR = process.env.MNIST_DIR ?? path.resolve(ROOT, '../shared/data/mnist');

/** Starts the backend tests run on (`AKKORDEON_BACKEND`, else auto). */
export async function setupBackend(): Promise<string> {
  return initBackend();
}

/**
 * A linearly separable-ish classification set: `n` samples of `features` Gaussian inputs, label
 * = arg-max of a fixed random projection onto `classes` columns.
 */
export function blobs(n: number, features: number, classes: number, seed = 1): ArrayProvider {
  const random = mulberry32(seed);
  const normal = () => Math.sqrt(-2 * Math.log(random() + 1e-12)) * Math.cos(2 * Math.PI * random());
  const projection = Array.from({ length: features * classes }, normal);
  const x = new Float32Array(n * features);
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    let best = -Infinity;
    for (let f = 0; f < features; f++) x[i * features + f] = normal();
    for (let c = 0; c < classes; c++) {
      let score = 0;
      for (let f = 0; f < features; f++) score += (x[i * features + f] as number) * (projection[f * classes + c] as number);
      if (score > best) {
        best = score;
        y[i] = c;
      }
    }
  }
  return new ArrayProvider({ x, y, inputShape: [features], numClasses: classes, seed });
}

/** Largest absolute difference between two lists of tensors. */
export function maxAbsDiff(a: tf.Tensor[], b: tf.Tensor[]): number {
  return Math.max(...a.map((t, i) => tf.tidy(() => tf.max(tf.abs(tf.sub(t, b[i] as tf.Tensor))).dataSync()[0] as number)));
}

/** A fresh temporary directory for each test (`.path`), removed after it. */
export function useTempDir(prefix: string): { path: string } {
  const dir = { path: '' };
  beforeEach(async () => {
    dir.path = await fs.mkdtemp(path.join(os.tmpdir(), prefix));
  });
  afterEach(async () => {
    await fs.rm(dir.path, { recursive: true, force: true });
  });
  return dir;
}
