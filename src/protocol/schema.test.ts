/**
 * Messages from other nodes are validated before any actor sees them: malformed or oversized
 * messages are rejected with a ProtocolError, answered to their sentinel, and freed.
 */
import * as tf from '@tensorflow/tfjs';
import { ActorSystem, type ActorRef } from '../actor/index.js';
import { connectInMemory } from '../transport/index.js';
import { answerInvalid, isOwnTensor, protocolValidator } from './schema.js';
import type { SentinelReply } from './messages.js';
import { setupBackend } from '../../test/helpers.js';

beforeAll(setupBackend);

function pair() {
  const a = new ActorSystem({ name: 'a' });
  const b = new ActorSystem({ name: 'b', validate: protocolValidator({ limits: { maxBatch: 1000 } }) });
  connectInMemory(a, b);
  return { a, b };
}

/** An actor on `system` that resolves with the first message it receives. */
function inbox<M extends { type: string }>(system: ActorSystem): { ref: ActorRef<M>; next: Promise<M> } {
  let resolve!: (m: M) => void;
  const next = new Promise<M>((r) => (resolve = r));
  return { ref: system.spawn<M>(() => ({ receive: (m) => resolve(m) })), next };
}

test('a well-formed gate message passes, a malformed one never reaches the actor', async () => {
  const { a, b } = pair();
  answerInvalid(b, () => undefined);
  const received: string[] = [];
  const target = b.spawn(() => ({
    receive: (m: { type: string; x?: tf.Tensor; replyTo?: ActorRef }) => {
      received.push(m.type);
      m.x?.dispose();
      m.replyTo?.tell({ type: 'gate.detached', dropped: 0 } as never);
    },
  }));
  const remote = a.ref(target.id, 'gate', b.node);
  const sentinel = inbox<SentinelReply>(a);
  const rejected = new Promise((resolve) => b.events.on('protocolError', resolve));
  const baselineB = tf.memory().numTensors;

  remote.tell({ type: 'gate.forward', sentinel: sentinel.ref, batch: 1, x: tf.zeros([2, 3]) } as never);
  remote.tell({ type: 'gate.forward', sentinel: sentinel.ref, batch: 2, x: tf.zeros([2, 3], 'int32') } as never); // wrong dtype
  await rejected;
  const reply = await sentinel.next;
  expect(reply).toMatchObject({ type: 'sentinel.batchFailed', batch: 2, error: { code: 'Protocol' } });
  expect(reply.type === 'sentinel.batchFailed' && reply.error.message).toMatch(/gate\.forward.*x.*float32/);
  // An answered ask flushes b's mailbox (FIFO): the valid message arrived, the invalid one did not.
  await a.ask(remote, (replyTo) => ({ type: 'gate.detach', sentinelId: 'none', replyTo }) as never);
  expect(received).toContain('gate.forward');
  expect(received.filter((t) => t === 'gate.forward')).toHaveLength(1);
  expect(tf.memory().numTensors).toBeLessThanOrEqual(baselineB); // the rejected tensor was freed
  a.shutdown();
  b.shutdown();
});

test('oversized batches, unknown types, bad batch ids and missing refs are rejected with a reason', () => {
  const validate = protocolValidator({ limits: { maxBatch: 4 } });
  const { a } = pair();
  const sentinel = a.spawn(() => ({ receive: () => undefined }));
  const x = tf.zeros([5, 2]);
  expect(() => validate({ type: 'gate.forward', sentinel, batch: 0, x } as never)).toThrow(/1\.\.4 samples/);
  expect(() => validate({ type: 'gate.explode' } as never)).toThrow(/Rejected 'gate.explode'/);
  expect(() => validate({ type: 'gate.abort', sentinel, batch: -1, error: { code: 'X', message: '' } } as never)).toThrow(/batch/);
  expect(() => validate({ type: 'gate.forward', sentinel: { id: 'x' }, batch: 0, x: tf.zeros([1, 2]) } as never)).toThrow(/actor ref/);
  expect(() => validate({ type: 'gate.forward', sentinel, batch: 0, x: tf.zeros([1, 2]) } as never)).not.toThrow();
  // A sentinel spec from another node carries only a spec's fields, and each data kind only its own.
  const spawn = (spec: object) => ({ type: 'host.spawnSentinel', spec, first: sentinel, last: sentinel, reporter: sentinel, replyTo: sentinel }) as never;
  const spec = { name: 's', mode: 'test', data: { kind: 'csv', path: 'a.csv' } };
  expect(() => validate(spawn(spec))).not.toThrow();
  expect(() => validate(spawn({ ...spec, now: 'x' }))).toThrow(/spec: Unrecognized key/);
  expect(() => validate(spawn({ ...spec, data: { kind: 'csv', path: 'a.csv', metrics: [] } }))).toThrow(/spec.data: Unrecognized key/);
  tf.dispose(x);
  a.shutdown();
});

test('answerInvalid logs one line per rejected message', async () => {
  const { a, b } = pair();
  const lines: string[] = [];
  answerInvalid(b, (line) => lines.push(line));
  const target = b.spawn(() => ({ receive: () => undefined }));
  const logged = new Promise((resolve) => b.events.on('protocolError', resolve));
  a.ref(target.id, 'gate', b.node).tell({ type: 'host.spawnGate', config: { name: 'g' }, replyTo: target } as never);
  await logged;
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(/host\.spawnGate/);
  a.shutdown();
  b.shutdown();
});

test('a tensor is judged by its own fields: inherited ones, a size that does not match its shape, or a disposed tensor fail', () => {
  const t = tf.ones([2, 3]);
  expect(isOwnTensor(t)).toBe(true);
  // The prototype of a tensor with the fields inherited, not its own.
  const inherited = Object.create(Object.create(t));
  expect(inherited instanceof tf.Tensor).toBe(true);
  expect(isOwnTensor(inherited)).toBe(false);
  const lying = Object.assign(Object.create(tf.Tensor.prototype), { dtype: 'float32', shape: [2, 3], size: 600, dataId: {}, isDisposedInternal: false });
  expect(isOwnTensor(lying)).toBe(false);
  expect(isOwnTensor({ dtype: 'float32', shape: [1], size: 1, dataId: {}, isDisposedInternal: false })).toBe(false);
  const validate = protocolValidator();
  expect(() => validate({ type: 'gate.detached', dropped: 0 } as never)).not.toThrow();
  expect(() => validate({ type: 'sentinel.logits', batch: 0, logits: lying } as never)).toThrow(/expected a float32 tensor/);
  t.dispose();
  expect(isOwnTensor(t)).toBe(false);
});
