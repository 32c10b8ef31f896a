/**
 * Gates: GateModule gradients against central finite differences (hand-written ops, dropout,
 * and the autograd fallback), weight stashing, parameter versions, and the Gate actor's replies,
 * error handling and detach.
 */
import * as tf from '@tensorflow/tfjs';
import { maxAbsDiff, setupBackend } from '../../test/helpers.js';
import { ActorSystem, type Actor, type ActorRef } from '../actor/index.js';
import { mulberry32 } from '../data/index.js';
import { SGD } from '../optim/index.js';
import type { GateDetached, GateMessage, SentinelReply } from '../protocol/index.js';
import { Gate } from './gate.js';
import { GateModule } from './module.js';
import { ParamStore } from './params.js';

beforeAll(setupBackend);

/** A seeded uniform tensor in [lo, hi). */
function uniform(shape: number[], seed: number, lo = -1, hi = 1): tf.Tensor {
  const random = mulberry32(seed);
  return tf.tensor(Float32Array.from({ length: tf.util.sizeFromShape(shape) }, () => lo + (hi - lo) * random()), shape);
}

const kernel = (seed: number) => tf.initializers.glorotUniform({ seed });
const bias = (seed: number) => tf.initializers.randomUniform({ minval: -0.2, maxval: 0.2, seed });
const dot = (a: ArrayLike<number>, b: ArrayLike<number>) => Array.from(a).reduce((s, v, i) => s + v * (b[i] as number), 0);

/** Frees layers' variables (`layer.dispose()` throws for a layer built but never `apply`-ed). */
function disposeLayers(layers: tf.layers.Layer[]): void {
  for (const layer of layers) for (const v of layer.weights) if (!isDisposed(v)) v.dispose();
}

/** True once a layer variable's value is freed (`read()` throws then). */
function isDisposed(v: tf.LayerVariable): boolean {
  try { return v.read().isDisposed; } catch { return true; }
}

function dense(units: number, activation: string, seed: number): tf.layers.Layer {
  return tf.layers.dense({ units, activation: activation as 'relu', kernelInitializer: kernel(seed), biasInitializer: bias(seed + 100) });
}

/**
 * The loss `f = Σ y ⊙ r` (float64 sum on the JS side) of the module's layers at explicit
 * weights, with each dropout layer applying a fixed mask from `masks`.
 */
function loss(module: GateModule, x: tf.Tensor, weights: tf.Tensor[], r: Float32Array, masks: Map<number, tf.Tensor>): number {
  let [h, offset] = [x, 0];
  module.ops.forEach((op, i) => {
    const w = weights.slice(offset, (offset += op.weights.length));
    const mask = masks.get(i);
    const out = mask ? { y: tf.mul(h, mask), saved: { tensors: [] } } : op.forward(h, w, true); // training mode: batch statistics
    out.saved.tensors.forEach((t) => t.dispose());
    if (h !== x) h.dispose();
    h = out.y;
  });
  const f = dot(h.dataSync(), r);
  if (h !== x) h.dispose();
  return f;
}

/** Central differences of `f` over every element of `base`. */
function numericGradient(base: tf.Tensor, f: (perturbed: tf.Tensor) => number, eps: number): Float64Array {
  const values = base.dataSync() as Float32Array;
  const gradient = new Float64Array(values.length);
  for (let j = 0; j < values.length; j++) {
    const [plus, minus] = [Float32Array.from(values), Float32Array.from(values)];
    plus[j] = (values[j] as number) + eps;
    minus[j] = (values[j] as number) - eps;
    const [tp, tm] = [tf.tensor(plus, base.shape), tf.tensor(minus, base.shape)];
    gradient[j] = (f(tp) - f(tm)) / ((plus[j] as number) - (minus[j] as number)); // the float32 step actually taken
    tf.dispose([tp, tm]);
  }
  return gradient;
}

/**
 * ‖a − b‖ / max(‖a‖, ‖b‖, 1e-3); the floor keeps a gradient that is exactly zero (a bias before
 * batch normalisation) from dividing float32 rounding noise by nothing.
 */
function relativeError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const d = Array.from(a, (v, i) => v - (b[i] as number));
  return Math.sqrt(dot(d, d)) / Math.max(Math.sqrt(dot(a, a)), Math.sqrt(dot(b, b)), 1e-3);
}

const conv = () => tf.layers.conv2d({ filters: 2, kernelSize: 3, activation: 'tanh', kernelInitializer: kernel(13), biasInitializer: bias(14) });
const batchNorm = () => tf.layers.batchNormalization({ gammaInitializer: bias(10), betaInitializer: bias(11) });
/** Small networks; `autograd` lists the layers that must take the autograd fallback. */
const cases: { name: string; inputShape: number[]; batch: number; layers: () => tf.layers.Layer[]; autograd?: number[] }[] = [
  { name: 'dense relu → tanh', inputShape: [5], batch: 3, layers: () => [dense(4, 'relu', 1), dense(3, 'tanh', 2)] },
  { name: 'dense sigmoid → linear', inputShape: [5], batch: 3, layers: () => [dense(4, 'sigmoid', 3), dense(3, 'linear', 4)] },
  { name: 'dense tanh → dropout 0.5 → sigmoid', inputShape: [5], batch: 4, layers: () => [dense(6, 'tanh', 5), tf.layers.dropout({ rate: 0.5 }), dense(3, 'sigmoid', 6)] },
  { name: 'dense elu (autograd fallback) → linear', inputShape: [5], batch: 3, layers: () => [dense(4, 'elu', 7), dense(3, 'linear', 8)], autograd: [0] },
  { name: 'dense → batch norm (autograd fallback) → tanh', inputShape: [5], batch: 4, layers: () => [dense(4, 'linear', 9), batchNorm(), dense(3, 'tanh', 12)], autograd: [1] },
  { name: 'conv2d tanh on [5,5,1] → flatten → dense', inputShape: [5, 5, 1], batch: 2, layers: () => [conv(), tf.layers.flatten(), dense(3, 'linear', 15)] },
];

describe('GateModule gradients match central finite differences', () => {
  test.each(cases)('$name', ({ inputShape, batch, layers, autograd }) => {
    const [start, built] = [tf.memory().numTensors, layers()];
    const module = new GateModule(built, inputShape, 42);
    for (const i of autograd ?? []) expect(module.ops[i]?.constructor.name).toBe('AutogradOp');
    const x = uniform([batch, ...inputShape], 21);
    const baseline = tf.memory().numTensors;
    const { y, state } = module.forward(x);
    const r = uniform(y.shape, 22);
    const rValues = r.dataSync() as Float32Array;
    const masks = new Map<number, tf.Tensor>(); // dropout masks of this forward pass
    module.ops.forEach((op, i) => op.layer.getClassName() === 'Dropout' && masks.set(i, tf.clone(state.saved[i]?.tensors[0] as tf.Tensor)));
    const weights = module.params.current.tensors;
    // The reference function reproduces the forward output (same weights, same masks).
    expect(Math.abs(loss(module, x, weights, rValues, masks) - dot(y.dataSync(), rValues))).toBeLessThan(1e-4);

    const { dx, grads } = module.backward(r, state, true);
    module.release(state);
    const numericDx = numericGradient(x, (xp) => loss(module, xp, weights, rValues, masks), 1e-2);
    expect(relativeError(dx?.dataSync() ?? [], numericDx)).toBeLessThan(1e-2);
    expect(grads.map((g) => g.shape)).toEqual(weights.map((w) => w.shape));
    weights.forEach((w, p) => {
      const numeric = numericGradient(w, (wp) => loss(module, x, weights.map((t, q) => (q === p ? wp : t)), rValues, masks), 1e-2);
      expect(relativeError(grads[p]?.dataSync() ?? [], numeric)).toBeLessThan(1e-2);
    });
    tf.dispose([y, r, dx, ...grads, ...masks.values()]);
    expect(tf.memory().numTensors).toBe(baseline); // backward + release freed the batch's state
    [x, module].forEach((t) => t.dispose());
    disposeLayers(built);
    expect(tf.memory().numTensors).toBeLessThanOrEqual(start);
  });
});

describe('dropout', () => {
  test('zeroes about `rate` of the inputs, scales the rest by 1/(1−rate), and backward uses the same mask', () => {
    const rate = 0.3;
    const module = new GateModule([tf.layers.dropout({ rate })], [40], 7);
    const x = uniform([50, 40], 41, 0.5, 1.5); // never zero, so the mask is y / x
    const dy = uniform([50, 40], 42);
    const baseline = tf.memory().numTensors;
    const { y, state } = module.forward(x);
    const { dx, grads } = module.backward(dy, state, true);
    module.release(state);
    expect(grads).toEqual([]);
    const [xs, ys, dys, dxs] = [x, y, dy, dx as tf.Tensor].map((t) => Array.from(t.dataSync()));
    const scale = ys.map((v) => (v !== 0 ? 1 / (1 - rate) : 0)); // the mask, recovered from y / x
    expect(Math.max(...ys.map((v, i) => Math.abs(v - xs[i]! * scale[i]!)))).toBeLessThan(1e-5);
    expect(Math.max(...dxs.map((v, i) => Math.abs(v - dys[i]! * scale[i]!)))).toBeLessThan(1e-5);
    const zeroed = scale.filter((v) => v === 0).length / scale.length;
    expect(Math.abs(zeroed - rate)).toBeLessThan(0.05);
    const [second, predicted] = [module.forward(x), module.predict(x)];
    expect(maxAbsDiff([second.y], [y])).toBeGreaterThan(0.1); // a new mask per forward pass
    expect(maxAbsDiff([predicted], [x])).toBe(0); // none when predicting
    module.release(second.state);
    tf.dispose([y, dx, second.y, predicted]);
    expect(tf.memory().numTensors).toBe(baseline);
    [x, dy, module].forEach((t) => t.dispose());
  });
});

describe('weight stashing', () => {
  const stashLayers = () => [dense(6, 'tanh', 51), dense(4, 'elu', 52), dense(3, 'linear', 53)];

  test('the backward of batch A uses the weights its forward saw, after batch B updated them', () => {
    const start = tf.memory().numTensors;
    const [layersA, layersR] = [stashLayers(), stashLayers()];
    const module = new GateModule(layersA, [5], 0);
    const reference = new GateModule(layersR, [5], 0); // same seeded initial weights, never updated
    expect(maxAbsDiff(module.params.current.tensors, reference.params.current.tensors)).toBe(0);
    const sgd = new SGD({ learningRate: 0.5 });
    const [xA, xB, rA, rB] = [uniform([4, 5], 61), uniform([4, 5], 62), uniform([4, 3], 63), uniform([4, 3], 64)];

    const [a, b] = [module.forward(xA), module.forward(xB)];
    const backB = module.backward(rB, b.state, true);
    module.update(sgd, backB.grads, b.state);
    expect(module.params.current.id).toBe(1);
    expect(module.params.staleCount).toBe(1); // version 0 is kept alive for batch A
    expect(maxAbsDiff(module.params.current.tensors, reference.params.current.tensors)).toBeGreaterThan(1e-3);

    const [backA, ref] = [module.backward(rA, a.state, true), reference.forward(xA)];
    const backRef = reference.backward(rA, ref.state, true);
    expect(maxAbsDiff([a.y], [ref.y])).toBeLessThan(1e-6);
    expect(maxAbsDiff([backA.dx as tf.Tensor, ...backA.grads], [backRef.dx as tf.Tensor, ...backRef.grads])).toBeLessThan(1e-6);

    // At the new weights the gradient differs: stashing mattered.
    const fresh = module.forward(xA); // the same batch at version 1
    const backFresh = module.backward(rA, fresh.state, true);
    expect(maxAbsDiff([backFresh.dx as tf.Tensor], [backRef.dx as tf.Tensor])).toBeGreaterThan(1e-3);

    const version0 = a.state.version.tensors;
    module.update(sgd, backA.grads, a.state); // w_fwd = version 0, now released by its last holder
    expect(version0.every((t) => t.isDisposed)).toBe(true);
    expect(module.params.staleCount).toBe(1); // version 1, held by `fresh`
    module.release(fresh.state);
    expect(module.params.staleCount).toBe(0);
    reference.release(ref.state);
    const backs = [backA, backB, backRef, backFresh];
    tf.dispose([xA, xB, rA, rB, a.y, b.y, ref.y, fresh.y, ...backs.flatMap((g) => [g.dx, ...g.grads])]);
    [module, reference, sgd].forEach((m) => m.dispose());
    disposeLayers([...layersA, ...layersR]);
    expect(tf.memory().numTensors).toBeLessThanOrEqual(start);
  });

  test('ParamStore frees a stale version once its last holder releases it', () => {
    const start = tf.memory().numTensors;
    const v0 = [tf.tensor1d([1, 2]), tf.tensor1d([3])];
    const store = new ParamStore(v0);
    const [held1, held2] = [store.acquire(), store.acquire()];
    store.replace([tf.tensor1d([0, 0]), tf.tensor1d([0])]);
    expect([store.current.id, store.staleCount, tf.memory().numTensors - start]).toEqual([1, 1, 4]);
    store.release(held1);
    expect(v0.every((t) => !t.isDisposed)).toBe(true); // still held by the second batch
    store.release(held2);
    expect(v0.every((t) => t.isDisposed)).toBe(true);
    expect([store.staleCount, tf.memory().numTensors - start]).toEqual([0, 2]);
    // Release never frees the current version; replacing an unheld one frees it at once.
    const current = store.current.tensors;
    store.release(store.acquire());
    expect(current.every((t) => !t.isDisposed)).toBe(true);
    store.replace([tf.tensor1d([5, 5]), tf.tensor1d([5])]);
    expect(current.every((t) => t.isDisposed)).toBe(true);
    store.dispose();
    expect(tf.memory().numTensors).toBe(start);
  });
});

/** A stand-in sentinel that records every reply, to be awaited one by one. */
class Recorder implements Actor<SentinelReply> {
  private readonly queue: SentinelReply[] = [];
  private readonly waiters: ((reply: SentinelReply) => void)[] = [];
  receive(reply: SentinelReply): void {
    (this.waiters.shift() ?? ((r) => this.queue.push(r)))(reply);
  }
  next(): Promise<SentinelReply> {
    const reply = this.queue.shift();
    return reply ? Promise.resolve(reply) : new Promise((resolve) => this.waiters.push(resolve));
  }
  /** The next reply, which must be `sentinel.logits` for `batch`; the caller owns the tensor. */
  async logits(batch: number): Promise<tf.Tensor> {
    const reply = await this.next();
    expect(reply).toMatchObject({ type: 'sentinel.logits', batch });
    return (reply as { logits: tf.Tensor }).logits;
  }
}

describe('Gate actor', () => {
  let system: ActorSystem, gate: Gate, gateRef: ActorRef<GateMessage>, recorder: Recorder, sentinel: ActorRef<SentinelReply>;
  let layers: tf.layers.Layer[], failures: unknown[], start: number;

  beforeEach(() => {
    start = tf.memory().numTensors;
    system = new ActorSystem('gate-test');
    failures = [];
    system.events.on('failure', (failure) => failures.push(failure.error));
    layers = [dense(6, 'tanh', 71), dense(3, 'linear', 72)];
    gate = new Gate({ name: 'gate-0', layers, inputShape: [5], optimizer: new SGD({ learningRate: 0.1, momentum: 0.9 }) });
    gateRef = system.spawn(() => gate, { name: 'gate-0' });
    recorder = new Recorder();
    sentinel = system.spawn(() => recorder, { name: 'sentinel' });
  });

  // Stopping frees the module, the layers (never `apply`-ed, so `layer.dispose()` throws for
  // them) and the optimizer's momentum slots, without a postStop failure.
  afterEach(() => {
    system.shutdown();
    const freed = layers.every((layer) => layer.weights.every(isDisposed));
    disposeLayers(layers); // keeps later baselines clean should this regress
    expect(failures).toEqual([]);
    expect(freed).toBe(true);
    expect(tf.memory().numTensors).toBe(start);
  });

  const forward = (batch: number, x: tf.Tensor) => gateRef.tell({ type: 'gate.forward', sentinel, batch, x });
  const backward = (batch: number, dy: tf.Tensor) => gateRef.tell({ type: 'gate.backward', sentinel, batch, dy });

  test('answers forward with sentinel.logits and backward with backwardDone when it has no neighbours', async () => {
    const x = uniform([4, 5], 81);
    const expected = gate.module.predict(x);
    forward(7, tf.clone(x));
    const logits = await recorder.logits(7);
    expect(logits.shape).toEqual([4, 3]);
    expect(maxAbsDiff([logits], [expected])).toBeLessThan(1e-6);
    expect(gate.inFlight).toBe(1);
    const before = gate.module.getWeights();
    backward(7, tf.onesLike(logits)); // also creates the optimizer's momentum slots
    expect(await recorder.next()).toEqual({ type: 'sentinel.backwardDone', batch: 7, staleness: 0 });
    expect(gate.inFlight).toBe(0);
    const after = gate.module.getWeights();
    expect(maxAbsDiff(after.map((w) => w.tensor), before.map((w) => w.tensor))).toBeGreaterThan(1e-3);
    tf.dispose([x, expected, logits, ...[...before, ...after].map((w) => w.tensor)]);
  });

  test('rejects an unknown batch, a wrong feature size, NaN input and a mis-shaped gradient, then still serves a good batch', async () => {
    const baseline = tf.memory().numTensors;
    backward(99, tf.zeros([4, 3]));
    expect(await recorder.next()).toMatchObject({ type: 'sentinel.batchFailed', batch: 99, error: { code: 'UnknownBatch' } });
    forward(1, tf.zeros([4, 6]));
    const shape = await recorder.next();
    expect(shape).toMatchObject({ type: 'sentinel.batchFailed', batch: 1, error: { code: 'ShapeMismatch' } });
    expect(shape.type === 'sentinel.batchFailed' && shape.error.message).toMatch(/\[4,6\]/);
    forward(2, tf.tensor2d([[1, 2, NaN, 4, 5]]));
    expect(await recorder.next()).toMatchObject({ type: 'sentinel.batchFailed', batch: 2, error: { code: 'NonFinite' } });
    expect(tf.memory().numTensors).toBe(baseline); // rejected inputs were freed
    expect(gate.inFlight).toBe(0);

    forward(3, uniform([2, 5], 82));
    (await recorder.logits(3)).dispose();
    backward(3, tf.zeros([3, 3])); // a gradient of the wrong shape fails the batch and frees it
    expect(await recorder.next()).toMatchObject({ type: 'sentinel.batchFailed', batch: 3, error: { code: 'ShapeMismatch' } });
    expect(tf.memory().numTensors).toBe(baseline);

    forward(4, uniform([2, 5], 83));
    const logits = await recorder.logits(4);
    backward(4, tf.onesLike(logits));
    expect(await recorder.next()).toMatchObject({ type: 'sentinel.backwardDone', batch: 4 });
    logits.dispose();
    expect(tf.memory().numTensors).toBe(baseline + 4); // + the momentum slots the update created
  });

  test('detach frees every tensor held for that sentinel', async () => {
    const baseline = tf.memory().numTensors;
    for (let b = 0; b < 3; b++) forward(b, uniform([4, 5], 90 + b));
    for (let b = 0; b < 3; b++) (await recorder.logits(b)).dispose();
    expect(gate.inFlight).toBe(3);
    expect(tf.memory().numTensors).toBeGreaterThan(baseline);
    const detached = await system.ask<GateDetached, GateMessage>(gateRef, (replyTo) => ({ type: 'gate.detach', sentinelId: sentinel.id, replyTo }));
    expect(detached).toEqual({ type: 'gate.detached', dropped: 3 });
    expect(gate.inFlight).toBe(0);
    expect(tf.memory().numTensors).toBe(baseline);
    backward(0, tf.zeros([4, 3])); // its state is gone
    expect(await recorder.next()).toMatchObject({ type: 'sentinel.batchFailed', batch: 0, error: { code: 'UnknownBatch' } });
    expect(tf.memory().numTensors).toBe(baseline);
  });
});
