/**
 * Asynchronous training end to end: convergence with several batches in flight, sentinels
 * attaching and detaching while another trains, and bad data failing only its own sentinel.
 */
import * as tf from '@tensorflow/tfjs';
import type { Batch, DataProvider } from '../src/data/index.js';
import { LabelRangeError, NonFiniteError, ShapeMismatchError } from '../src/errors.js';
import { Network } from '../src/network/index.js';
import { DCASGD, type Optimizer } from '../src/optim/index.js';
import { Sentinel, type SentinelSummary } from '../src/sentinel/index.js';
import { blobs, setupBackend } from './helpers.js';

beforeAll(setupBackend);

const FEATURES = 10;
const CLASSES = 4;

type Spec = { layers: tf.layers.Layer[]; optimizer: Optimizer }[];

/** Two gates with seeded initial weights (so every run trains the same way) and DC-ASGD each. */
function gates(): Spec {
  const init = (seed: number) => tf.initializers.glorotUniform({ seed });
  const optimizer = () => new DCASGD({ learningRate: 0.1 });
  return [
    { layers: [tf.layers.dense({ units: 32, activation: 'tanh', kernelInitializer: init(1) })], optimizer: optimizer() },
    { layers: [tf.layers.dense({ units: CLASSES, kernelInitializer: init(2) })], optimizer: optimizer() },
  ];
}

/** Disposes the network (which waits for the automatic releases of finished sentinels). */
async function dispose(net: Network): Promise<void> {
  await net.dispose();
}

function lossFell(summary: SentinelSummary, factor: number): void {
  const first = summary.epochs[0]?.loss as number;
  const last = summary.epochs[summary.epochs.length - 1]?.loss as number;
  expect(Number.isFinite(first)).toBe(true);
  expect(Number.isFinite(last)).toBe(true);
  expect(last).toBeLessThan(first * factor);
}

/** A hand-rolled DataProvider: `x` is `[size, features]` whatever `inputShape` claims. */
class CustomProvider implements DataProvider {
  readonly size: number;
  readonly inputShape: number[];
  readonly numClasses = CLASSES;

  constructor(
    private readonly x: Float32Array,
    private readonly features: number,
    private readonly labels: Int32Array,
  ) {
    this.size = labels.length;
    this.inputShape = [features];
  }

  *batches(_epoch: number, batchSize: number): Iterator<Batch> {
    for (let start = 0; start < this.size; start += batchSize) {
      const end = Math.min(start + batchSize, this.size);
      const labels = this.labels.slice(start, end);
      yield {
        x: tf.tensor2d(this.x.slice(start * this.features, end * this.features), [end - start, this.features]),
        y: tf.tensor1d(labels, 'int32'),
        labels,
        indices: Int32Array.from({ length: end - start }, (_, i) => start + i),
        size: end - start,
      };
    }
  }
}

function custom(size: number, features: number, value: (i: number) => number, label: (i: number) => number): CustomProvider {
  return new CustomProvider(
    Float32Array.from({ length: size * features }, (_, i) => value(i)),
    features,
    Int32Array.from({ length: size }, (_, i) => label(i)),
  );
}

test('concurrency 4 with DC-ASGD still converges, and really runs asynchronously', async () => {
  const baseline = tf.memory().numTensors;
  const net = new Network({ inputShape: [FEATURES], gates: gates() });
  const sentinel = new Sentinel({ name: 'train', mode: 'train', data: blobs(1024, FEATURES, CLASSES, 3), batchSize: 32, concurrency: 4, epochs: 8 });
  net.attach(sentinel);
  const summary = await sentinel.done;
  expect(summary.stoppedBy).toBe('epochs');
  expect(summary.epochs).toHaveLength(8);
  lossFell(summary, 0.5);
  expect(summary.epochs[7]?.metrics.accuracy).toBeGreaterThan(0.9);
  expect(Math.max(...summary.epochs.map((e) => e.maxStaleness))).toBeGreaterThan(0);
  await dispose(net);
  expect(tf.memory().numTensors).toBe(baseline);
});

/**
 * Two sentinels train one network; the first is detached right after its first epoch, while
 * its second epoch's batches are in flight, and the second trains on to the end.
 */
async function detachWhileTraining() {
  const baseline = tf.memory().numTensors;
  const net = new Network({ inputShape: [FEATURES], gates: gates() });
  const first = new Sentinel({ name: 'first', mode: 'train', data: blobs(1024, FEATURES, CLASSES, 3), batchSize: 32, concurrency: 4, epochs: 100 });
  const second = new Sentinel({ name: 'second', mode: 'train', data: blobs(1024, FEATURES, CLASSES, 3), batchSize: 32, concurrency: 4, epochs: 4 });
  const firstEpoch = new Promise((resolve) => first.events.once('epoch', resolve));
  let secondBatches = 0;
  second.events.on('batch', () => secondBatches++);
  const firstRef = net.attach(first);
  net.attach(second);
  await firstEpoch; // `first` has begun its second epoch: its batches are in flight now
  const secondBatchesAtDetach = secondBatches;
  await net.detach(first);
  const firstSummary = await first.done;
  const summary = await second.done;
  return { baseline, net, firstRef, firstSummary, summary, secondBatchesAtDetach, secondBatches };
}

test('a sentinel detaches while another keeps training', async () => {
  const run = await detachWhileTraining();
  expect(run.firstSummary.stoppedBy).toBe('stopped');
  expect(run.firstSummary.epochs.length).toBeGreaterThanOrEqual(1);
  expect(run.firstSummary.epochs.length).toBeLessThan(100);
  expect(run.summary.stoppedBy).toBe('epochs');
  expect(run.summary.epochs).toHaveLength(4);
  run.summary.epochs.forEach((e) => expect(Number.isFinite(e.loss)).toBe(true));
  expect(run.secondBatchesAtDetach).toBeLessThan(4 * 32); // the detach came while `second` trained
  expect(run.secondBatches).toBe(4 * 32);
  lossFell(run.summary, 1);
  await dispose(run.net);
});

// A detach frees the sentinel's batches on every gate, including those still travelling
// downstream, and outputs sent to the stopped sentinel are freed as dead letters.
test('after a detach and dispose, no tensor of the detached sentinel is left', async () => {
  const run = await detachWhileTraining();
  const held = await run.net.detachId(run.firstRef.id); // batches of `first` still held by a gate
  await dispose(run.net);
  expect(held).toBe(0);
  expect(tf.memory().numTensors).toBe(run.baseline);
});

// dispose() waits for the automatic release of a finished sentinel before stopping the gates.
test('dispose right after a sentinel finishes leaves no detach ask pending', async () => {
  const net = new Network({ inputShape: [FEATURES], gates: gates(), askTimeoutMs: 200 }); // a hung ask would expire quickly and show up as a dead letter
  const dead: string[] = [];
  net.system.events.on('deadLetter', (_target, message) => dead.push(message.type));
  const sentinel = new Sentinel({ name: 'train', mode: 'train', data: blobs(64, FEATURES, CLASSES, 3), batchSize: 32 });
  net.attach(sentinel);
  await sentinel.done;
  await net.dispose();
  expect(dead).not.toContain('gate.detach');
});

test('bad data fails only its own sentinel, with the named error, while a good one trains', async () => {
  const baseline = tf.memory().numTensors;
  const net = new Network({ inputShape: [FEATURES], gates: gates() });
  const good = new Sentinel({ name: 'good', mode: 'train', data: blobs(1024, FEATURES, CLASSES, 3), batchSize: 32, concurrency: 4, epochs: 5 });
  const wrongShape = new Sentinel({ name: 'shape', mode: 'train', data: custom(64, 7, (i) => Math.sin(i), (i) => i % CLASSES), batchSize: 16 });
  const badLabels = new Sentinel({ name: 'labels', mode: 'train', data: custom(64, FEATURES, (i) => Math.cos(i), (i) => (i % 5 === 3 ? 99 : i % CLASSES)), batchSize: 16 });
  const nonFinite = new Sentinel({ name: 'nan', mode: 'train', data: custom(64, FEATURES, (i) => (i === 17 ? NaN : Math.sin(i)), (i) => i % CLASSES), batchSize: 16 });
  let goodFinished = false;
  void good.done.then(() => (goodFinished = true));
  net.attach(good);
  net.attach(wrongShape);
  net.attach(badLabels);
  net.attach(nonFinite);
  await expect(wrongShape.done).rejects.toBeInstanceOf(ShapeMismatchError);
  await expect(wrongShape.done).rejects.toThrow(/\[16,7\]/);
  await expect(badLabels.done).rejects.toBeInstanceOf(LabelRangeError);
  await expect(badLabels.done).rejects.toThrow(/99/);
  await expect(nonFinite.done).rejects.toBeInstanceOf(NonFiniteError);
  expect(goodFinished).toBe(false); // the failures happened while the good sentinel trained
  const summary = await good.done;
  expect(summary.stoppedBy).toBe('epochs');
  expect(summary.epochs).toHaveLength(5);
  summary.epochs.forEach((e) => expect(e.failedBatches).toBe(0));
  lossFell(summary, 0.7);
  await dispose(net);
  expect(tf.memory().numTensors).toBe(baseline);
});
