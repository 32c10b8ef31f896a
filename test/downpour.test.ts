/**
 * Downpour SGD across threads and processes (trainDistributed): replicas in worker threads train
 * a chain of gates against a shard on the main thread, each push's staleness recorded; a replica
 * killed with SIGKILL mid-run, under a bounded delay, neither stalls the others nor the shard;
 * tensor memory returns to its baseline.
 */
import * as tf from '@tensorflow/tfjs';
import type { DataSpec } from '../src/data/index.js';
import { trainDistributed } from '../src/parallel/index.js';
import { chainModel } from '../src/ps/index.js';
import type { ModelSpec } from '../src/protocol/index.js';
import { setupBackend } from './helpers.js';

beforeAll(setupBackend);

const MODEL: ModelSpec = {
  kind: 'layers',
  inputShape: [4],
  gates: [
    { name: 'hidden', layers: [{ className: 'Dense', config: { units: 16, activation: 'tanh', kernelInitializer: { className: 'GlorotUniform', config: { seed: 1 } } } }] },
    { name: 'out', layers: [{ className: 'Dense', config: { units: 2, kernelInitializer: { className: 'GlorotUniform', config: { seed: 2 } } } }] },
  ],
};

/** Two classes: whether x0 · x1 > 0 (XOR of signs), over 4 features. */
function data(n: number, seed: number): { x: Float32Array; y: Int32Array } {
  let s = seed;
  const rand = () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648) * 2 - 1;
  const x = Float32Array.from({ length: n * 4 }, rand);
  return { x, y: Int32Array.from({ length: n }, (_, i) => (x[i * 4]! * x[i * 4 + 1]! > 0 ? 1 : 0)) };
}
const spec = (n: number, seed: number): DataSpec => {
  const { x, y } = data(n, seed);
  return { kind: 'tensors', x: tf.tensor2d(x, [n, 4]), y: tf.tensor1d(y, 'int32'), numClasses: 2, seed };
};

/** Accuracy of `params` on fresh samples. */
function accuracy(params: Map<string, tf.Tensor>): number {
  const model = chainModel(MODEL as Extract<ModelSpec, { kind: 'layers' }>);
  const { x, y } = data(1000, 99);
  const input = tf.tensor2d(x, [1000, 4]);
  const logits = model.predict!(params, input);
  const predicted = Array.from(tf.tidy(() => tf.argMax(logits, 1).dataSync()));
  tf.dispose([input, logits]);
  model.dispose?.();
  return predicted.reduce((n, p, i) => n + (p === y[i] ? 1 : 0), 0) / 1000;
}

test('replicas in worker threads train against a shard on the main thread; every push has its staleness recorded', async () => {
  const baseline = tf.memory().numTensors;
  const specs = [spec(2000, 1), spec(2000, 2)];
  const losses = new Map<string, number[]>();
  const result = await trainDistributed({
    model: MODEL,
    data: specs,
    replicas: 2,
    shards: 2,
    placement: 'worker',
    optimizer: { type: 'adagrad', learningRate: 0.1 },
    batchSize: 32,
    epochs: 4,
    nFetch: 2,
    nPush: 2,
    onStep: (replica, { loss }) => losses.set(replica, [...(losses.get(replica) ?? []), loss]),
  });
  specs.forEach((s) => s.kind === 'tensors' && tf.dispose([s.x, s.y]));
  expect(result.replicas.map((r) => ('steps' in r ? r.steps : r.error.message))).toEqual([252, 252]);
  const pushes = result.stats.reduce((n, s) => n + s.pushes, 0);
  expect(pushes).toBe(2 * 2 * 126); // per shard, per replica: one push every 2 of its 252 steps
  expect(result.staleness.reduce((a, b) => a + b, 0)).toBe(pushes);
  expect(accuracy(result.params)).toBeGreaterThan(0.9);
  for (const series of losses.values()) expect(series.slice(-20).reduce((a, b) => a + b) / 20).toBeLessThan(series.slice(0, 20).reduce((a, b) => a + b) / 20);
  result.params.forEach((t) => t.dispose());
  expect(tf.memory().numTensors).toBe(baseline);
});

test('a replica killed with SIGKILL mid-run, under a bounded delay, neither stalls the other replicas nor the shard', async () => {
  const baseline = tf.memory().numTensors;
  const specs = [spec(1500, 3), spec(1500, 4), spec(1500, 5)];
  let killed = false;
  let kill: (() => void) | undefined;
  const result = await trainDistributed({
    model: MODEL,
    data: specs,
    replicas: 3,
    placement: 'process',
    optimizer: { type: 'adagrad', learningRate: 0.1 },
    batchSize: 32,
    epochs: 3,
    maxDelay: 4,
    onStarted: (job) => {
      kill = () => {
        const node = job.nodes.get('replica-1');
        if (node && !killed) {
          killed = true;
          process.kill(node.pid, 'SIGKILL');
        }
      };
    },
    onStep: (replica, { step }) => replica === 'replica-1' && step >= 10 && kill?.(),
  });
  specs.forEach((s) => s.kind === 'tensors' && tf.dispose([s.x, s.y]));
  expect(killed).toBe(true);
  const [first, dead, third] = result.replicas;
  expect(dead).toMatchObject({ replica: 'replica-1', error: expect.objectContaining({ message: expect.stringMatching(/went down/) }) });
  expect(first).toMatchObject({ replica: 'replica-0', steps: 141, stoppedBy: 'epochs' });
  expect(third).toMatchObject({ replica: 'replica-2', steps: 141, stoppedBy: 'epochs' });
  expect(result.stats[0]?.replicas).toEqual([]); // every replica left
  expect(accuracy(result.params)).toBeGreaterThan(0.85);
  result.params.forEach((t) => t.dispose());
  expect(tf.memory().numTensors).toBe(baseline);
});
