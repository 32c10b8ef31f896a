/**
 * Gates split by output units (tensor parallelism): a split network computes what the whole
 * network computes (same weights after training, same predictions), its state reads and writes
 * as the whole gate's, bad input and detach leave no tensor behind, and auto placement splits
 * the MNIST MLP's dominant first gate between a worker thread and the main thread.
 */
import * as tf from '@tensorflow/tfjs';
import { type ErrorInfo, fromErrorInfo, InvalidArgumentError, NonFiniteError, TransportError } from '../src/errors.js';
import { mnistMlp } from '../src/models/index.js';
import { type GateSpec } from '../src/gate/index.js';
import { Network } from '../src/network/index.js';
import { type Placement } from '../src/deploy/index.js';
import { balancedPlacement, gateCosts, type PlacementSpec, placementBottleneck, resolvePlacement, splitPlacement } from '../src/deploy/placement.js';
import { DCASGD, type OptimizerSpec } from '../src/optim/index.js';
import type { Batch, DataProvider } from '../src/data/index.js';
import { Sentinel } from '../src/sentinel/index.js';
import path from 'node:path';
import { exportModel, loadCheckpoint, loadExportedModel, saveCheckpoint } from '../src/persist/index.js';
import { blobs, maxAbsDiff, setupBackend, useTempDir } from './helpers.js';

beforeAll(async () => {
  await setupBackend();
});

const FEATURES = 10;
const CLASSES = 4;

/** Three single-Dense gates with seeded initial weights, so that every placement starts equal. */
function gates(): GateSpec[] {
  const init = (seed: number) => tf.initializers.glorotUniform({ seed });
  return [
    { name: 'hidden', layers: [tf.layers.dense({ units: 24, activation: 'relu', kernelInitializer: init(1) })] },
    { name: 'middle', layers: [tf.layers.dense({ units: 12, activation: 'tanh', kernelInitializer: init(2) })] },
    { name: 'logits', layers: [tf.layers.dense({ units: CLASSES, kernelInitializer: init(3) })] },
  ];
}

/** Elementwise, with per-parameter state: splitting by units must not change a thing. */
const OPTIMIZER: OptimizerSpec = { type: 'dcasgd', learningRate: 0.05, momentum: 0.9 };

/** Trains 20 batches of 16 with concurrency 1; returns every gate's state (the caller owns it). */
async function train(placement: Placement) {
  const network = await Network.create({ inputShape: [FEATURES], gates: gates(), optimizer: OPTIMIZER, placement });
  try {
    const sentinel = new Sentinel({ name: 'train', mode: 'train', data: blobs(20 * 16, FEATURES, CLASSES, 7), batchSize: 16, concurrency: 1 });
    network.attach(sentinel);
    await sentinel.done;
    return await network.getState();
  } finally {
    await network.dispose();
  }
}

const tensorsOf = (states: Awaited<ReturnType<typeof train>>) => states.flatMap((s) => [...s.weights, ...s.optimizer].map((w) => w.tensor));

describe('a split gate computes what the whole gate computes', () => {
  let reference: Awaited<ReturnType<typeof train>>;
  beforeAll(async () => {
    reference = await train('main');
  });
  afterAll(() => tf.dispose(tensorsOf(reference)));

  test.each<[string, Placement]>([
    ['the first gate split on the main thread', [{ kind: 'main', shards: [{ kind: 'main', units: 10 }] }, { kind: 'main' }, { kind: 'main' }]],
    ['the middle gate split in three (its input gradient is summed)', [{ kind: 'main' }, { kind: 'main', shards: [{ kind: 'main', units: 5 }, { kind: 'main', units: 3 }] }, { kind: 'main' }]],
    ['shards in a worker thread, on both sides of the boundary', [{ kind: 'main', shards: [{ kind: 'worker', group: 'w', units: 16 }] }, { kind: 'worker', group: 'w', shards: [{ kind: 'main', units: 5 }] }, { kind: 'main' }]],
    ['a shard in a child process', [{ kind: 'main' }, { kind: 'main' }, { kind: 'main', shards: [{ kind: 'process', units: 2 }] }]],
  ])('same weights and optimizer state within 1e-5 with %s', async (_name, placement) => {
    const states = await train(placement);
    try {
      states.forEach((state, g) => {
        expect(state.outputShape).toEqual(reference[g]?.outputShape);
        expect(state.layers).toEqual(reference[g]?.layers.map((l) => ({ ...l, config: { ...l.config, name: state.layers[0]?.config.name } })));
        expect(state.weights.map((w) => [w.name, w.tensor.shape])).toEqual(reference[g]?.weights.map((w) => [w.name, w.tensor.shape]));
        expect(state.optimizer.map((w) => [w.name, w.tensor.shape])).toEqual(reference[g]?.optimizer.map((w) => [w.name, w.tensor.shape]));
      });
      expect(maxAbsDiff(tensorsOf(states), tensorsOf(reference))).toBeLessThan(1e-5);
    } finally {
      tf.dispose(tensorsOf(states));
    }
  });
});

test('state moves between a split and a whole network; predictions agree', async () => {
  const split = await Network.create({ inputShape: [FEATURES], gates: gates(), optimizer: OPTIMIZER, placement: [{ kind: 'main', shards: [{ kind: 'main', units: 7 }] }, { kind: 'main' }, { kind: 'main' }] });
  const whole = await Network.create({ inputShape: [FEATURES], gates: gates(), optimizer: OPTIMIZER, placement: 'main' });
  const x = tf.randomNormal([6, FEATURES], 0, 1, 'float32', 3);
  try {
    const sentinel = new Sentinel({ name: 'train', mode: 'train', data: blobs(128, FEATURES, CLASSES, 2), batchSize: 16, concurrency: 4, epochs: 2 });
    split.attach(sentinel);
    await sentinel.done;
    await whole.setState(await split.getState());
    const [a, b] = await Promise.all([split.predict(x), whole.predict(x)]);
    expect(maxAbsDiff([a], [b])).toBeLessThan(1e-6);
    tf.dispose([a, b]);
    // And back: the whole network's (scaled) weights, split again.
    const states = await whole.getState();
    const scaled = states.map((s) => ({ weights: s.weights.map((w) => ({ name: w.name, tensor: tf.tidy(() => tf.mul(w.tensor, 0.5)) })) }));
    tf.dispose(states.flatMap((s) => [...s.weights, ...s.optimizer].map((w) => w.tensor)));
    await Promise.all([split.setState(scaled.map((s) => ({ weights: s.weights.map((w) => ({ name: w.name, tensor: tf.clone(w.tensor) })) }))), whole.setState(scaled)]);
    const [c, d] = await Promise.all([split.predict(x), whole.predict(x)]);
    expect(maxAbsDiff([c], [d])).toBeLessThan(1e-6);
    tf.dispose([c, d]);
  } finally {
    x.dispose();
    await Promise.all([split.dispose(), whole.dispose()]);
  }
});

describe('checkpoints and export of a split network', () => {
  const dir = useTempDir('akk-shard-');

  test('a checkpoint and an exported model of a split network are those of the whole one', async () => {
    const placement: Placement = [{ kind: 'main', shards: [{ kind: 'worker', units: 9 }] }, { kind: 'main' }, { kind: 'main' }];
    const split = await Network.create({ inputShape: [FEATURES], gates: gates(), optimizer: OPTIMIZER, placement });
    const whole = await Network.create({ inputShape: [FEATURES], gates: gates(), optimizer: OPTIMIZER, placement: 'main' });
    const x = tf.randomNormal([6, FEATURES], 0, 1, 'float32', 4);
    try {
      const sentinel = new Sentinel({ name: 'train', mode: 'train', data: blobs(128, FEATURES, CLASSES, 5), batchSize: 16, concurrency: 4 });
      split.attach(sentinel);
      await sentinel.done;
      await saveCheckpoint(split, path.join(dir.path, 'ckpt'));
      await exportModel(split, path.join(dir.path, 'model'));
      await loadCheckpoint(whole, path.join(dir.path, 'ckpt'));
      const model = await loadExportedModel(path.join(dir.path, 'model'));
      const [a, b] = await Promise.all([split.predict(x), whole.predict(x)]);
      const c = model.predict(x) as tf.Tensor;
      expect(maxAbsDiff([a], [b])).toBeLessThan(1e-6);
      expect(maxAbsDiff([a], [c])).toBeLessThan(1e-5);
      tf.dispose([a, b, c]);
      model.dispose();
    } finally {
      x.dispose();
      await Promise.all([split.dispose(), whole.dispose()]);
    }
  });
});

test('a checkpoint of the wrong shape is refused as a whole, naming the whole shape', async () => {
  const network = await Network.create({ inputShape: [FEATURES], gates: gates(), optimizer: OPTIMIZER, placement: [{ kind: 'main', shards: [{ kind: 'main', units: 7 }] }, { kind: 'main' }, { kind: 'main' }] });
  try {
    const before = await network.getState();
    const bad = before.map((s, g) => ({ weights: s.weights.map((w) => ({ name: w.name, tensor: g === 0 && w.name.endsWith('kernel') ? tf.zeros([FEATURES, 20]) : tf.clone(w.tensor) })) }));
    await expect(network.setState(bad)).rejects.toThrow(/expected \[10,24\]/);
    const after = await network.getState();
    expect(maxAbsDiff(tensorsOf(after), tensorsOf(before))).toBe(0);
    tf.dispose([...tensorsOf(before), ...tensorsOf(after)]);
  } finally {
    await network.dispose();
  }
});

test('bad input, concurrency and detach on a split gate leave no tensor behind', async () => {
  const baseline = tf.memory().numTensors;
  const network = await Network.create({ inputShape: [FEATURES], gates: gates(), optimizer: OPTIMIZER, placement: [{ kind: 'main', shards: [{ kind: 'main', units: 12 }] }, { kind: 'main', shards: [{ kind: 'main', units: 4 }] }, { kind: 'main' }] });
  try {
    const trainer = new Sentinel({ name: 'train', mode: 'train', data: blobs(4096, FEATURES, CLASSES, 3), batchSize: 16, concurrency: 6, epochs: 100 });
    const poisoned: DataProvider = {
      size: 64,
      inputShape: [FEATURES],
      numClasses: CLASSES,
      *batches(): Iterator<Batch> {
        for (let i = 0; i < 4; i++) {
          const values = new Float32Array(16 * FEATURES).fill(0.5);
          if (i % 2 === 1) values[3] = NaN;
          yield { x: tf.tensor2d(values, [16, FEATURES]), y: tf.zeros([16], 'int32'), labels: new Int32Array(16), indices: new Int32Array(16), size: 16 };
        }
      },
    };
    const bad = new Sentinel({ name: 'bad', mode: 'train', data: poisoned, batchSize: 16, concurrency: 2 });
    const failures: ErrorInfo[] = [];
    bad.events.on('batchError', (error: ErrorInfo) => failures.push(error));
    const trained = new Promise((resolve) => trainer.events.once('batch', resolve));
    network.attach(trainer);
    network.attach(bad);
    await Promise.allSettled([bad.done]);
    await trained;
    await network.detach(trainer); // mid-epoch: batches in flight at gates, shards and joins
    expect(failures.map((e) => fromErrorInfo(e))).toContainEqual(expect.any(NonFiniteError));
  } finally {
    await network.dispose();
  }
  expect(tf.memory().numTensors).toBe(baseline);
});

test('a worker hosting a shard that dies fails training with a TransportError, never a hang', async () => {
  const baseline = tf.memory().numTensors;
  const network = await Network.create({ inputShape: [FEATURES], gates: gates(), optimizer: OPTIMIZER, placement: [{ kind: 'main', shards: [{ kind: 'worker', units: 12 }] }, { kind: 'main' }, { kind: 'main' }] });
  const sentinel = new Sentinel({ name: 'train', mode: 'train', data: blobs(4096, FEATURES, CLASSES, 3), batchSize: 16, concurrency: 4, epochs: 50 });
  const batches = new Promise((resolve) => sentinel.events.once('batch', resolve));
  try {
    network.attach(sentinel);
    await batches;
    network.nodes[0]?.kill();
    await expect(sentinel.done).rejects.toBeInstanceOf(TransportError);
    await expect(network.getState()).rejects.toThrow(/hidden\/shard-0/);
  } finally {
    await network.dispose();
  }
  expect(tf.memory().numTensors).toBe(baseline);
});

describe('placement specs with shards', () => {
  test('only a gate of one Dense layer can be split, and its shards must leave it a unit', async () => {
    const twoLayers: GateSpec[] = [{ layers: [tf.layers.dense({ units: 8 }), tf.layers.dense({ units: 4 })] }];
    await expect(Network.create({ inputShape: [FEATURES], gates: twoLayers, optimizer: OPTIMIZER, placement: [{ kind: 'main', shards: [{ kind: 'main', units: 2 }] }] })).rejects.toThrow(/exactly one Dense layer/);
    await expect(Network.create({ inputShape: [FEATURES], gates: gates(), optimizer: OPTIMIZER, placement: [{ kind: 'main', shards: [{ kind: 'main', units: 24 }] }, { kind: 'main' }, { kind: 'main' }] })).rejects.toThrow(/at least one unit/);
    await expect(Network.create({ inputShape: [FEATURES], gates: gates(), optimizer: OPTIMIZER, placement: [{ kind: 'main', shards: [{ kind: 'main', units: 2.5 }] }, { kind: 'main' }, { kind: 'main' }] })).rejects.toThrow(InvalidArgumentError);
    await expect(Network.create({ inputShape: [FEATURES], gates: gates(), optimizer: () => new DCASGD({ learningRate: 0.1 }), placement: [{ kind: 'main', shards: [{ kind: 'main', units: 2 }] }, { kind: 'main' }, { kind: 'main' }] })).rejects.toThrow(/OptimizerSpec/);
  });

  test('auto placement splits the dominant gate at the balance point', () => {
    // Gate 0 holds 80% of the cost: with equal shares the cut falls at 5/8 of it, with the main thread's 0.7 share at 10/1.7 of 8.
    expect(balancedPlacement([8, 1, 1], [512, 256, 10], 2, 1)).toEqual([{ kind: 'main', shards: [{ kind: 'worker', group: 'auto-0', units: 320 }] }, { kind: 'main' }, { kind: 'main' }]);
    expect(balancedPlacement([8, 1, 1], [512, 256, 10], 2)).toEqual([{ kind: 'main', shards: [{ kind: 'worker', group: 'auto-0', units: 376 }] }, { kind: 'main' }, { kind: 'main' }]);
    // Nothing divisible: the contiguous partition, as before.
    expect(balancedPlacement([8, 1, 1], [undefined, undefined, undefined], 2)).toEqual([{ kind: 'worker', group: 'auto-0' }, { kind: 'main' }, { kind: 'main' }]);
    // Gates narrower than MIN_SPLIT_UNITS are not split; a cut past 95% of a gate splits nothing.
    expect(balancedPlacement([8, 1, 1], [16, 8, 2], 2).every((p) => !p.shards)).toBe(true);
    expect(splitPlacement([100, 1], [32, 10], 2, 0.1)?.[0]?.shards).toEqual([{ kind: 'worker', group: 'auto-0', units: 29 }]);
    expect(splitPlacement([100, 1], [32, 10], 2, 0.05)).toBeUndefined();
    // A cut at a gate boundary splits nothing.
    expect(balancedPlacement([1, 1], [4, 4], 2, 1)).toEqual([{ kind: 'worker', group: 'auto-0' }, { kind: 'main' }]);
    // A single gate has no other place to go: it is split even though splitting costs.
    expect(balancedPlacement([10], [512], 2)).toEqual([{ kind: 'main', shards: [{ kind: 'worker', group: 'auto-0', units: 301 }] }]);
  });

  test('auto placement splits only where the split pays for its overhead', () => {
    // Costs [8, 1, 1] with a main-thread share of 0.5. Whole: gate 0 in the worker, 8 against
    // 2 / 0.5 = 4 on the main thread. Split 5/8 of gate 0 off (320 of 512 units): 5 · 1.25 = 6.25
    // in the worker, (3 · 1.25 + 2) / 0.5 = 11.5 on the main thread, so whole wins; without overhead the split
    // is 5 against (3 + 2) / 0.5 = 10, still worse. With share 1, the split's 6.25 / 5.75 beat 8.
    const whole: PlacementSpec[] = [{ kind: 'worker', group: 'auto-0' }, { kind: 'main' }, { kind: 'main' }];
    const split: PlacementSpec[] = [{ kind: 'main', shards: [{ kind: 'worker', group: 'auto-0', units: 320 }] }, { kind: 'main' }, { kind: 'main' }];
    const [costs3, units3] = [[8, 1, 1], [512, 256, 10]];
    expect(placementBottleneck(whole, costs3, units3, 0.5)).toBeCloseTo(8);
    expect(placementBottleneck(split, costs3, units3, 0.5)).toBeCloseTo(11.5);
    expect(placementBottleneck(split, costs3, units3, 0.5, 0)).toBeCloseTo(10);
    expect(placementBottleneck(split, costs3, units3, 1)).toBeCloseTo(6.25);
    expect(balancedPlacement(costs3, units3, 2, 1)).toEqual(split);
    expect(balancedPlacement([100, 1], [32, 10], 2, 0.1)).toEqual([{ kind: 'worker', group: 'auto-0' }, { kind: 'main' }]);
    // The MNIST MLP on 2 cores: gate 0 whole in the worker. splitPlacement still offers the split (hostGates' threads).
    const context = { gates: mnistMlp(), inputShape: [784], backend: 'wasm', portable: true, cores: 2 };
    expect(resolvePlacement('auto', context)).toEqual([{ kind: 'worker', group: 'auto-0' }, { kind: 'main' }, { kind: 'main' }]);
    const costs = gateCosts(mnistMlp(), [784]);
    expect(splitPlacement(costs, [512, 256, 10], 2)?.[0]).toMatchObject({ kind: 'main', shards: [{ kind: 'worker', group: 'auto-0', units: 452 }] });
  });
});
