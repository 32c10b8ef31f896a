/**
 * `npm run bench:kernels`: the products of the benchmark MLP's gates, dense (tfjs `matMul`, XNNPACK
 * on wasm) against sparse (`sparseMatMul`, akkordeon's wasm kernel over the non-zero values of the
 * left operand), side by side from one run, at the densities training produces and around the
 * break-even point. The left operand is a batch of real MNIST images for the first-layer rows, and
 * random values with a random zero pattern of the given density for the others.
 *
 *   npm run bench:kernels -- [--data DIR] [--reps 200]
 */
import * as tf from '@tensorflow/tfjs';
import { Command } from 'commander';
import { initBackend } from '../src/backend.js';
import { positiveInt } from '../src/apps/flags.js';
import { loadMnist } from '../src/data/index.js';
import { describeError } from '../src/errors.js';
import { fusedKernelsActive, sparseMatMul } from '../src/kernels/fused.js';
import { findMnistDir, now } from './common.js';

interface Flags {
  data?: string;
  reps: number;
}

const program = new Command()
  .name('bench:kernels')
  .description('Dense tfjs matMul against sparseMatMul for the MLP gates\' products, in ms per product.')
  .option('--data <DIR>', 'MNIST directory (default: $MNIST_DIR, data/mnist, then ../shared/data/mnist)')
  .option('--reps <n>', 'timed repetitions per product (after 20 untimed)', positiveInt('--reps'), 200)
  .parse();

/** Median of `reps` timings of `f` (ms per call), after 20 untimed calls. */
function time(f: () => tf.Tensor, reps: number): number {
  for (let i = 0; i < 20; i++) f().dispose();
  const samples: number[] = [];
  for (let i = 0; i < reps; i++) {
    const start = now();
    f().dispose();
    samples.push(now() - start);
  }
  samples.sort((a, b) => a - b);
  return samples[Math.floor(reps / 2)] as number;
}

/** A `[rows, cols]` tensor of standard normal values, each kept with probability `density` (seeded). */
function sparseRandom(rows: number, cols: number, density: number, seed: number): tf.Tensor2D {
  return tf.tidy(() => tf.mul(tf.randomNormal([rows, cols], 0, 1, 'float32', seed), tf.cast(tf.less(tf.randomUniform([rows, cols], 0, 1, 'float32', seed + 1), density), 'float32')));
}

async function main(flags: Flags): Promise<void> {
  const backend = await initBackend('wasm');
  if (!fusedKernelsActive()) throw new Error(`The wasm kernels did not load (backend ${backend}); sparseMatMul needs them.`);
  const mnist = await loadMnist(await findMnistDir(flags.data), 'test');
  const images = tf.tensor2d(mnist.images.subarray(0, 128 * 784), [128, 784]);
  const imagesT = tf.transpose(images) as tf.Tensor2D;
  const density = (t: tf.Tensor) => tf.tidy(() => tf.mean(tf.cast(tf.notEqual(t, 0), 'float32')).dataSync()[0] as number);

  const cases: { name: string; a: tf.Tensor2D; n: number }[] = [
    { name: 'gate 0 forward: images · W0', a: images, n: 512 },
    { name: 'gate 0 dW0: imagesᵀ · dZ0', a: imagesT, n: 512 },
  ];
  for (const d of [0.2, 0.35, 0.45, 0.55, 0.7]) {
    cases.push({ name: `[128, 784] · [784, 512], density ${d}`, a: sparseRandom(128, 784, d, 7), n: 512 });
    cases.push({ name: `[128, 512] · [512, 256], density ${d}`, a: sparseRandom(128, 512, d, 11), n: 256 });
    cases.push({ name: `[128, 256] · [256, 512], density ${d}`, a: sparseRandom(128, 256, d, 13), n: 512 });
  }

  console.log(`backend ${backend} · tfjs ${tf.version.tfjs} · node ${process.version} · median of ${flags.reps} products\n`);
  const header = ['product', 'density', 'dense ms', 'sparse ms', 'dense / sparse'];
  const lines: string[][] = [];
  for (const { name, a, n } of cases) {
    const b = tf.randomNormal([a.shape[1], n], 0, 1, 'float32', 3) as tf.Tensor2D;
    const dense = time(() => tf.matMul(a, b), flags.reps);
    const sparse = time(() => sparseMatMul(a, b, 1) as tf.Tensor2D, flags.reps);
    lines.push([name, density(a).toFixed(2), dense.toFixed(3), sparse.toFixed(3), `${(dense / sparse).toFixed(2)}x`]);
    b.dispose();
  }
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => (l[i] as string).length)));
  const format = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i] as number) : c.padStart(widths[i] as number))).join('   ');
  console.log([format(header), format(widths.map((w) => '-'.repeat(w))), ...lines.map(format)].join('\n'));
}

try {
  await main(program.opts<Flags>());
} catch (error) {
  console.error(describeError(error));
  process.exitCode = 1;
}
