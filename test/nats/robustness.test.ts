/**
 * Failures over a real nats-server: a sentinel process killed with SIGKILL mid-epoch (the gates
 * notice its missing heartbeats, free its cached batches, and keep serving another sentinel),
 * and the server restarting mid-training (clients reconnect; batches lost in the outage time
 * out and training completes).
 */
import * as tf from '@tensorflow/tfjs';
import { ActorSystem } from '../../src/actor/index.js';
import { ArrayProvider, loadMnist } from '../../src/data/index.js';
import { attachRemote } from '../../src/cluster/discovery.js';
import { hostGates, type HostedGates } from '../../src/cluster/remote.js';
import { protocolValidator } from '../../src/protocol/schema.js';
import { Sentinel } from '../../src/sentinel/index.js';
import { bytesToFrame } from '../../src/wire/index.js';
import { isChunk } from '../../src/wire/index.js';
import { connectNats, type NatsNode, natsSubject } from '../../src/transport/index.js';
import { MNIST_DIR, ROOT, setupBackend } from '../helpers.js';
import { type NatsServer, startApp, startNatsServer } from '../nats-server.js';

let server: NatsServer;
let mnist: { images: Float32Array; labels: Int32Array };
const nodes: NatsNode[] = [];
const hosts: HostedGates[] = [];
const HEARTBEAT_TIMEOUT_MS = 2500;
/** Plain SGD: stable with the ten batches of two sentinels in flight at once (staleness ~10). */
const OPTIMIZER = { type: 'sgd', learningRate: 0.05 } as const;

async function node(namespace: string, name: string): Promise<NatsNode> {
  const system = new ActorSystem({ name, validate: protocolValidator() });
  const n = await connectNats(system, { servers: server.url, namespace, name, heartbeatMs: 250, peerTimeoutMs: HEARTBEAT_TIMEOUT_MS });
  nodes.push(n);
  return n;
}

/** MNIST training images `from..to`, normalised. */
function data(from: number, to: number, seed = 1): ArrayProvider {
  const x = mnist.images.subarray(from * 784, to * 784).map((v) => (v - 0.1307) / 0.3081);
  return new ArrayProvider({ x, y: mnist.labels.subarray(from, to), inputShape: [784], numClasses: 10, seed });
}

/** Polls `condition` every 20 ms, at most `limitMs` (for progress in another process). */
async function poll(condition: () => boolean, limitMs: number, what: string): Promise<void> {
  for (const end = Date.now() + limitMs; !condition(); ) {
    if (Date.now() > end) throw new Error(`Timed out after ${limitMs} ms waiting for ${what}.`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

beforeAll(async () => {
  await setupBackend();
  mnist = await loadMnist(MNIST_DIR, 'train');
  server = await startNatsServer();
});
afterEach(async () => {
  await Promise.all(hosts.splice(0).map((h) => h.close()));
  await Promise.all(nodes.splice(0).map((n) => n.close()));
});
afterAll(async () => server?.dispose());

test('a sentinel killed with SIGKILL mid-epoch: its batches are freed and another sentinel finishes', async () => {
  const before = tf.memory().numTensors;
  const log: string[] = [];
  const gates = await node('kill', 'gates');
  const hosted = await hostGates(gates, { model: 'mlp', optimizer: OPTIMIZER, log: (line) => log.push(line) });
  hosts.push(hosted);
  await hosted.wired;
  const victim = startApp(ROOT, 'sentinel.ts', [
    'train', '30000', '--network', 'kill', '--nats', server.url, '--backend', 'wasm', '--concurrency', '8', '--heartbeat-timeout', String(HEARTBEAT_TIMEOUT_MS), '--no-progress',
  ], { MNIST_DIR });
  try {
    const [, victimNode] = (await victim.waitFor(/attached to network kill: .* node (\S+), backend/)) as [string, string];
    await poll(() => hosted.inFlight() > 0, 60_000, 'the child sentinel to send batches');

    const survivor = new Sentinel({ name: 'survivor', mode: 'train', data: data(30_000, 36_400), batchSize: 128, concurrency: 2, batchTimeoutMs: 20_000 });
    const progress = new Promise<void>((resolve) => survivor.events.on('batch', (b) => b.batch >= 5 && resolve()));
    const attachment = await attachRemote(await node('kill', 'survivor'), survivor);
    await progress;
    await poll(() => (hosted.gates[0]?.gate?.inFlight ?? 0) >= 6, 10_000, 'the child sentinel to have batches cached on gate 0');
    // Freeze the victim the moment one of its forwards reaches this process, before gate 0 has
    // run it (the gates run in this thread, after this callback): that batch can never finish,
    // so the victim surely leaves something cached. Killing it at an arbitrary moment could find
    // every cached batch's answer already on its way.
    let frozen!: () => void;
    const stopped = new Promise<void>((resolve) => (frozen = resolve));
    const tap = gates.nc.subscribe(natsSubject('kill', 'node', gates.system.node, '*'), {
      callback: (_error, msg) => {
        if (isChunk(msg.data)) return;
        const { header } = bytesToFrame(msg.data);
        if (!header.includes('"gate.forward"') || !header.includes(victimNode)) return;
        victim.child.kill('SIGSTOP');
        tap.unsubscribe();
        frozen();
      },
    });
    await stopped;
    const lost = new Promise<number>((resolve) => hosted.events.on('nodeLost', (n, dropped) => n === victimNode && resolve(dropped)));
    victim.child.kill('SIGKILL');
    expect(await victim.exited).toBe('SIGKILL');
    const dropped = await lost;
    expect(dropped).toBeGreaterThan(0);
    expect(log.some((line) => line.includes(`node ${victimNode} (sentinel train) missed its heartbeats; freed ${dropped} cached batch`))).toBe(true);

    const summary = await survivor.done;
    expect(summary.stoppedBy).toBe('epochs');
    expect(summary.epochs[0]?.samples).toBe(6400);
    expect(summary.epochs[0]?.failedBatches).toBe(0);
    expect(summary.epochs[0]?.lostBatches).toBe(0);
    expect(summary.epochs[0]?.metrics.accuracy).toBeGreaterThan(0.5); // it learned (chance is 0.1)
    expect(await attachment.detach()).toBe(0);
    expect({ inFlight: hosted.inFlight(), log }).toEqual({ inFlight: 0, log: expect.any(Array) }); // the log explains a failure
  } finally {
    if (victim.child.exitCode === null && victim.child.signalCode === null) await victim.stop('SIGKILL');
  }
  await Promise.all(hosts.splice(0).map((h) => h.close()));
  expect(tf.memory().numTensors).toBe(before);
}, 120_000);

test('the NATS server restarting mid-training: clients reconnect and training completes', async () => {
  const before = tf.memory().numTensors;
  const gates = await node('restart', 'gates');
  const hosted = await hostGates(gates, { model: 'mlp', optimizer: OPTIMIZER, log: () => undefined });
  hosts.push(hosted);
  await hosted.wired;
  const trainer = await node('restart', 'trainer');
  const sentinel = new Sentinel({ name: 'train', mode: 'train', data: data(0, 12_800), batchSize: 128, concurrency: 4, batchTimeoutMs: 2000 });
  let afterRestart = 0;
  let restarted = false;
  const started = new Promise<void>((resolve) =>
    sentinel.events.on('batch', (b) => {
      if (restarted) afterRestart++;
      if (b.batch === 20) resolve();
    }),
  );
  const attachment = await attachRemote(trainer, sentinel);
  await started;

  const down = Promise.all([gates, trainer].map((n) => new Promise((resolve) => n.events.once('disconnect', resolve))));
  await server.stop();
  await down;
  const up = Promise.all([gates, trainer].map((n) => new Promise((resolve) => n.events.once('reconnect', resolve))));
  await server.start();
  await up;
  restarted = true;

  const summary = await sentinel.done;
  const epoch = summary.epochs[0];
  expect(summary.stoppedBy).toBe('epochs');
  expect(afterRestart).toBeGreaterThan(10);
  // A batch whose logits came back before the outage counts its samples even when its backward was lost.
  expect(epoch?.samples).toBeLessThanOrEqual(12_800);
  expect((epoch?.samples ?? 0) + (epoch?.lostBatches ?? 0) * 128).toBeGreaterThanOrEqual(12_800);
  expect(epoch?.failedBatches).toBe(0);
  expect(Number.isFinite(epoch?.loss)).toBe(true);
  await attachment.detach();
  expect(hosted.inFlight()).toBe(0);
  await Promise.all(hosts.splice(0).map((h) => h.close()));
  expect(tf.memory().numTensors).toBe(before);
}, 120_000);
