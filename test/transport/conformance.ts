/**
 * The transport conformance suite: every transport (in-memory, worker thread, child process,
 * NATS) must pass the same tests between an actor on system `a` and one on system `b`:
 * ordering per sender, exact tensors (float32, int32, bool; scalars and empty shapes), a 16 MB
 * tensor, replies through refs inside messages, ask timeouts, a dead peer (dead letters, no
 * throw, `nodeDown`, quick rejection of asks) and no tensors left behind.
 */
import * as tf from '@tensorflow/tfjs';
import { type ActorRef, ActorSystem, type Message } from '../../src/actor/index.js';
import { ActorStoppedError, AskTimeoutError } from '../../src/errors.js';
import type { RemoteNode } from '../../src/transport/channel.js';
import { setupBackend } from '../helpers.js';

/** Two connected actor systems of this thread, plus a way to make `b` vanish. */
export interface TransportPair {
  a: ActorSystem;
  b: ActorSystem;
  /** Closes b's side as if the peer died; resolves once `a` can tell (its route to b is gone). */
  killB(): Promise<void>;
  /** Closes both sides and everything the setup started. */
  close(): Promise<void>;
}

/** Names of the suite's tests, usable as keys of `skip`. */
export const CONFORMANCE_TESTS = {
  ordering: 'delivers 1000 messages from one sender in order',
  tensors: 'round-trips float32, int32 and bool tensors exactly, scalars and empty shapes included',
  large: 'carries a 16 MB tensor (4 million float32 parameters)',
  refs: 'replies through refs inside messages (asks across nodes, both ways)',
  timeout: 'an ask to a silent remote actor times out with AskTimeoutError',
  dead: 'after the peer died: dead letters without throwing, nodeDown, asks reject quickly',
} as const;

type Reply = { type: string; list?: number[]; payload?: unknown };
type Echo = { type: 'echo'; replyTo: ActorRef<Reply>; payload: unknown } | { type: 'seq'; n: number } | { type: 'seq.get'; replyTo: ActorRef<Reply> };

/** An actor that answers `echo` with the payload (tensors included) and collects `seq` numbers. */
function spawnEcho(system: ActorSystem): ActorRef<Echo> {
  const seen: number[] = [];
  return system.spawn<Echo>(() => ({
    receive: (m) => {
      if (m.type === 'seq') seen.push(m.n);
      else if (m.type === 'seq.get') m.replyTo.tell({ type: 'seq.list', list: seen.splice(0) });
      else m.replyTo.tell({ type: 'echoed', payload: m.payload });
    },
  }), { name: 'echo' });
}

/** The ref `system` uses for an actor of another system (so that messages cross the transport). */
function seenFrom<M extends Message>(system: ActorSystem, ref: ActorRef<M>): ActorRef<M> {
  return system.ref<M>(ref.id, ref.name, ref.node);
}

function tensorsOf(value: unknown): tf.Tensor[] {
  if (value instanceof tf.Tensor) return [value];
  if (Array.isArray(value)) return value.flatMap(tensorsOf);
  if (value && typeof value === 'object' && typeof (value as ActorRef).tell !== 'function') return Object.values(value).flatMap(tensorsOf);
  return [];
}

function sameBits(a: tf.Tensor, b: tf.Tensor): boolean {
  if (a.dtype !== b.dtype || !tf.util.arraysEqual(a.shape, b.shape)) return false;
  const x = a.dataSync();
  const y = b.dataSync();
  for (let i = 0; i < x.length; i++) if (!Object.is(x[i], y[i])) return false;
  return true;
}

/**
 * Describes the conformance tests for one transport. `setup` makes a fresh pair (once for the
 * shared tests, once more for the dead-peer test); `skip` maps test names (see
 * {@link CONFORMANCE_TESTS}) to the reason they do not apply.
 */
export function transportConformance(name: string, setup: () => Promise<TransportPair>, skip: Record<string, string> = {}): void {
  const it = (title: string, body: () => Promise<void>, timeoutMs?: number) =>
    skip[title] !== undefined ? test.skip(`${title} (skipped: ${skip[title]})`, body) : test(title, body, timeoutMs);

  describe(`${name} transport conformance`, () => {
    let pair: TransportPair;
    let baseline: number;

    beforeAll(async () => {
      await setupBackend();
      pair = await setup();
    });
    afterAll(async () => pair?.close());
    beforeEach(() => (baseline = tf.memory().numTensors));
    afterEach(() => expect(tf.memory().numTensors).toBe(baseline));

    it(CONFORMANCE_TESTS.ordering, async () => {
      const echo = spawnEcho(pair.b);
      const remote = seenFrom(pair.a, echo);
      for (let n = 0; n < 1000; n++) remote.tell({ type: 'seq', n });
      const reply = await pair.a.ask<{ type: string; list: number[] }, Echo>(remote, (replyTo) => ({ type: 'seq.get', replyTo }));
      expect(reply.list).toEqual(Array.from({ length: 1000 }, (_, i) => i));
      pair.b.stop(echo);
    });

    it(CONFORMANCE_TESTS.tensors, async () => {
      const echo = spawnEcho(pair.b);
      const make = () => ({
        f: tf.tensor([0, -0, 1.5, -3.25e-38, 1e-45, 3.4e38, Infinity, -Infinity, NaN], [3, 3], 'float32'),
        i: tf.tensor([0, 1, -1, 2147483647, -2147483648], [5], 'int32'),
        b: tf.tensor([true, false, true, true], [2, 2], 'bool'),
        scalar: tf.scalar(42.5),
        scalarInt: tf.scalar(-7, 'int32'),
        empty: tf.zeros([0]),
        empty3: tf.zeros([2, 0, 3], 'int32'),
        nested: [{ deep: tf.tensor2d([[1, 2, 3]]) }],
      });
      const expected = make();
      const reply = await pair.a.ask<{ type: string; payload: ReturnType<typeof make> }, Echo>(seenFrom(pair.a, echo), (replyTo) => ({ type: 'echo', replyTo, payload: make() }));
      const got = tensorsOf(reply.payload);
      const want = tensorsOf(expected);
      expect(got.map((t) => [t.dtype, t.shape])).toEqual(want.map((t) => [t.dtype, t.shape]));
      got.forEach((t, i) => expect(sameBits(t, want[i] as tf.Tensor)).toBe(true));
      tf.dispose([...got, ...want]);
      pair.b.stop(echo);
    });

    it(CONFORMANCE_TESTS.large, async () => {
      const echo = spawnEcho(pair.b);
      const values = new Float32Array(4_000_000).map((_, i) => Math.sin(i) * 1e3);
      const reply = await pair.a.ask<{ type: string; payload: { kernel: tf.Tensor } }, Echo>(seenFrom(pair.a, echo), (replyTo) => ({ type: 'echo', replyTo, payload: { kernel: tf.tensor2d(values, [2000, 2000]) } }), 60_000);
      expect(reply.payload.kernel.shape).toEqual([2000, 2000]);
      expect(Buffer.compare(Buffer.from((reply.payload.kernel.dataSync() as Float32Array).buffer), Buffer.from(values.buffer))).toBe(0);
      reply.payload.kernel.dispose();
      pair.b.stop(echo);
    }, 120_000);

    it(CONFORMANCE_TESTS.refs, async () => {
      const echo = spawnEcho(pair.b);
      const onA = spawnEcho(pair.a);
      // a asks b; b's reply travels to a temporary actor on a named inside the message.
      const there = await pair.a.ask<{ type: string; payload: string }, Echo>(seenFrom(pair.a, echo), (replyTo) => ({ type: 'echo', replyTo, payload: 'to b' }));
      expect(there.payload).toBe('to b');
      // b asks a, with a ref of a's actor carried in the message and used by b for the reply.
      const back = await pair.b.ask<{ type: string; payload: { who: ActorRef } }, Echo>(seenFrom(pair.b, onA), (replyTo) => ({ type: 'echo', replyTo, payload: { who: onA } }));
      expect(back.payload.who.id).toBe(onA.id);
      expect(back.payload.who.node).toBe(pair.a.node);
      pair.b.stop(echo);
      pair.a.stop(onA);
    });

    it(CONFORMANCE_TESTS.timeout, async () => {
      const silent = pair.b.spawn<Message>(() => ({ receive: () => undefined }), { name: 'silent' });
      const started = performance.now();
      await expect(pair.a.ask(seenFrom(pair.a, silent), (replyTo) => ({ type: 'hello', replyTo }), 300)).rejects.toBeInstanceOf(AskTimeoutError);
      expect(performance.now() - started).toBeGreaterThanOrEqual(290);
      pair.b.stop(silent);
    });

    it(CONFORMANCE_TESTS.dead, async () => {
      const dying = await setup();
      try {
        const echo = seenFrom(dying.a, spawnEcho(dying.b));
        const ok = await dying.a.ask<{ type: string; payload: number }, Echo>(echo, (replyTo) => ({ type: 'echo', replyTo, payload: 1 }));
        expect(ok.payload).toBe(1);
        const down: string[] = [];
        const dead: string[] = [];
        dying.a.events.on('nodeDown', (node) => down.push(node));
        dying.a.events.on('deadLetter', (_target, message) => {
          dead.push(message.type);
          tensorsOf(message).forEach((t) => t.dispose());
        });
        await dying.killB();
        expect(down).toContain(dying.b.node);
        expect(() => echo.tell({ type: 'echo', replyTo: echo, payload: tf.ones([4]) })).not.toThrow();
        expect(dead).toContain('echo');
        const started = performance.now();
        const error = await dying.a.ask<Reply, Echo>(echo, (replyTo) => ({ type: 'echo', replyTo, payload: 2 }), 1_000).catch((e: unknown) => e);
        expect(error instanceof ActorStoppedError || error instanceof AskTimeoutError).toBe(true);
        expect(performance.now() - started).toBeLessThan(1_500);
      } finally {
        await dying.close();
      }
    });
  });
}

/**
 * A pair whose frames cross a real worker thread or child process: `a` starts the node, `b` is
 * a second system of this thread attached to the same node, and the node's own actor system
 * forwards every frame between them (a → node → b and back). Killing the node kills `b`'s route.
 */
export async function relayPair(spawn: (system: ActorSystem) => Promise<RemoteNode>): Promise<TransportPair> {
  const a = new ActorSystem({ name: 'a' });
  const b = new ActorSystem({ name: 'b' });
  const node = await spawn(a);
  node.attach(b); // b reaches the node, and the node routes b's frames back to this thread
  node.route(b.node); // a reaches b through the node
  b.setDefaultRoute(node.link); // b reaches a through the node
  return {
    a,
    b,
    killB: async () => {
      node.kill();
      await node.exited;
    },
    close: async () => {
      await node.close();
      b.setDefaultRoute(undefined);
      a.shutdown();
      b.shutdown();
    },
  };
}
