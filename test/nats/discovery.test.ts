/**
 * Discovery and slices over a real nats-server: a clear error when no network answers, a
 * network split over two hosts (the second starting later) that wires itself and trains, and a
 * slice that restarts and is wired in again.
 */
import * as tf from '@tensorflow/tfjs';
import { ActorSystem } from '../../src/actor/index.js';
import { ArrayProvider } from '../../src/data/index.js';
import { TransportError } from '../../src/errors.js';
import { attachRemote, discoverNetwork } from '../../src/network/discovery.js';
import { hostGates, type HostedGates } from '../../src/network/remote.js';
import { Sentinel } from '../../src/sentinel/index.js';
import { connectNats, type NatsNode } from '../../src/transport/nats.js';
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

test('a network process with 2 threads splits gate 0 with a worker thread; it trains like one thread and frees everything', async () => {
  const before = tf.memory().numTensors;
  const split = await host('threads', 0, 2, 2);
  expect(split.gates.map((g) => g.shards.map((s) => s.units))).toEqual([[452], [], []]);
  expect(split.gates[0]?.outputShape).toEqual([512]);
  await split.wired;
  const found = await discoverNetwork(await node('threads'), 'threads');
  expect([...found.gates.values()].map((g) => g.outputShape)).toEqual([[512], [256], [10]]);
  const sentinel = new Sentinel({ name: 'train', mode: 'train', data: randomData(2), batchSize: 64, concurrency: 4, epochs: 2, batchTimeoutMs: 10_000 });
  const attachment = await attachRemote(await node('threads'), sentinel);
  const summary = await sentinel.done;
  expect(summary.epochs.map((e) => e.failedBatches)).toEqual([0, 0]);
  expect(summary.epochs[1]?.loss).toBeLessThan(summary.epochs[0]?.loss as number);
  await attachment.detach();
  expect(split.inFlight()).toBe(0);
  await Promise.all(hosts.splice(0).map((h) => h.close()));
  expect(tf.memory().numTensors).toBe(before);
});
