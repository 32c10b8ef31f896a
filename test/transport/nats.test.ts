/**
 * The NATS transport against a real nats-server on a free loopback port: the transport
 * conformance suite (order, exact tensors, a 16 MB tensor through chunking, refs, ask timeouts,
 * a dead peer), then what is particular to NATS: peers leaving and dying, namespaces, malformed
 * messages, sends while the server is down, credentials, a small max_payload, and the chunk
 * reassembler's limits.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { ActorSystem, type ActorRef, type Message } from '../../src/actor/index.js';
import { InvalidArgumentError, ProtocolError, TransportError } from '../../src/errors.js';
import { type Frame, wireCodec } from '../../src/wire/index.js';
import { CHUNK_HEADER_BYTES, Chunker, Reassembler } from '../../src/wire/index.js';
import { childNodeId, connectNats, type NatsNode, type NatsOptions } from '../../src/transport/index.js';
import { setupBackend } from '../helpers.js';
import { makeCertificates, type NatsServer, startNatsServer } from '../nats-server.js';
import { transportConformance } from './conformance.js';

type Item = { type: 'item'; n: number; x?: tf.Tensor };
type Probe = { type: 'probe'; replyTo: ActorRef<{ type: 'count'; n: number; sum: number }> };

/** Collects `item` messages and resolves `until(k)` once k have arrived. */
function collector(system: ActorSystem) {
  const seen: Item[] = [];
  const waiters: { k: number; resolve: () => void }[] = [];
  const ref = system.spawn<Item | Probe>(() => ({
    receive: (m) => {
      if (m.type === 'probe') return m.replyTo.tell({ type: 'count', n: seen.length, sum: 0 });
      seen.push(m);
      waiters.filter((w) => seen.length >= w.k).forEach((w) => w.resolve());
    },
  }));
  const until = (k: number) => new Promise<void>((resolve) => (seen.length >= k ? resolve() : waiters.push({ k, resolve })));
  return { ref, seen, until };
}

let server: NatsServer;
const opened: NatsNode[] = [];

async function node(namespace = 'test', extra: Partial<NatsOptions> = {}, system = new ActorSystem()): Promise<NatsNode> {
  const n = await connectNats(system, { servers: server.url, namespace, heartbeatMs: 100, peerTimeoutMs: 600, ...extra });
  opened.push(n);
  return n;
}

/** Resolves when `from` has heard a heartbeat of `to`. */
function known(from: NatsNode, to: NatsNode): Promise<void> {
  if (from.peerNodes.has(to.system.node)) return Promise.resolve();
  return new Promise((resolve) => from.events.on('peerUp', (peer) => peer === to.system.node && resolve()));
}

beforeAll(async () => {
  await setupBackend();
  server = await startNatsServer();
});

let pairs = 0;
transportConformance('NATS', async () => {
  const [a, b] = [new ActorSystem({ name: 'a' }), new ActorSystem({ name: 'b' })];
  const namespace = `conformance-${++pairs}`;
  const [na, nb] = await Promise.all([a, b].map((s) => connectNats(s, { servers: server.url, namespace, heartbeatMs: 100, peerTimeoutMs: 600 }))) as [NatsNode, NatsNode];
  await Promise.all([known(na, nb), known(nb, na)]);
  return {
    a,
    b,
    killB: async () => {
      const gone = new Promise<void>((resolve) => a.events.on('nodeDown', (node) => node === b.node && resolve()));
      await nb.abort(); // no goodbye: a notices the missing heartbeats
      await gone;
    },
    close: async () => {
      await Promise.all([na.close(), nb.close()]);
      a.shutdown();
      b.shutdown();
    },
  };
});
afterEach(async () => {
  await Promise.all(opened.splice(0).map((n) => n.close()));
});
afterAll(async () => {
  await server.dispose();
});

test('a peer that leaves is down at once; one that dies is down after its heartbeats stop', async () => {
  const [a, b, c] = [await node(), await node(), await node()];
  await Promise.all([known(a, b), known(a, c)]);
  const down: string[] = [];
  a.system.events.on('nodeDown', (d) => down.push(d));
  const gone = (n: string) => new Promise<void>((resolve) => a.system.events.on('nodeDown', (d) => d === n && resolve()));
  const left = gone(b.system.node);
  await b.close();
  await left;
  const died = gone(c.system.node);
  await c.abort();
  await died;
  expect(down).toEqual([b.system.node, c.system.node]);
});

test('namespaces are separate', async () => {
  const [a, b, other] = [await node('one'), await node('one'), await node('two')];
  await known(a, b);
  await known(b, a);
  expect(a.peerNodes.has(other.system.node)).toBe(false);
  expect(other.peerNodes.size).toBe(0);
});

test('a malformed message on a node subject is a protocol error, never a crash', async () => {
  const a = await node();
  const errors: ProtocolError[] = [];
  const reported = new Promise<void>((resolve) => a.system.events.on('protocolError', (e) => (errors.push(e), resolve())));
  a.nc.publish(`akk.test.node.${a.system.node}.stranger`, new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9]));
  await reported;
  expect(errors[0]).toBeInstanceOf(ProtocolError);
});

test('serving a node: only a subject token this system routes to; frames for it are relayed over its route', async () => {
  const a = await node();
  const b = await node();
  expect(() => a.serve('has/slash')).toThrow(InvalidArgumentError);
  expect(() => a.serve('nobody-here')).toThrow(/no route to it/);
  // A third system that only `a` reaches (as a worker thread is reached by its parent).
  // Its node id is a child of a's (as a worker thread's is), so that a's heartbeats may speak for it.
  const inner = new ActorSystem({ name: 'inner', node: childNodeId(a.system.node, 'inner'), codec: wireCodec() }); // no transport installs one here
  const { ref, seen, until } = collector(inner);
  const link = { description: 'to inner', send: (frame: Frame) => inner.receiveFrame(frame), close: async () => undefined };
  a.system.addRoute(inner.node, link);
  const stop = a.serve(inner.node, 'inner');
  await new Promise<void>((resolve) => (b.peerNodes.has(inner.node) ? resolve() : b.events.on('peerUp', (peer) => peer === inner.node && resolve())));
  b.system.ref<Item>(ref.id, ref.name, inner.node).tell({ type: 'item', n: 7, x: tf.tensor1d([1, 2, 3]) });
  await until(1);
  expect(seen[0]?.n).toBe(7);
  expect(Array.from(seen[0]?.x?.dataSync() ?? [])).toEqual([1, 2, 3]);
  seen[0]?.x?.dispose();
  const left = new Promise<string>((resolve) => b.events.on('peerDown', (peer, reason) => peer === inner.node && resolve(reason)));
  stop();
  expect(await left).toBe('left');
  inner.shutdown();
});

test('sends while the server is down do not throw (over the buffer limit they are dead letters), and traffic resumes after a restart', async () => {
  const [a, b] = [await node('test', { maxBufferedBytes: 64 * 1024 }), await node()];
  const c = collector(b.system);
  const target = a.system.ref<Item>(c.ref.id, 'collector', b.system.node);
  const dead: string[] = [];
  a.system.events.on('deadLetter', (_to, message) => dead.push(message.type));
  const disconnected = Promise.all([a, b].map((n) => new Promise((r) => n.events.once('disconnect', r))));
  await server.stop();
  await disconnected;
  expect(() => target.tell({ type: 'item', n: -1 })).not.toThrow();
  expect(dead).toEqual([]);
  expect(() => target.tell({ type: 'item', n: -2, x: tf.ones([32 * 1024]) })).not.toThrow(); // 128 KB of non-zero words (zeros would travel sparse): over the limit
  expect(dead).toEqual(['item']);
  const reconnected = Promise.all([a, b].map((n) => new Promise((r) => n.events.once('reconnect', r))));
  await server.start();
  await reconnected;
  await Promise.all([a.flush(), b.flush()]);
  target.tell({ type: 'item', n: 1 });
  await c.until(c.seen.length + 1);
  expect(c.seen.at(-1)?.n).toBe(1);
});

describe('credentials', () => {
  let secured: NatsServer;
  afterEach(async () => secured?.dispose());

  test('a token is passed through; a wrong one fails with a TransportError naming the server', async () => {
    secured = await startNatsServer({ token: 's3cret' });
    const good = await connectNats(new ActorSystem(), { servers: secured.url, namespace: 'auth', token: 's3cret' });
    opened.push(good);
    await expect(connectNats(new ActorSystem(), { servers: secured.url, namespace: 'auth', token: 'wrong' })).rejects.toThrow(new RegExp(`${secured.url}`));
    await expect(connectNats(new ActorSystem(), { servers: secured.url, namespace: 'auth' })).rejects.toBeInstanceOf(TransportError);
  });

  test('TLS files are passed through: the server is verified with the CA given', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'akk-tls-'));
    try {
      const files = makeCertificates(dir);
      if (!files) return console.warn('openssl is missing; TLS test not run');
      secured = await startNatsServer({ tls: { certFile: files.certFile, keyFile: files.keyFile } });
      const good = await connectNats(new ActorSystem(), { servers: secured.url, namespace: 'tls', tls: { caFile: files.caFile } });
      opened.push(good);
      expect(good.nc.info?.tls_required).toBe(true);
      await expect(connectNats(new ActorSystem(), { servers: secured.url, namespace: 'tls' })).rejects.toBeInstanceOf(TransportError);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('user and password are passed through', async () => {
    secured = await startNatsServer({ user: 'akk', pass: 'pw' });
    const good = await connectNats(new ActorSystem(), { servers: secured.url, namespace: 'auth', user: 'akk', pass: 'pw' });
    opened.push(good);
    await expect(connectNats(new ActorSystem(), { servers: secured.url, namespace: 'auth', user: 'akk', pass: 'nope' })).rejects.toBeInstanceOf(TransportError);
  });
});

test('a message over a small max_payload is chunked and reassembled', async () => {
  const small = await startNatsServer({ maxPayload: 4096 });
  try {
    const systems = [new ActorSystem(), new ActorSystem()] as const;
    const [a, b] = await Promise.all(systems.map((s) => connectNats(s, { servers: small.url, namespace: 'small' })));
    opened.push(a as NatsNode, b as NatsNode);
    expect(a?.maxPayload).toBe(4096);
    const c = collector(systems[1]);
    const target = systems[0].ref<Item & Message>(c.ref.id, 'collector', systems[1].node);
    for (let n = 0; n < 20; n++) target.tell({ type: 'item', n, x: tf.fill([n * 100 + 1], n) });
    await c.until(20);
    expect(c.seen.map((m) => m.n)).toEqual([...Array(20).keys()]);
    c.seen.forEach((m) => {
      expect(m.x?.size).toBe(m.n * 100 + 1);
      expect(m.x?.dataSync()[m.n * 100]).toBe(m.n);
      m.x?.dispose();
    });
  } finally {
    await Promise.all(opened.splice(0).map((n) => n.close()));
    await small.dispose();
  }
});

describe('chunks', () => {
  const bytes = (n: number, seed: number) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) % 251);

  test('a payload that fits travels whole; larger ones are split and reassembled, interleaved', () => {
    const chunker = new Chunker();
    const small = bytes(100, 1);
    expect(chunker.split(small, 100)).toEqual([small]);
    const [a, b] = [bytes(1000, 2), bytes(777, 3)];
    const ca = chunker.split(a, 136);
    const cb = chunker.split(b, 136);
    expect(ca).toHaveLength(10);
    expect(ca.every((c) => c.byteLength <= 136)).toBe(true);
    const r = new Reassembler({ maxMessageBytes: 10_000 });
    const out: Uint8Array[] = [];
    for (let i = 0; i < Math.max(ca.length, cb.length); i++) {
      for (const c of [ca[i], cb[i]]) {
        const whole = c && r.push(c);
        if (whole) out.push(whole);
      }
    }
    expect(out).toEqual([b, a]);
    expect(r.pendingBytes).toBe(0);
  });

  test('totals over the limit, gaps and stale messages are rejected; memory stays bounded', () => {
    const chunker = new Chunker();
    let now = 0;
    const r = new Reassembler({ maxMessageBytes: 2000, maxPendingBytes: 1500, timeoutMs: 1000, now: () => now });
    expect(() => r.push(chunker.split(bytes(3000, 1), 500)[0] as Uint8Array)).toThrow(ProtocolError);
    const gap = chunker.split(bytes(1000, 2), 300);
    r.push(gap[0] as Uint8Array);
    expect(() => r.push(gap[2] as Uint8Array)).toThrow(/does not follow/);
    expect(r.push(gap[3] as Uint8Array)).toBeUndefined(); // the rest of a dropped message is ignored
    expect(() => r.push(chunker.split(bytes(1000, 3), 300)[1] as Uint8Array)).toThrow(/without chunk 0/);
    const [first, second] = [chunker.split(bytes(1200, 4), 900), chunker.split(bytes(1200, 5), 900)];
    r.push(first[0] as Uint8Array);
    r.push(second[0] as Uint8Array); // over the budget: the older message is dropped
    expect(r.pendingMessages).toBe(1);
    expect(r.pendingBytes).toBe(900 - CHUNK_HEADER_BYTES);
    now = 5000;
    expect(r.sweep()).toBe(1);
    expect(r.pendingBytes).toBe(0);
    expect(() => r.push(new Uint8Array(10))).toThrow(ProtocolError);
  });
});
