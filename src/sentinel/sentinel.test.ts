/**
 * Sentinel behaviour: epoch figures weighted by samples, stop conditions (epochs, target, time
 * limit), manual passes for validation, prediction output in dataset order, lost batches, and
 * holding while a node of the network is down.
 */
import * as tf from '@tensorflow/tfjs';
import { blobs, setupBackend } from '../../test/helpers.js';
import { ArrayProvider } from '../data/index.js';
import { InvalidArgumentError } from '../errors.js';
import { ActorSystem, type ActorRef } from '../actor/index.js';
import type { GateMessage } from '../protocol/index.js';
import { Network } from '../network/index.js';
import { SGD } from '../optim/index.js';
import { softmaxCrossEntropy } from './loss.js';
import { Sentinel } from './sentinel.js';

beforeAll(setupBackend);

/** A one-gate identity-like network whose logits are the inputs themselves (a linear layer, W = I). */
function identityNetwork(classes: number): Network {
  return new Network({
    inputShape: [classes],
    gates: [{ layers: [tf.layers.dense({ units: classes, useBias: false, kernelInitializer: 'identity' })] }],
    optimizer: () => new SGD({ learningRate: 1e-9 }),
  });
}

test('epoch loss and accuracy are weighted by samples, not averaged over batches', async () => {
  // 5 samples, batch size 4: batches of 4 and 1. Logits = inputs, so every loss is known exactly.
  const x = [5, 0, 5, 0, 5, 0, 5, 0, 0, 5];
  const y = [0, 0, 0, 0, 0]; // the last sample is wrong with a large loss
  const data = new ArrayProvider({ x, y, inputShape: [2], numClasses: 2 });
  const network = identityNetwork(2);
  const sentinel = new Sentinel({ name: 'test', mode: 'test', data, batchSize: 4 });
  network.attach(sentinel);
  const stats = (await sentinel.done).epochs[0];
  const perSample = (logits: number[], label: number) =>
    tf.tidy(() => softmaxCrossEntropy.compute(tf.tensor2d([logits]), tf.tensor1d([label], 'int32'), false).value);
  const expected = (4 * perSample([5, 0], 0) + perSample([0, 5], 0)) / 5;
  expect(stats?.loss).toBeCloseTo(expected, 5);
  expect(stats?.metrics.accuracy).toBeCloseTo(4 / 5, 10); // batch average would be (1 + 0) / 2
  expect(stats?.samples).toBe(5);
  await network.dispose();
});

test('a training sentinel stops on its target metric, before its epoch limit', async () => {
  const network = new Network({ inputShape: [10], gates: [{ layers: [tf.layers.dense({ units: 4 })] }], optimizer: () => new SGD({ learningRate: 0.5 }) });
  const sentinel = new Sentinel({ name: 'train', mode: 'train', data: blobs(512, 10, 4), batchSize: 32, epochs: 200, target: { metric: 'accuracy', atLeast: 0.9 } });
  network.attach(sentinel);
  const summary = await sentinel.done;
  expect(summary.stoppedBy).toBe('target');
  expect(summary.epochs.length).toBeLessThan(200);
  expect(summary.epochs.at(-1)?.metrics.accuracy).toBeGreaterThanOrEqual(0.9);
  await network.dispose();
});

test('a time limit stops a sentinel after its in-flight batches (injected clock)', async () => {
  let now = 0;
  const network = identityNetwork(4);
  const sentinel = new Sentinel({ name: 'timed', mode: 'train', data: blobs(256, 4, 4), batchSize: 8, epochs: 100, timeLimitMs: 1000, now: () => now });
  sentinel.events.on('batch', (info) => {
    if (info.batch === 5) now = 2000; // the limit passes during the sixth batch
  });
  network.attach(sentinel);
  const summary = await sentinel.done;
  expect(summary.stoppedBy).toBe('time');
  expect(summary.epochs).toHaveLength(1);
  expect(summary.epochs[0]?.samples).toBeLessThan(256);
  await network.dispose();
});

test('a manual sentinel runs one pass per request and finishes after the requested passes', async () => {
  const network = identityNetwork(4);
  const validator = new Sentinel({ name: 'validate', mode: 'validate', data: blobs(64, 4, 4), batchSize: 16, trigger: 'manual', epochs: Infinity });
  network.attach(validator);
  network.requestPass(validator);
  network.requestPass(validator);
  network.finish(validator);
  const summary = await validator.done;
  expect(summary.stoppedBy).toBe('stopped');
  expect(summary.epochs.map((e) => e.samples)).toEqual([64, 64]);
  await network.dispose();
});

test('prediction mode returns outputs in dataset order', async () => {
  const baseline = tf.memory().numTensors;
  const network = identityNetwork(3);
  const x = Array.from({ length: 7 * 3 }, (_, i) => i);
  const data = new ArrayProvider({ x, y: new Array(7).fill(0), inputShape: [3], numClasses: 3 });
  const sentinel = new Sentinel({ name: 'predict', mode: 'predict', data, batchSize: 2, concurrency: 3 });
  network.attach(sentinel);
  const { predictions } = await sentinel.done;
  expect(predictions?.shape).toEqual([7, 3]);
  expect(Array.from(predictions?.dataSync() ?? [])).toEqual(x);
  predictions?.dispose();
  await network.dispose();
  expect(tf.memory().numTensors).toBe(baseline);
});

test('invalid options are rejected with a named error', () => {
  const data = blobs(8, 4, 4);
  expect(() => new Sentinel({ name: 's', mode: 'train', data, batchSize: 0 })).toThrow(InvalidArgumentError);
  expect(() => new Sentinel({ name: 's', mode: 'train', data, concurrency: 1.5 })).toThrow(/concurrency/);
  expect(() => new Sentinel({ name: 's', mode: 'train', data, target: { metric: 'accuracy' } })).toThrow(/atLeast or atMost/);
  // Regression data measures no accuracy: a target on it could never be met.
  const regression = new ArrayProvider({ x: [1, 2, 3, 4], y: [0.5, 1.5], inputShape: [2] });
  expect(() => new Sentinel({ name: 's', mode: 'train', data: regression, target: { metric: 'accuracy', atLeast: 0.9 } })).toThrow(/'accuracy' is not measured by this sentinel \(it measures loss\)/);
  expect(new Sentinel({ name: 's', mode: 'train', data: regression }).options.loss.name).toBe('meanSquaredError');
  expect(() => new Sentinel({ name: 's', mode: 'train', data, loss: 'toString' as never })).toThrow(/Unknown loss 'toString'/);
});

test('batches that never come back are aborted after batchTimeoutMs, counted as lost, and training goes on', async () => {
  const system = new ActorSystem();
  const aborted: number[] = [];
  // A stand-in for a whole network that loses the forward messages of batches 1 and 3, and the
  // backward of batch 5 (its logits did arrive: it must still not count as trained).
  const gate = system.spawn<GateMessage>(() => ({
    receive: (m) => {
      if (m.type === 'gate.forward') {
        if (m.batch === 1 || m.batch === 3) return void m.x.dispose();
        m.sentinel.tell({ type: 'sentinel.logits', batch: m.batch, logits: m.x });
      } else if (m.type === 'gate.backward') {
        m.dy.dispose();
        if (m.batch === 5) return;
        m.sentinel.tell({ type: 'sentinel.backwardDone', batch: m.batch, staleness: 0 });
      } else if (m.type === 'gate.abort') {
        aborted.push(m.batch);
      } else if (m.type === 'gate.detach') {
        m.replyTo?.tell({ type: 'gate.detached', dropped: 0 });
      }
    },
  }));
  const sentinel = new Sentinel({ name: 'lossy', mode: 'train', data: blobs(64, 4, 4), batchSize: 8, concurrency: 2, batchTimeoutMs: 30 });
  const ref = system.spawn(() => sentinel);
  ref.tell({ type: 'sentinel.start', first: gate as ActorRef<GateMessage>, last: gate as ActorRef<GateMessage> });
  const summary = await sentinel.done;
  expect(summary.stoppedBy).toBe('epochs');
  expect(summary.epochs[0]?.lostBatches).toBe(3);
  expect(summary.epochs[0]?.samples).toBe(64 - 3 * 8);
  await system.ask(gate, (replyTo) => ({ type: 'gate.detach' as const, sentinelId: 'flush', replyTo })); // FIFO: aborts are handled
  expect(aborted.sort()).toEqual([1, 3, 5]); // the gates are told to free the lost batches
  system.shutdown();
});

test('a held sentinel gives up its batches in flight (lost), sends nothing, and goes on with the gates of sentinel.connect', async () => {
  const system = new ActorSystem();
  const toDead: number[] = [];
  // The gate whose node goes down: it takes batches and never answers.
  const dead = system.spawn<GateMessage>(() => ({
    receive: (m) => {
      if (m.type === 'gate.forward') {
        toDead.push(m.batch);
        m.x.dispose();
      } else if (m.type === 'gate.detach') {
        m.replyTo?.tell({ type: 'gate.detached', dropped: 0 });
      }
    },
  }));
  // Its replacement echoes: logits = inputs, and every backward completes.
  const replacement = system.spawn<GateMessage>(() => ({
    receive: (m) => {
      if (m.type === 'gate.forward') m.sentinel.tell({ type: 'sentinel.logits', batch: m.batch, logits: m.x });
      else if (m.type === 'gate.backward') {
        m.dy.dispose();
        m.sentinel.tell({ type: 'sentinel.backwardDone', batch: m.batch, staleness: 0 });
      }
    },
  }));
  const sentinel = new Sentinel({ name: 'held', mode: 'train', data: blobs(64, 4, 4), batchSize: 8, concurrency: 2 });
  const errors: [string, number, boolean][] = [];
  const twoLost = new Promise<void>((resolve) => sentinel.events.on('batchError', (error, batch, lost) => errors.push([error.message, batch, lost]) === 2 && resolve()));
  const ref = system.spawn(() => sentinel);
  ref.tell({ type: 'sentinel.start', first: dead as ActorRef<GateMessage>, last: dead as ActorRef<GateMessage> });
  const flush = () => system.ask(dead, (replyTo) => ({ type: 'gate.detach' as const, sentinelId: 'flush', replyTo })); // FIFO: what was sent has arrived
  await flush();
  expect(toDead).toEqual([0, 1]);

  ref.tell({ type: 'sentinel.hold', error: { code: 'Transport', message: 'node n1 went down' } });
  await twoLost;
  await flush();
  expect(errors).toEqual([['node n1 went down', 0, true], ['node n1 went down', 1, true]]);
  expect(toDead).toEqual([0, 1]); // nothing more was sent while held

  ref.tell({ type: 'sentinel.connect', first: replacement as ActorRef<GateMessage>, last: replacement as ActorRef<GateMessage> });
  const summary = await sentinel.done;
  expect(summary.epochs).toHaveLength(1);
  expect(summary.epochs[0]?.lostBatches).toBe(2);
  expect(summary.epochs[0]?.failedBatches).toBe(0);
  expect(summary.epochs[0]?.samples).toBe(64 - 2 * 8);
  system.shutdown();
});
