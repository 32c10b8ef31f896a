/**
 * Shared pieces of the benchmark: the competitor interface, the MNIST data every competitor
 * trains on, the model's layer sizes, test-set accuracy, and a leak check.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { access } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { ArrayProvider, ensureMnist, loadMnist, mnistFileNames, resolveMnistDir, type MnistSplit } from '../src/data/index.js';
import type { OptimizerSpec } from '../src/optim/index.js';
import { Sentinel, type SentinelSummary } from '../src/sentinel/index.js';

/** Layer widths of the benchmark MLP: 784 → 512 (relu) → 256 (relu) → 10 (linear logits). */
export const LAYER_SIZES = [784, 512, 256, 10] as const;

/** The optimizer of every akkordeon row, each gate its own: DC-ASGD, learning rate 0.02, momentum 0.9, no decay. */
export const OPTIMIZER: OptimizerSpec = { type: 'dcasgd', learningRate: 0.02, momentum: 0.9 };

/** Batches in flight per training sentinel, in every akkordeon row. */
export const CONCURRENCY = 4;

/** Everything a competitor trains and tests on; loaded once, outside any timing. */
export interface BenchData {
  /** The MNIST directory the splits were read from (rows in other threads load their own copy from it). */
  dir: string;
  /** The 60000 MNIST training images (`[60000, 784]` float32 in `[0, 1]`) and labels. */
  train: MnistSplit;
  /** The 10000 MNIST test images and labels. */
  test: MnistSplit;
  /** Samples per batch (default 128). */
  batchSize: number;
  /** Batches trained before the timed epochs, to warm up kernels and the JIT (not timed). */
  warmupBatches: number;
}

/** What one competitor reports after its timed epochs. */
export interface BenchResult {
  /** Training samples per second over the timed epochs (warm-up excluded). */
  samplesPerSecond: number;
  /** Fraction of the 10000 test images classified correctly after training, in `[0, 1]`. */
  testAccuracy: number;
  /** Training samples processed in the timed epochs. */
  samples: number;
  /** Wall time of the timed epochs, seconds. */
  seconds: number;
  /**
   * CPU time (user + system, all threads of the process) spent in the timed epochs, seconds.
   * Unlike {@link seconds} it hardly grows when other processes compete for the cores.
   */
  cpuSeconds: number;
  /** Tensors still allocated after the competitor cleaned up, minus those before it started. */
  leakedTensors: number;
  /** One line on how the row ran (e.g. the placement used), printed under its figures in the first round. */
  note?: string;
  /** Where the CPU time of the timed epochs went, by thread or process (see {@link describeThreadCpu}); printed every round. */
  cpuSplit?: string;
}

/** One way of training the benchmark MLP. */
export interface Competitor {
  /** Short name shown in the table, e.g. `'tfjs model.fit'`. */
  readonly name: string;
  /** Key for `--only`, e.g. `'fit'`. */
  readonly key: string;
  /** Why this competitor cannot run on the current backend (the bench then skips it without failing), or undefined. */
  skipReason?(): string | undefined;
  /** Trains a fresh model for `epochs` epochs on `data.train` and tests it on `data.test`. */
  train(data: BenchData, epochs: number): Promise<BenchResult>;
}

const PROJECT_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
/** Where CI keeps MNIST: `shared/data/mnist` beside the clone. */
const SHARED_MNIST = path.resolve(PROJECT_ROOT, '../shared/data/mnist');

async function hasMnist(dir: string): Promise<boolean> {
  const names = [...Object.values(mnistFileNames('train')), ...Object.values(mnistFileNames('test'))];
  const found = await Promise.all(names.map((n) => access(path.join(dir, n)).then(() => true, () => false)));
  return found.every(Boolean);
}

/**
 * Finds the MNIST directory: `--data` if given (downloaded there when missing), else
 * `MNIST_DIR` / `data/mnist` (see `resolveMnistDir`) when it holds the files, else
 * `../shared/data/mnist`, else downloads into `resolveMnistDir()`.
 * @throws DataFormatError when the files are missing and cannot be downloaded.
 */
export async function findMnistDir(flag?: string): Promise<string> {
  const candidates = flag ? [resolveMnistDir(flag)] : [resolveMnistDir(), SHARED_MNIST];
  for (const dir of candidates) if (await hasMnist(dir)) return dir;
  const target = candidates[0] as string;
  await ensureMnist(target, { log: (line) => console.error(line) });
  return target;
}

/** Loads both MNIST splits from `dir` into a {@link BenchData}. */
export async function loadBenchData(dir: string, batchSize: number, warmupBatches = 5): Promise<BenchData> {
  const [train, test] = await Promise.all([loadMnist(dir, 'train'), loadMnist(dir, 'test')]);
  return { dir, train, test, batchSize, warmupBatches };
}

/** The training split as a shuffling provider (seed 0), as akkordeon's sentinels consume it. */
export function trainProvider(data: BenchData, samples = data.train.count): ArrayProvider {
  return new ArrayProvider({
    x: data.train.images.subarray(0, samples * 784),
    y: data.train.labels.subarray(0, samples),
    inputShape: [784],
    numClasses: 10,
    seed: 0,
  });
}

/** A training sentinel over `provider` with {@link CONCURRENCY} batches in flight. */
export function trainSentinel(provider: ArrayProvider, batchSize: number, epochs = 1): Sentinel {
  return new Sentinel({ name: 'train', mode: 'train', data: provider, batchSize, concurrency: CONCURRENCY, epochs });
}

/** A test sentinel over the 10000 test images, in batches of 1000 (two in flight). */
export function testSentinel(data: BenchData): Sentinel {
  const provider = new ArrayProvider({ x: data.test.images, y: data.test.labels, inputShape: [784], numClasses: 10, seed: 0 });
  return new Sentinel({ name: 'test', mode: 'test', data: provider, batchSize: 1000, concurrency: 2 });
}

/** Samples trained in a sentinel's summary, over all its epochs. */
export const samplesOf = (summary: SentinelSummary): number => summary.epochs.reduce((n, e) => n + e.samples, 0);

/** The accuracy of a test sentinel's (only) pass, in `[0, 1]`. */
export const accuracyOf = (summary: SentinelSummary): number => summary.epochs[0]?.metrics.accuracy ?? NaN;

/**
 * Test-set accuracy of a model given as a function from images `[n, 784]` to logits `[n, 10]`.
 * Runs in chunks of `chunk` images; `predict` must not dispose its input, the caller owns its output.
 */
export async function testAccuracy(
  data: BenchData,
  predict: (x: tf.Tensor2D) => tf.Tensor | Promise<tf.Tensor>,
  chunk = 1000,
): Promise<number> {
  const { images, labels, count } = data.test;
  let hits = 0;
  for (let start = 0; start < count; start += chunk) {
    const n = Math.min(chunk, count - start);
    const x = tf.tensor2d(images.subarray(start * 784, (start + n) * 784), [n, 784]);
    const logits = await predict(x);
    const predicted = tf.tidy(() => tf.argMax(logits, -1));
    const values = await predicted.data();
    tf.dispose([x, logits, predicted]);
    for (let i = 0; i < n; i++) if (values[i] === labels[start + i]) hits++;
  }
  return hits / count;
}

/**
 * CPU seconds (user + system) in a `/proc` stat file (`/proc/<pid>/stat` for a whole process,
 * `/proc/<pid>/task/<tid>/stat` for one thread); 0 when it cannot be read (gone, or not Linux).
 */
export function statCpuSeconds(path: string): number {
  const ticks = 100; // USER_HZ on Linux
  try {
    const stat = readFileSync(path, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // from field 3 (state) on
    return (Number(fields[11]) + Number(fields[12])) / ticks; // fields 14 and 15: utime, stime
  } catch {
    return 0;
  }
}

/**
 * CPU seconds (user + system) used so far by each thread of this process, by thread id, read
 * from `/proc/self/task`; empty where there is no `/proc` (not Linux). A thread that ended is
 * missing.
 */
export function threadCpuSeconds(): Map<number, number> {
  let tids: string[];
  try {
    tids = readdirSync('/proc/self/task');
  } catch {
    return new Map();
  }
  return new Map(tids.map((tid) => [Number(tid), statCpuSeconds(`/proc/self/task/${tid}/stat`)]));
}

/**
 * The CPU each thread used between two {@link threadCpuSeconds} readings, e.g.
 * `CPU by thread: main 1.31 s · others 1.29, 0.09, 0.08 s` (others busiest first, those under
 * 0.01 s left out). In the worker row the busiest other thread is the worker; the small ones are
 * V8's compiler and GC helpers. Undefined without `/proc`.
 */
export function describeThreadCpu(before: Map<number, number>, after: Map<number, number>): string | undefined {
  if (after.size === 0) return undefined;
  const used = (tid: number) => (after.get(tid) ?? 0) - (before.get(tid) ?? 0);
  const others = [...after.keys()].filter((tid) => tid !== process.pid).map(used).filter((s) => s >= 0.01).sort((a, b) => b - a);
  return `CPU by thread: main ${used(process.pid).toFixed(2)} s · others ${others.length ? others.map((s) => s.toFixed(2)).join(', ') : '0'} s`;
}

/** Milliseconds since an arbitrary origin, high resolution. */
export const now = (): number => performance.now();

/** Starts a stopwatch; calling the result returns the wall and CPU seconds elapsed since. */
export function stopwatch(): () => { seconds: number; cpuSeconds: number } {
  const wall = now();
  const cpu = process.cpuUsage();
  return () => {
    const used = process.cpuUsage(cpu);
    return { seconds: (now() - wall) / 1000, cpuSeconds: (used.user + used.system) / 1e6 };
  };
}
