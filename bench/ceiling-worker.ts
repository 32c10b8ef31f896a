/**
 * One copy of the ceiling row (see `ceiling.ts`), in a worker thread: loads MNIST from
 * `workerData.dir`, builds the one-thread row's network (3 gates and the training sentinel, all
 * in this thread), trains the warm-up batches, says `ready`, and on `go` trains the timed
 * epochs (`trained`: samples, seconds, and this thread's CPU seconds), then tests (`done`: test accuracy, leaked tensors).
 */
import { once } from 'node:events';
import { parentPort, workerData } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/backend.js';
import { mnistMlp } from '../src/models/index.js';
import { Network } from '../src/network/index.js';
import { createOptimizer } from '../src/optim/index.js';
import { trainOnce } from './akkordeon.js';
import { loadBenchData, OPTIMIZER, statCpuSeconds, stopwatch, testAccuracy, trainProvider } from './common.js';

/** This thread's own CPU counters (Linux; elsewhere the reading is 0). */
const THREAD_STAT = '/proc/thread-self/stat';

/** What the ceiling row hands each copy. */
export interface CeilingWorkerData {
  dir: string;
  backend: string;
  batchSize: number;
  warmupBatches: number;
  epochs: number;
}

/** What a copy reports, in order. */
export type CeilingReport =
  | { type: 'ready' }
  | { type: 'trained'; samples: number; seconds: number; threadCpuSeconds: number }
  | { type: 'done'; testAccuracy: number; leakedTensors: number };

const port = parentPort;
if (!port) throw new Error('bench/ceiling-worker.ts runs in a worker thread started by bench/ceiling.ts.');
const { dir, backend, batchSize, warmupBatches, epochs } = workerData as CeilingWorkerData;
const post = (report: CeilingReport) => port.postMessage(report);

await initBackend(backend);
const data = await loadBenchData(dir, batchSize, warmupBatches);
const before = tf.memory().numTensors;
const network = new Network({ inputShape: [784], gates: mnistMlp(), optimizer: () => createOptimizer(OPTIMIZER) });
if (warmupBatches > 0) await trainOnce(network, trainProvider(data, warmupBatches * batchSize), batchSize);
const provider = trainProvider(data);
post({ type: 'ready' });
await once(port, 'message');

const elapsed = stopwatch();
const cpu = statCpuSeconds(THREAD_STAT);
const samples = await trainOnce(network, provider, batchSize, epochs);
post({ type: 'trained', samples, seconds: elapsed().seconds, threadCpuSeconds: statCpuSeconds(THREAD_STAT) - cpu });

const accuracy = await testAccuracy(data, (x) => network.predict(x));
await network.dispose();
post({ type: 'done', testAccuracy: accuracy, leakedTensors: tf.memory().numTensors - before });
