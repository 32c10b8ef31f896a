/**
 * Bounded work under a flood from one misbehaving sender: a gate keeps at most
 * `maxInFlightPerSentinel` batches of one sentinel (a forward beyond it fails at that sentinel
 * with OverloadError, and the other sentinels go on), and an actor's mailbox takes at most
 * `maxRemoteQueue` messages from other nodes (the rest are dropped unread and reported). Tensor
 * memory stays flat.
 */
import * as tf from '@tensorflow/tfjs';
import { ActorSystem, type ActorRef, type Message } from '../src/actor/index.js';
import { OverloadError, ProtocolError } from '../src/errors.js';
import { Gate } from '../src/gate/index.js';
import { SGD } from '../src/optim/index.js';
import type { GateDetached, GateMessage, SentinelReply } from '../src/protocol/index.js';
import { connectInMemory } from '../src/transport/index.js';
import { setupBackend } from './helpers.js';

beforeAll(setupBackend);

/** A sentinel stand-in that records the gates' replies and frees their tensors. */
function recorder(system: ActorSystem, name: string): { ref: ActorRef<SentinelReply>; replies: SentinelReply[] } {
  const replies: SentinelReply[] = [];
  const ref = system.spawn<SentinelReply>(() => ({
    receive: (m: SentinelReply) => {
      replies.push(m);
      if (m.type === 'sentinel.logits' || m.type === 'sentinel.predictions') m.logits.dispose();
    },
  }), { name });
  return { ref, replies };
}

/** Resolves once `check` holds, polling on the event loop (each turn lets the mailboxes drain). */
async function until(check: () => boolean): Promise<void> {
  while (!check()) await new Promise((resolve) => setImmediate(resolve));
}

test('a gate keeps at most maxInFlightPerSentinel batches of one sentinel; the flood fails at its sentinel, another sentinel trains on', async () => {
  const before = tf.memory().numTensors;
  const system = new ActorSystem({ name: 'overload' });
  const gate = system.spawn<GateMessage>(() => new Gate({ name: 'g', layers: [tf.layers.dense({ units: 2 })], inputShape: [3], optimizer: new SGD({ learningRate: 0.1 }), maxInFlightPerSentinel: 4 }));
  gate.tell({ type: 'gate.connect' });
  const flood = recorder(system, 'flood');
  const honest = recorder(system, 'honest');
  for (let batch = 0; batch < 10; batch++) gate.tell({ type: 'gate.forward', sentinel: flood.ref, batch, x: tf.ones([2, 3]) });
  gate.tell({ type: 'gate.forward', sentinel: honest.ref, batch: 0, x: tf.ones([2, 3]) });
  await until(() => flood.replies.length === 10 && honest.replies.length === 1);
  expect(flood.replies.filter((r) => r.type === 'sentinel.logits')).toHaveLength(4);
  const failed = flood.replies.filter((r) => r.type === 'sentinel.batchFailed');
  expect(failed).toHaveLength(6);
  expect(failed.every((r) => r.type === 'sentinel.batchFailed' && r.error.code === 'Overload')).toBe(true);
  expect(honest.replies[0]?.type).toBe('sentinel.logits');
  // The honest sentinel's backward pass still updates the gate.
  gate.tell({ type: 'gate.backward', sentinel: honest.ref, batch: 0, dy: tf.ones([2, 2]) });
  await until(() => honest.replies.length === 2);
  expect(honest.replies[1]?.type).toBe('sentinel.backwardDone');
  await system.ask(gate, (replyTo) => ({ type: 'gate.detach', sentinelId: flood.ref.id, replyTo }) as GateMessage);
  system.shutdown();
  expect(tf.memory().numTensors).toBe(before);
});

test('an actor takes at most maxRemoteQueue messages from other nodes; the rest are dropped unread and reported', async () => {
  const before = tf.memory().numTensors;
  const receiver = new ActorSystem({ name: 'receiver', maxRemoteQueue: 2 });
  const sender = new ActorSystem({ name: 'sender' });
  connectInMemory(sender, receiver);
  let release!: () => void;
  const gateOpen = new Promise<void>((resolve) => (release = resolve));
  const handled: number[] = [];
  const slow = receiver.spawn<Message & { n: number; x: tf.Tensor }>(() => ({
    receive: async (m) => {
      m.x.dispose();
      handled.push(m.n);
      await gateOpen; // the first message holds the actor; the rest wait in its mailbox
    },
  }), { name: 'slow' });
  const errors: ProtocolError[] = [];
  receiver.events.on('protocolError', (error) => errors.push(error));
  const remote = sender.ref<Message & { n: number; x: tf.Tensor }>(slow.id, 'slow', receiver.node);
  await until(() => true);
  remote.tell({ type: 'test.work', n: 0, x: tf.ones([4]) });
  await until(() => handled.length === 1);
  for (let n = 1; n <= 6; n++) remote.tell({ type: 'test.work', n, x: tf.ones([4]) });
  await until(() => errors.length + 2 >= 6);
  expect(errors).toHaveLength(4);
  expect(errors.every((e) => e instanceof OverloadError && /already has 2 messages queued; 'test.work' from another node dropped/.test(e.message))).toBe(true);
  release();
  await until(() => handled.length === 3);
  expect(handled).toEqual([0, 1, 2]);
  sender.shutdown();
  receiver.shutdown();
  expect(tf.memory().numTensors).toBe(before);
});

test("a ref naming another node's sentinel id neither starts, finishes, aborts nor detaches that sentinel's batches", async () => {
  const before = tf.memory().numTensors;
  const system = new ActorSystem({ name: 'ids' });
  const gate = system.spawn<GateMessage>(() => new Gate({ name: 'g', layers: [tf.layers.dense({ units: 2 })], inputShape: [3], optimizer: new SGD({ learningRate: 0.1 }) }));
  gate.tell({ type: 'gate.connect' });
  const honest = recorder(system, 'honest');
  gate.tell({ type: 'gate.forward', sentinel: honest.ref, batch: 0, x: tf.ones([2, 3]) });
  await until(() => honest.replies.length === 1);
  // The same actor id, claimed from another node (where its replies would go).
  const forged = system.ref<SentinelReply>(honest.ref.id, 'forged', 'elsewhere');
  gate.tell({ type: 'gate.backward', sentinel: forged, batch: 0, dy: tf.ones([2, 2]) });
  gate.tell({ type: 'gate.abort', sentinel: forged, batch: 0, error: { code: 'X', message: 'forged' } });
  gate.tell({ type: 'gate.forward', sentinel: forged, batch: 1, x: tf.ones([2, 3]) });
  const detached = await system.ask<GateDetached, GateMessage>(gate, (replyTo) => ({ type: 'gate.detach', sentinelId: honest.ref.id, node: 'elsewhere', replyTo }));
  expect(detached.dropped).toBe(0);
  // The honest sentinel's batch is still there: its backward pass completes.
  gate.tell({ type: 'gate.backward', sentinel: honest.ref, batch: 0, dy: tf.ones([2, 2]) });
  await until(() => honest.replies.length === 2);
  expect(honest.replies.map((r) => r.type)).toEqual(['sentinel.logits', 'sentinel.backwardDone']);
  system.shutdown();
  expect(tf.memory().numTensors).toBe(before);
});
