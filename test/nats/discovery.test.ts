/**
 * Discovery and slices over a real nats-server: a clear error when no network answers, a
 * network split over two hosts (the second starting later) that wires itself and trains, a
 * slice that restarts and is wired in again, and two hosts of one gate (or of two models under
 * one name), which are refused.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { ActorSystem } from '../../src/actor/index.js';
import { ArrayProvider } from '../../src/data/index.js';
import { CheckpointMismatchError, GateConflictError, TransportError } from '../../src/errors.js';
import { saveCheckpoint } from '../../src/persist/checkpoint.js';
import { attachRemote, discoverNetwork } from '../../src/cluster/discovery.js';
import { hostGates, type HostedGates } from '../../src/cluster/remote.js';
import type { GateMessage, SentinelReply } from '../../src/protocol/messages.js';
import { Sentinel } from '../../src/sentinel/index.js';
import { connectNats, type NatsNode } from '../../src/transport/index.js';
import { setupBackend } from '../helpers.js';
import { type NatsServer, startNatsServer } from '../nats-server.js';

let server: NatsServer;
const nodes: NatsNode[] = [];
const hosts: HostedGates[] = [];
const quiet = () => undefined;

async function node(namespace: string): Promise<NatsNode> {
  const n = await connectNats(new ActorSystem(), { servers: server.url, namespace, heartbeatMs: 100, peerTimeoutMs: 1000 });
  nodes.push(n);
  return n;
}

async function host(namespace: string, from: number, to: number, threads = 1): Promise<HostedGates> {
  const hosted = await hostGates(await node(namespace), { model: 'mlp', from, to, retryMs: 100, threads, log: quiet });
  hosts.push(hosted);
  return hosted;
}

/** 512 random MNIST-shaped samples with random labels. */
function randomData(seed: number): ArrayProvider {
  const x = tf.tidy(() => tf.randomNormal([512, 784], 0, 1, 'float32', seed).dataSync() as Float32Array);
  const y = Int32Array.from({ length: 512 }, (_, i) => (i * 7 + seed) % 10);
  return new ArrayProvider({ x, y, inputShape: [784], numClasses: 10, seed });
}

beforeAll(async () => {
  await setupBackend();
  server = await startNatsServer();
});
afterEach(async () => {
  await Promise.all(hosts.splice(0).map((h) => h.close()));
  await Promise.all(nodes.splice(0).map((n) => n.close()));
});
afterAll(async () => server.dispose());

test('no answer: a TransportError that names the server and the network and says what to check', async () => {
  const n = await node('nobody');
  const error = await discoverNetwork(n, 'nobody', { timeoutMs: 300, retryMs: 100 }).catch((e: unknown) => e);
  expect(error).toBeInstanceOf(TransportError);
  expect((error as Error).message).toContain(server.url);
  expect((error as Error).message).toContain("'nobody'");
  expect((error as Error).message).toContain('npm run network');
});

test('a network split over two hosts, the second starting later, is wired and trains', async () => {
  const before = tf.memory().numTensors;
  const first = await host('split', 0, 1);
  const partial = await discoverNetwork(nodes[0] as NatsNode, 'split', { timeoutMs: 300, retryMs: 100, requireWired: false }).catch((e: Error) => e);
  expect((partial as Error).message).toMatch(/gate\(s\) 2 did not answer/);
  const second = await host('split', 2, 2);
  await Promise.all([first.wired, second.wired]);
  const found = await discoverNetwork(await node('split'), 'split');
  expect(found.total).toBe(3);
  expect([...found.gates.values()].map((g) => g.node)).toEqual([first, first, second].map((h) => h.gates[0]?.ref.node));

  const sentinel = new Sentinel({ name: 'train', mode: 'train', data: randomData(1), batchSize: 64, batchTimeoutMs: 10_000 });
  const attachment = await attachRemote(await node('split'), sentinel);
  const summary = await sentinel.done;
  expect(summary.epochs[0]?.samples).toBe(512);
  expect(summary.epochs[0]?.failedBatches).toBe(0);
  expect(await attachment.detach()).toBe(0);
  expect(first.inFlight() + second.inFlight()).toBe(0);
  await Promise.all(hosts.splice(0).map((h) => h.close()));
  expect(tf.memory().numTensors).toBe(before);
});

test('a slice that restarts is wired in again', async () => {
  const first = await host('restart', 0, 0);
  const old = await host('restart', 1, 2);
  await Promise.all([first.wired, old.wired]);
  await old.close();
  await nodes[1]?.close();
  const replacement = await host('restart', 1, 2);
  await replacement.wired;
  const sentinel = new Sentinel({ name: 'train', mode: 'train', data: randomData(2), batchSize: 128, batchTimeoutMs: 10_000 });
  const attachment = await attachRemote(await node('restart'), sentinel);
  const summary = await sentinel.done;
  await attachment.detach();
  expect(summary.epochs[0]?.samples).toBe(512);
  expect(summary.epochs[0]?.lostBatches).toBe(0);
  expect(replacement.inFlight()).toBe(0);
});

test('a network process with 2 threads runs gate 0 in a worker thread that it serves on NATS: discovered, validated, trained, freed', async () => {
  const before = tf.memory().numTensors;
  const hostNode = await node('threads');
  const hosted = await hostGates(hostNode, { model: 'mlp', retryMs: 100, threads: 2, log: quiet });
  hosts.push(hosted);
  // placement 'auto' on 2 places: gate 0 whole in a worker, gates 1-2 on this thread.
  const worker = hosted.gates[0]?.ref.node as string;
  expect(worker).not.toBe(hostNode.system.node);
  expect(hosted.gates.map((g) => [g.gate === undefined, g.ref.node === worker, g.shards.length])).toEqual([[true, true, 0], [false, false, 0], [false, false, 0]]);
  await hosted.wired;

  const client = await node('threads');
  const found = await discoverNetwork(client, 'threads');
  expect([...found.gates.values()].map((g) => [g.node, g.outputShape])).toEqual([[worker, [512]], [hostNode.system.node, [256]], [hostNode.system.node, [10]]]);
  // The host sends the worker's heartbeats, so the client sees it as a peer like any node.
  if (!client.peerNodes.has(worker)) await new Promise<void>((resolve) => client.events.on('peerUp', (peer) => peer === worker && resolve()));

  // Frames relayed into the worker are validated there: an int32 input is refused with an
  // error reply, and the gate goes on serving.
  const gate0 = client.system.ref<GateMessage>(found.gates.get(0)?.id as string, 'gate 0', worker);
  const refused = await client.system.ask<SentinelReply, GateMessage>(gate0, (replyTo) => ({ type: 'gate.predict', sentinel: replyTo, batch: 0, x: tf.ones([2, 784], 'int32') }));
  expect(refused).toMatchObject({ type: 'sentinel.batchFailed', batch: 0, error: { code: 'Protocol' } });

  const sentinel = new Sentinel({ name: 'train', mode: 'train', data: randomData(2), batchSize: 64, concurrency: 4, epochs: 2, batchTimeoutMs: 10_000 });
  const attachment = await attachRemote(client, sentinel);
  const summary = await sentinel.done;
  expect(summary.epochs.map((e) => e.failedBatches)).toEqual([0, 0]);
  expect(summary.epochs[1]?.loss).toBeLessThan(summary.epochs[0]?.loss as number);
  expect(await attachment.detach()).toBe(0);

  const left = new Promise<string>((resolve) => client.events.on('peerDown', (peer, reason) => peer === worker && resolve(reason)));
  await Promise.all(hosts.splice(0).map((h) => h.close()));
  expect(await left).toBe('left'); // the host said the worker's goodbye
  expect(tf.memory().numTensors).toBe(before);
});

test('a host for a gate that another process already hosts is refused with a GateConflictError; the network goes on training', async () => {
  const first = await host('overlap', 0, 1);
  const refused = await hostGates(await node('overlap'), { model: 'mlp', from: 1, to: 2, retryMs: 100, log: quiet }).catch((e: unknown) => e);
  expect(refused).toBeInstanceOf(GateConflictError);
  const message = (refused as Error).message;
  expect(message).toContain("Gate 1 of network 'overlap'");
  expect(message).toContain(first.gates[0]?.ref.node as string);
  expect(message).toContain('--gates 2-2');

  // The refused host registered nothing: the right slice joins, and a sentinel trains.
  const second = await host('overlap', 2, 2);
  await Promise.all([first.wired, second.wired]);
  const sentinel = new Sentinel({ name: 'train', mode: 'train', data: randomData(3), batchSize: 128, batchTimeoutMs: 10_000 });
  const attachment = await attachRemote(await node('overlap'), sentinel);
  const summary = await sentinel.done;
  await attachment.detach();
  expect(summary.epochs[0]?.failedBatches).toBe(0);
  expect(summary.epochs[0]?.samples).toBe(512);
});

test('a host of another model under a network name in use is refused', async () => {
  const mlp = await host('models', 0, 2);
  const refused = await hostGates(await node('models'), { model: 'cnn', from: 0, to: 0, retryMs: 100, log: quiet }).catch((e: unknown) => e);
  expect(refused).toBeInstanceOf(GateConflictError);
  expect((refused as Error).message).toMatch(/already hosted as model 'mlp' with 3 gates \(node [^)]+\); this process would host model 'cnn'/);
  expect((refused as Error).message).toContain(mlp.gates[0]?.ref.node as string);
});

test('two hosts of one gate that start together both log the conflict, and a sentinel refuses the network', async () => {
  const logged: Promise<string>[] = [];
  const logs = [0, 1].map(() => {
    let seen!: (line: string) => void;
    logged.push(new Promise<string>((resolve) => (seen = resolve)));
    return (line: string) => line.includes('CONFLICT') && seen(line);
  });
  // probeMs 0 skips the check at start, as when both probe before either answers.
  const left = await hostGates(await node('race'), { model: 'mlp', from: 0, to: 1, retryMs: 100, probeMs: 0, log: logs[0] });
  hosts.push(left);
  const right = await hostGates(await node('race'), { model: 'mlp', from: 1, to: 2, retryMs: 100, probeMs: 0, log: logs[1] });
  hosts.push(right);
  const [leftLine, rightLine] = await Promise.all(logged);
  expect(leftLine).toContain(right.gates[0]?.ref.node as string);
  expect(rightLine).toContain(left.gates[0]?.ref.node as string);
  for (const line of [leftLine, rightLine]) expect(line).toMatch(/also hosts gate 1 of network 'race' as this process does; .* Stop one of the two processes/);

  const sentinel = new Sentinel({ name: 'train', mode: 'train', data: randomData(4), batchSize: 128, batchTimeoutMs: 10_000 });
  const refused = await attachRemote(await node('race'), sentinel).catch((e: unknown) => e);
  expect(refused).toBeInstanceOf(GateConflictError);
  expect((refused as Error).message).toMatch(/Gate 1 of network 'race' .* is hosted by 2 processes/);
  expect(left.inFlight() + right.inFlight()).toBe(0);
});

test('a sentinel holds while a slice of its network is down and goes on with the slice that replaces it; nothing is left on the gates', async () => {
  const before = tf.memory().numTensors;
  const left = await host('resume', 0, 1);
  const old = await host('resume', 2, 2);
  await Promise.all([left.wired, old.wired]);
  const epochs = 3;
  const sentinel = new Sentinel({ name: 'train', mode: 'train', data: randomData(5), batchSize: 32, concurrency: 2, epochs, batchTimeoutMs: 60_000 });
  const attachment = await attachRemote(await node('resume'), sentinel);
  const oldNode = old.gates[0]?.ref.node as string;

  // Once the first batches have come back, the slice with gate 2 stops.
  await new Promise<void>((resolve) => sentinel.events.on('batch', (info) => info.epoch === 1 && info.batch === 3 && resolve()));
  const held = new Promise<[string, number[]]>((resolve) => attachment.events.once('held', (...args) => resolve(args)));
  const resumed = new Promise<void>((resolve) => attachment.events.once('resumed', () => resolve()));
  const lostErrors: string[] = [];
  sentinel.events.on('batchError', (error) => lostErrors.push(error.message));
  await old.close();
  await nodes[1]?.close();
  expect(await held).toEqual([oldNode, [2]]);
  expect(left.inFlight()).toBe(0); // the gates still up freed the sentinel's batches

  const replacement = await host('resume', 2, 2);
  await resumed;
  expect(attachment.gates[2]?.node).toBe(replacement.gates[0]?.ref.node);
  const summary = await sentinel.done;
  expect(summary.epochs).toHaveLength(epochs);
  // Every batch either trained or was lost in the outage (at most the 2 in flight); none failed.
  const lost = summary.epochs.reduce((n, e) => n + e.lostBatches, 0);
  expect(lost).toBeLessThanOrEqual(2);
  expect(lostErrors).toHaveLength(lost);
  lostErrors.forEach((message) => expect(message).toContain(`node ${oldNode} hosting gate 2 of network 'resume' went down`));
  expect(summary.epochs.reduce((n, e) => n + e.failedBatches, 0)).toBe(0);
  expect(summary.epochs.reduce((n, e) => n + e.samples, 0)).toBe(epochs * 512 - lost * 32);
  expect(summary.epochs[epochs - 1]?.samples).toBe(512);
  await attachment.detach();
  expect(left.inFlight() + replacement.inFlight()).toBe(0);
  await Promise.all(hosts.splice(0).map((h) => h.close()));
  expect(tf.memory().numTensors).toBe(before);
});

test('a slice saved with saveCheckpoint restarts from it: the same weights and optimizer state; a checkpoint of other gates is refused and nothing is hosted', async () => {
  const before = tf.memory().numTensors;
  const dir = await mkdtemp(path.join(os.tmpdir(), 'akk-slice-'));
  try {
    const left = await host('ckpt', 0, 1);
    const right = await host('ckpt', 2, 2);
    await Promise.all([left.wired, right.wired]);
    const sentinel = new Sentinel({ name: 'train', mode: 'train', data: randomData(6), batchSize: 64, batchTimeoutMs: 10_000 });
    const attachment = await attachRemote(await node('ckpt'), sentinel);
    await sentinel.done;
    await attachment.detach();

    const values = async (hosted: HostedGates) => {
      const states = await hosted.getState();
      const out = states.map((s) => [...s.weights, ...s.optimizer].map((t) => [t.name, Array.from(t.tensor.dataSync())] as const));
      states.forEach((s) => [...s.weights, ...s.optimizer].forEach((t) => t.tensor.dispose()));
      return out;
    };
    await saveCheckpoint(right, path.join(dir, 'right'));
    await saveCheckpoint(left, path.join(dir, 'left'));
    const trained = await values(right);
    expect(trained[0]?.some(([name]) => name.startsWith('slot/'))).toBe(true); // DC-ASGD's momentum is in it
    await right.close();
    await nodes[1]?.close();

    // gates 0-1's checkpoint does not fit gate 2: refused before the slice is listed.
    const wrong = await hostGates(await node('ckpt'), { model: 'mlp', from: 2, to: 2, retryMs: 100, checkpoint: path.join(dir, 'left'), log: quiet }).catch((e: unknown) => e);
    expect(wrong).toBeInstanceOf(CheckpointMismatchError);

    const restarted = await hostGates(await node('ckpt'), { model: 'mlp', from: 2, to: 2, retryMs: 100, checkpoint: path.join(dir, 'right'), log: quiet });
    hosts.push(restarted);
    expect(await values(restarted)).toEqual(trained);
    const fresh = await hostGates(await node('ckpt-fresh'), { model: 'mlp', from: 2, to: 2, retryMs: 100, checkpoint: path.join(dir, 'none-yet'), log: quiet });
    hosts.push(fresh);
    expect(await values(fresh)).not.toEqual(trained); // no checkpoint there yet: initial weights
    await Promise.all(hosts.splice(0).map((h) => h.close()));
    expect(tf.memory().numTensors).toBe(before);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
