/**
 * Reference row, not a competitor: what two cores of this machine give when nothing at all is
 * shared. {@link COPIES} copies of the one-thread row (the same network, optimizer, sentinel and
 * warm-up) train at once, each whole in its own worker thread with its own copy of MNIST; they
 * never exchange a message. Throughput is all copies' samples over the wall time from the common
 * start until the last copy finished its epoch.
 *
 * No placement of one network over two threads can beat this: it has the same per-batch work
 * plus messages and waits. Where the cores slow each other down (shared caches, memory
 * bandwidth, a hypervisor's clock), this row shows by how much, so the worker row's ratio to the
 * one-thread row can be read against what the machine allows.
 */
import { Worker } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs';
import { NODE_BOOTSTRAP } from '../src/transport/worker.js';
import type { CeilingReport, CeilingWorkerData } from './ceiling-worker.js';
import { type BenchData, type BenchResult, type Competitor, stopwatch } from './common.js';

/** Independent one-thread trainings run at once: one per core of the 2-core machine the issue targets. */
export const COPIES = 2;

const ENTRY = new URL(`./ceiling-worker${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url);

/** A copy's worker thread and the reports it has yet to send, in order. */
class Copy {
  readonly worker: Worker;
  private readonly reports: CeilingReport[] = [];
  private waiting?: { resolve: (r: CeilingReport) => void; reject: (e: Error) => void };
  private failure?: Error;

  constructor(workerData: CeilingWorkerData) {
    const entry = ENTRY.href.endsWith('.ts') ? NODE_BOOTSTRAP : ENTRY;
    this.worker = new Worker(entry, { workerData: { ...workerData, entry: ENTRY.href }, execArgv: [] });
    this.worker.on('message', (report: CeilingReport) => {
      if (this.waiting) this.waiting.resolve(report);
      else this.reports.push(report);
      this.waiting = undefined;
    });
    const fail = (error: Error) => {
      this.failure ??= error;
      this.waiting?.reject(error);
      this.waiting = undefined;
    };
    this.worker.on('error', fail);
    this.worker.on('exit', (code) => fail(new Error(`a ceiling copy's worker thread exited (code ${code}) before it reported`)));
  }

  /**
   * The next report, which must be of type `type`.
   * @throws Error when the worker failed or exited first, or reported something else.
   */
  async next<T extends CeilingReport['type']>(type: T): Promise<Extract<CeilingReport, { type: T }>> {
    const report =
      this.reports.shift() ??
      (await new Promise<CeilingReport>((resolve, reject) => {
        if (this.failure) reject(this.failure);
        else this.waiting = { resolve, reject };
      }));
    if (report.type !== type) throw new Error(`a ceiling copy reported '${report.type}' where '${type}' was due`);
    return report as Extract<CeilingReport, { type: T }>;
  }
}

/** {@link COPIES} one-thread trainings at once, each in its own worker thread, sharing nothing. */
export const ceilingCompetitor: Competitor = {
  name: `${COPIES} one-thread trainings at once`,
  key: 'ceiling',
  skipReason: () =>
    tf.getBackend() === 'tensorflow'
      ? 'its copies run in worker threads, where tfjs-node cannot load (and tfjs-node already spreads one training over the cores); run the bench with --backend wasm to see the ceiling'
      : undefined,
  async train(data: BenchData, epochs: number): Promise<BenchResult> {
    const before = tf.memory().numTensors;
    const workerData: CeilingWorkerData = { dir: data.dir, backend: tf.getBackend(), batchSize: data.batchSize, warmupBatches: data.warmupBatches, epochs };
    const copies = Array.from({ length: COPIES }, () => new Copy(workerData));
    try {
      await Promise.all(copies.map((c) => c.next('ready')));
      const elapsed = stopwatch();
      for (const c of copies) c.worker.postMessage('go');
      const trained = await Promise.all(copies.map((c) => c.next('trained')));
      const { seconds, cpuSeconds } = elapsed();
      const done = await Promise.all(copies.map((c) => c.next('done')));
      const samples = trained.reduce((n, t) => n + t.samples, 0);
      const note = `${COPIES} copies of the one-thread row, each in its own worker thread; test accuracy is their mean`;
      const cpuSplit = `copies: ${trained.map((t) => `${t.seconds.toFixed(2)} s wall, ${t.threadCpuSeconds.toFixed(2)} s CPU on its thread`).join(' · ')}`;
      return {
        samplesPerSecond: samples / seconds,
        testAccuracy: done.reduce((a, d) => a + d.testAccuracy, 0) / done.length,
        samples,
        seconds,
        cpuSeconds,
        cpuSplit,
        note,
        leakedTensors: tf.memory().numTensors - before + done.reduce((n, d) => n + d.leakedTensors, 0),
      };
    } finally {
      await Promise.all(copies.map((c) => c.worker.terminate()));
    }
  },
};
