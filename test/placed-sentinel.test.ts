/**
 * Sentinels placed in a worker thread or a child process (`Network.attachPlaced`): the same
 * weights as a sentinel on the main thread (concurrency 1, plain SGD, same data order); MNIST
 * read by the node itself, with its events on this thread and the gates' state freed; a rejected
 * spec gets the node's named error and leaves nothing running; a node that goes down fails the
 * sentinel with a TransportError and frees its batches on the gates.
 */
import * as tf from '@tensorflow/tfjs';
import { ActorStoppedError, InvalidArgumentError, TransportError } from '../src/errors.js';
import { mnistMlp } from '../src/models/index.js';
import { type GateSpec } from '../src/gate/index.js';
import { Network } from '../src/network/index.js';
import { SGD } from '../src/optim/index.js';
import { ArrayProvider } from '../src/data/index.js';
import { type EpochStats, Sentinel, type SentinelSpec } from '../src/sentinel/index.js';
import { maxAbsDiff, setupBackend } from './helpers.js';

const MNIST_DIR = process.env.MNIST_DIR ?? new URL('../../shared/data/mnist', import.meta.url).pathname;

beforeAll(async () => {
  await setupBackend();
});

/** Two dense gates with seeded initial weights. */
function gates(): GateSpec[] {
  const init = (seed: number) => tf.initializers.glorotUniform({ seed });
  return [
    { name: 'hidden', layers: [tf.layers.dense({ units: 16, activation: 'relu', kernelInitializer: init(1) })] },
    { name: 'logits', layers: [tf.layers.dense({ units: 3, kernelInitializer: init(2) })] },
  ];
}

const SAMPLES = 96;
const x = Float32Array.from({ length: SAMPLES * 8 }, (_, i) => Math.sin(i * 0.37));
const y = Int32Array.from({ length: SAMPLES }, (_, i) => i % 3);

/** Copies of the network's weights (the caller owns them); the optimizer state is freed. */
async function weightsOf(network: Network): Promise<tf.Tensor[]> {
  const states = await network.getState();
  tf.dispose(states.flatMap((s) => s.optimizer.map((o) => o.tensor)));
  return states.flatMap((s) => s.weights.map((w) => w.tensor));
}

test('a sentinel in a worker thread trains like one on the main thread: the same weights within 1e-6', async () => {
  const options = { batchSize: 16, concurrency: 1, epochs: 2 } as const;
  const local = new Network({ inputShape: [8], gates: gates(), optimizer: () => new SGD({ learningRate: 0.1 }) });
  const sentinel = new Sentinel({ name: 'train', mode: 'train', data: new ArrayProvider({ x, y, inputShape: [8], numClasses: 3, seed: 5 }), ...options });
  local.attach(sentinel);
  await sentinel.done;
  const reference = await weightsOf(local);
  await local.dispose();

  const network = new Network({ inputShape: [8], gates: gates(), optimizer: () => new SGD({ learningRate: 0.1 }) });
  const before = tf.memory().numTensors;
  const spec: SentinelSpec = { name: 'train', mode: 'train', data: { kind: 'tensors', x: tf.tensor2d(x, [SAMPLES, 8]), y: tf.tensor1d(y, 'int32'), numClasses: 3, seed: 5 }, ...options };
  const placed = await network.attachPlaced(spec, { kind: 'worker' });
  const epochs: EpochStats[] = [];
  placed.events.on('epoch', (stats) => epochs.push(stats));
  const summary = await placed.done;
  expect(summary.epochs.map((e) => e.samples)).toEqual([SAMPLES, SAMPLES]);
  expect(epochs.map((e) => e.epoch)).toEqual([1, 2]);
  const weights = await weightsOf(network);
  expect(maxAbsDiff(weights, reference)).toBeLessThan(1e-6);
  expect(network.system.isAlive(placed.ref)).toBe(false); // its node is closed
  expect(tf.memory().numTensors - weights.length).toBe(before); // the spec's tensors went with the request
  tf.dispose([...weights, ...reference]);
  await network.dispose();
});

test('a sentinel in a child process reads MNIST itself, reports each epoch here, and leaves nothing on the gates', async () => {
  const network = new Network({ inputShape: [784], gates: mnistMlp(), optimizer: () => new SGD({ learningRate: 0.05 }) });
  try {
    const placed = await network.attachPlaced({ name: 'mnist', mode: 'train', data: { kind: 'mnist', dir: MNIST_DIR, split: 'train', to: 1024, scale: 1 / 0.3081 }, epochs: 2, batchSize: 64 }, { kind: 'process' });
    let batches = 0;
    placed.events.on('batch', () => batches++);
    const summary = await placed.done;
    expect(summary.stoppedBy).toBe('epochs');
    expect(summary.epochs.map((e) => [e.samples, e.failedBatches])).toEqual([[1024, 0], [1024, 0]]);
    expect(summary.epochs[1]?.loss).toBeLessThan(summary.epochs[0]?.loss as number);
    expect(batches).toBe(32);
    expect(await network.detachId(placed.ref.id)).toBe(0);
  } finally {
    await network.dispose();
  }
});

test('a rejected spec gets the node\'s named error, and its node is closed', async () => {
  const network = new Network({ inputShape: [784], gates: mnistMlp(), optimizer: () => new SGD({ learningRate: 0.05 }) });
  try {
    const closed: string[] = [];
    network.system.events.on('nodeDown', (node) => closed.push(node));
    await expect(network.attachPlaced({ name: 'bad', mode: 'train', data: { kind: 'mnist', dir: MNIST_DIR, split: 'test', from: 9000, to: 20_000 } }, { kind: 'worker' })).rejects.toThrow(InvalidArgumentError);
    await expect(network.attachPlaced({ name: 'bad', mode: 'train', data: { kind: 'mnist', dir: MNIST_DIR, split: 'test' }, loss: 'hinge' }, { kind: 'worker' })).rejects.toThrow(/Unknown loss 'hinge'/);
    expect(closed).toHaveLength(2); // both nodes were started and closed again
  } finally {
    await network.dispose();
  }
});

test('a placed sentinel whose node goes down fails with a TransportError; detaching one stops it', async () => {
  const network = new Network({ inputShape: [784], gates: mnistMlp(), optimizer: () => new SGD({ learningRate: 0.05 }) });
  try {
    const spec = (): SentinelSpec => ({ name: 'long', mode: 'train', data: { kind: 'mnist', dir: MNIST_DIR, split: 'test', to: 2000 }, epochs: 50, batchSize: 50 });
    const crashing = await network.attachPlaced(spec(), { kind: 'worker' });
    await new Promise<void>((resolve) => crashing.events.once('batch', () => resolve()));
    void crashing.node.close(); // as if the thread died
    await expect(crashing.done).rejects.toThrow(TransportError);
    expect(await network.detachId(crashing.ref.id)).toBe(0);

    const detached = await network.attachPlaced(spec(), { kind: 'worker' });
    await new Promise<void>((resolve) => detached.events.once('batch', () => resolve()));
    await detached.detach();
    await expect(detached.done).rejects.toThrow(ActorStoppedError);
    expect(await network.detachId(detached.ref.id)).toBe(0);
  } finally {
    await network.dispose();
  }
});
