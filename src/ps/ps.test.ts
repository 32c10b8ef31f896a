/**
 * Downpour SGD in one process, checked against references: one replica with nFetch = nPush = 1
 * and plain SGD gives the weights of synchronous SGD; two replicas with `maxDelay: 0` give
 * synchronous SGD on their summed batches; AdaGrad and DC-ASGD on the server match values
 * computed by hand; parameters cut into row ranges over shards join up; a replica that leaves
 * does not stall the others; tensor memory returns to its baseline.
 */
import * as tf from '@tensorflow/tfjs';
import { maxAbsDiff, setupBackend } from '../../test/helpers.js';
import { ActorSystem, type ActorRef } from '../actor/index.js';
import { ArrayProvider, type DataProvider } from '../data/index.js';
import type { ModelSpec, PsMessage, PsReply, PsShardInfo } from '../protocol/index.js';
import { chainModel, cutParts, joinParts, ParameterShard, planShards, runReplica } from './index.js';

beforeAll(setupBackend);

const SPEC: Extract<ModelSpec, { kind: 'layers' }> = {
  kind: 'layers',
  inputShape: [6],
  gates: [
    { name: 'g0', layers: [{ className: 'Dense', config: { units: 5, activation: 'tanh', kernelInitializer: { className: 'GlorotUniform', config: { seed: 3 } } } }] },
    { name: 'g1', layers: [{ className: 'Dense', config: { units: 3, kernelInitializer: { className: 'GlorotUniform', config: { seed: 4 } } } }] },
  ],
  loss: 'softmaxCrossEntropy',
};

function data(n: number, seed: number): DataProvider {
  let s = seed;
  const rand = () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648) * 2 - 1;
  const x = Float32Array.from({ length: n * 6 }, rand);
  const y = Int32Array.from({ length: n }, (_, i) => (x[i * 6]! + x[i * 6 + 1]! > 0 ? 1 : x[i * 6 + 2]! > 0 ? 2 : 0));
  return new ArrayProvider({ x, y, inputShape: [6], numClasses: 3, seed });
}

/** Shards in `system` holding `init` cut by `plan`; their infos for replicas. */
function startShards(system: ActorSystem, init: Map<string, tf.Tensor>, shards: number, options: Omit<ConstructorParameters<typeof ParameterShard>[0], 'index' | 'params'>): PsShardInfo[] {
  const plan = planShards([...init].map(([name, t]) => ({ name, shape: t.shape })), shards);
  return plan.map((parts, index) => ({ parts, ref: system.spawn<PsMessage>(() => new ParameterShard({ ...options, index, params: cutParts(init, parts) }), { name: `shard-${index}` }) }));
}

async function shardParams(system: ActorSystem, shards: PsShardInfo[]): Promise<Map<string, tf.Tensor>> {
  const parts = [];
  for (const s of shards) {
    const state = await system.ask<PsReply, PsMessage>(s.ref, (replyTo) => ({ type: 'ps.getState', replyTo }));
    if (state.type !== 'ps.state') throw new Error(state.type);
    state.optimizer.forEach((o) => o.tensor.dispose());
    for (const p of state.params) parts.push({ part: s.parts.find((q) => q.name === p.name)!, tensor: p.tensor });
  }
  return joinParts(parts);
}

/** Synchronous SGD over the same batches: each step, the gradients of every replica's batch at the same weights, summed. */
function synchronousSgd(datasets: DataProvider[], steps: number, batchSize: number, lr: number): Map<string, tf.Tensor> {
  const model = chainModel(SPEC);
  let params = new Map(model.init().map((p) => [p.name, p.tensor]));
  const iterators = datasets.map((d) => d.batches(0, batchSize, true));
  for (let s = 0; s < steps; s++) {
    const sums = new Map<string, tf.Tensor>();
    for (const it of iterators) {
      const batch = it.next().value!;
      const { grads } = model.gradient(params, batch);
      tf.dispose([batch.x, batch.y]);
      for (const g of grads) {
        const old = sums.get(g.name);
        sums.set(g.name, old ? tf.add(old, g.tensor) : g.tensor);
        if (old) tf.dispose([old, g.tensor]);
      }
    }
    const next = new Map([...params].map(([name, w]) => [name, tf.tidy(() => tf.sub(w, tf.mul(sums.get(name)!, lr)))]));
    params.forEach((t) => t.dispose());
    sums.forEach((t) => t.dispose());
    params = next;
  }
  model.dispose?.();
  return params;
}

test('planShards balances by size and cuts large parameters into row ranges that join up', () => {
  const plan = planShards([{ name: 'w', shape: [100, 10] }, { name: 'b', shape: [10] }, { name: 'v', shape: [10, 3] }], 3);
  const load = plan.map((parts) => parts.reduce((n, p) => n + (p.rows ? (p.rows[1] - p.rows[0]) * 10 : p.param === 'b' ? 10 : 30), 0));
  expect(Math.max(...load) - Math.min(...load)).toBeLessThanOrEqual(40);
  expect(plan.flat().filter((p) => p.param === 'w').map((p) => p.rows)).toHaveLength(3);
  const w = tf.range(0, 1000).reshape([100, 10]);
  const params = new Map([['w', w], ['b', tf.zeros([10])], ['v', tf.ones([10, 3])]]);
  const before = tf.memory().numTensors;
  const joined = joinParts(plan.flatMap((parts) => cutParts(params, parts).map((n, i) => ({ part: parts[i]!, tensor: n.tensor }))));
  expect(maxAbsDiff([joined.get('w')!], [w])).toBe(0);
  expect(tf.memory().numTensors).toBe(before + 3);
  joined.forEach((t) => t.dispose());
  params.forEach((t) => t.dispose());
  expect(() => planShards([{ name: 'a', shape: [1] }], 0)).toThrow(/at least one parameter shard/);
});

test.each([
  ['one replica, nFetch = nPush = 1, one shard', 1, 1],
  ['one replica, two shards (row ranges)', 1, 2],
  ['two replicas with maxDelay 0: synchronous SGD on the summed batch', 2, 2],
])('%s equals synchronous SGD within 1e-5', async (_name, replicas, shards) => {
  const baseline = tf.memory().numTensors;
  const system = new ActorSystem({ name: 'ps' });
  const datasets = Array.from({ length: replicas }, (_, r) => data(64, 11 + r));
  const [lr, batchSize, steps] = [0.2, 16, 4];
  const init = chainModel(SPEC);
  const initial = new Map(init.init().map((p) => [p.name, p.tensor]));
  init.dispose?.();
  const infos = startShards(system, initial, shards, { optimizer: { type: 'sgd', learningRate: lr }, maxDelay: 0 });
  initial.forEach((t) => t.dispose());
  for (let r = 0; r < replicas; r++) infos.forEach((s) => s.ref.tell({ type: 'ps.join', replica: `r${r}`, clock: 0 }));
  const models = datasets.map(() => chainModel(SPEC));
  const summaries = await Promise.all(datasets.map((d, r) => runReplica({ replica: `r${r}`, system, shards: infos, model: models[r]!, data: d, batchSize, epochs: 1, maxDelay: 0 })));
  expect(summaries.map((s) => s.steps)).toEqual(datasets.map(() => steps));
  const ours = await shardParams(system, infos);
  const reference = synchronousSgd(datasets, steps, batchSize, lr);
  expect(ours.size).toBe(4);
  expect(maxAbsDiff([...reference.keys()].map((name) => ours.get(name)!), [...reference.values()])).toBeLessThan(1e-5);
  // The weights did move.
  const moved = chainModel(SPEC);
  const start = moved.init();
  expect(maxAbsDiff(start.map((p) => p.tensor), start.map((p) => reference.get(p.name)!))).toBeGreaterThan(1e-2);
  start.forEach((p) => p.tensor.dispose());
  moved.dispose?.();
  [...ours.values(), ...reference.values()].forEach((t) => t.dispose());
  models.forEach((m) => m.dispose?.());
  system.shutdown();
  expect(tf.memory().numTensors).toBe(baseline);
});

/** One shard with `w = [1, 2]`; pushes and fetches by hand. */
async function handShard(optimizer: ConstructorParameters<typeof ParameterShard>[0]['optimizer']) {
  const system = new ActorSystem({ name: 'hand' });
  const ref = system.spawn<PsMessage>(() => new ParameterShard({ index: 0, params: [{ name: 'w', tensor: tf.tensor1d([1, 2]) }], optimizer }));
  const ask = (build: (replyTo: ActorRef<PsReply>) => PsMessage) => system.ask<PsReply, PsMessage>(ref, build);
  const push = (replica: string, g: number[], version: number) => ask((replyTo) => ({ type: 'ps.push', replica, clock: 1, version, grads: [{ name: 'w', tensor: tf.tensor1d(g) }], replyTo }));
  const fetch = async (replica: string) => {
    const reply = await ask((replyTo) => ({ type: 'ps.fetch', replica, clock: 0, replyTo }));
    if (reply.type !== 'ps.params') throw new Error(reply.type);
    const values = Array.from(reply.params[0]!.tensor.dataSync());
    reply.params[0]!.tensor.dispose();
    return values;
  };
  return { system, ref, push, fetch };
}

test('AdaGrad on the server: w ← w − γ g / sqrt(0.1 + Σ g²), by hand', async () => {
  const { system, push, fetch } = await handShard({ type: 'adagrad', learningRate: 0.5 });
  await push('a', [0.2, -0.4], 0);
  await push('b', [0.1, 0.3], 1);
  const G = [0.1 + 0.04 + 0.01, 0.1 + 0.16 + 0.09];
  const w1 = [1 - (0.5 * 0.2) / Math.sqrt(0.14), 2 + (0.5 * 0.4) / Math.sqrt(0.26)];
  const expected = [w1[0]! - (0.5 * 0.1) / Math.sqrt(G[0]!), w1[1]! - (0.5 * 0.3) / Math.sqrt(G[1]!)];
  const got = await fetch('a');
  got.forEach((v, i) => expect(v).toBeCloseTo(expected[i]!, 6));
  system.shutdown();
});

test('DC-ASGD on the server compensates a stale push with the weights its replica fetched (w_bak), by hand', async () => {
  const baseline = tf.memory().numTensors;
  const { system, push, fetch } = await handShard({ type: 'dcasgd', learningRate: 0.1, variant: 'constant', lambda: 0.5 });
  expect(await fetch('a')).toEqual([1, 2]); // a's w_bak = [1, 2]
  const pushed = await push('b', [1, -1], 0); // b never fetched: no compensation
  expect(pushed).toMatchObject({ type: 'ps.pushed', version: 1, staleness: 0 });
  const w1 = [0.9, 2.1];
  const g = [0.4, 0.2];
  const stale = await push('a', g, 0); // computed at version 0, applied at version 1
  expect(stale).toMatchObject({ staleness: 1 });
  // g̃ = g + λ g² (w − w_bak); w ← w − η g̃
  const expected = w1.map((w, i) => w - 0.1 * (g[i]! + 0.5 * g[i]! * g[i]! * (w - [1, 2][i]!)));
  (await fetch('c')).forEach((v, i) => expect(v).toBeCloseTo(expected[i]!, 6));
  system.shutdown();
  expect(tf.memory().numTensors).toBe(baseline);
});

test('a push with a wrong name, shape or a NaN is refused by name and changes nothing', async () => {
  const { system, ref, fetch } = await handShard({ type: 'sgd', learningRate: 1 });
  const ask = (grads: { name: string; tensor: tf.Tensor }[]) => system.ask<PsReply, PsMessage>(ref, (replyTo) => ({ type: 'ps.push', replica: 'x', clock: 1, version: 0, grads, replyTo }));
  expect(await ask([{ name: 'v', tensor: tf.tensor1d([1, 1]) }])).toMatchObject({ type: 'ps.failed', error: { code: 'ShapeMismatch' } });
  expect(await ask([{ name: 'w', tensor: tf.tensor1d([1, 1, 1]) }])).toMatchObject({ type: 'ps.failed', error: { message: expect.stringMatching(/float32 \[2\]/) } });
  expect(await ask([{ name: 'w', tensor: tf.tensor1d([NaN, 1]) }])).toMatchObject({ type: 'ps.failed', error: { code: 'NonFinite' } });
  expect(await fetch('x')).toEqual([1, 2]);
  const stats = await system.ask<PsReply, PsMessage>(ref, (replyTo) => ({ type: 'ps.getStats', replyTo }));
  expect(stats).toMatchObject({ type: 'ps.stats', version: 0, refused: 3 });
  system.shutdown();
});

test('with maxDelay, a fetch waits for the slowest replica; a replica that leaves no longer holds the others', async () => {
  const system = new ActorSystem({ name: 'delay' });
  const ref2 = system.spawn<PsMessage>(() => new ParameterShard({ index: 0, params: [{ name: 'w', tensor: tf.tensor1d([1, 2]) }], maxDelay: 1 }));
  ['fast', 'slow'].forEach((replica) => ref2.tell({ type: 'ps.join', replica, clock: 0 }));
  let answered = false;
  const replies: PsReply[] = [];
  const inbox = system.spawn<PsReply>(() => ({ receive: (m) => void (replies.push(m), (answered = true)) }));
  const push = (clock: number) => ref2.tell({ type: 'ps.push', replica: 'fast', clock, version: 0, grads: [{ name: 'w', tensor: tf.tensor1d([0, 0]) }] });
  push(1);
  push(2);
  ref2.tell({ type: 'ps.fetch', replica: 'fast', clock: 2, replyTo: inbox });
  const stats = await system.ask<PsReply, PsMessage>(ref2, (replyTo) => ({ type: 'ps.getStats', replyTo }));
  expect(stats).toMatchObject({ pushes: 2 });
  expect(answered).toBe(false); // 2 ahead of 'slow' (at 0), bound 1
  ref2.tell({ type: 'ps.leave', replica: 'slow' });
  await system.ask<PsReply, PsMessage>(ref2, (replyTo) => ({ type: 'ps.getStats', replyTo }));
  expect(replies[0]).toMatchObject({ type: 'ps.params', version: 2 });
  replies.forEach((r) => r.type === 'ps.params' && r.params.forEach((p) => p.tensor.dispose()));
  system.shutdown();
});
