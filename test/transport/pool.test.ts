/**
 * Frame buffers are reused instead of allocated per tensor: the pool hands back a kept buffer
 * of the exact size, respects its limits, and ignores buffers that were transferred away; a
 * tensor encoded into a reused buffer decodes to the same values.
 */
import * as tf from '@tensorflow/tfjs';
import { MessageChannel } from 'node:worker_threads';
import { BufferPool, decodeMessage, encodeMessage, framePool } from '../../src/transport/codec.js';
import { setupBackend } from '../helpers.js';

beforeAll(async () => {
  await setupBackend();
});

test('the pool reuses buffers of the exact size, within its limits', () => {
  const pool = new BufferPool(3 * 8192, 2, 4096);
  const a = pool.take(8192);
  pool.give(a);
  expect(pool.bytes).toBe(8192);
  expect(pool.take(8192)).toBe(a);
  expect(pool.take(8192)).not.toBe(a); // none left: a new one
  pool.give(new ArrayBuffer(100)); // too small to keep
  expect(pool.bytes).toBe(0);
  [1, 2, 3].forEach(() => pool.give(new ArrayBuffer(8192)));
  expect(pool.bytes).toBe(2 * 8192); // at most 2 of one size
  pool.give(new ArrayBuffer(16384)); // over the byte limit
  expect(pool.bytes).toBe(2 * 8192);
});

test('a buffer that was transferred away is not kept', () => {
  const pool = new BufferPool();
  const buffer = new ArrayBuffer(8192);
  const { port1, port2 } = new MessageChannel();
  port1.postMessage(buffer, [buffer]);
  port1.close();
  port2.close();
  pool.give(buffer);
  expect(pool.bytes).toBe(0);
});

test('tensors encoded into reused buffers decode to the same values', () => {
  const ref = { id: 'a', name: 'a', node: 'n', tell: () => undefined };
  for (let round = 0; round < 3; round++) {
    const x = tf.randomNormal([64, 33], 0, 1, 'float32', round);
    const expected = x.dataSync().slice();
    const { frame } = encodeMessage({ type: 't', x } as never, ref);
    const message = decodeMessage(frame, (id, name, node) => ({ ...ref, id, name, node })) as unknown as { x: tf.Tensor };
    frame.buffers.forEach((b) => framePool.give(b)); // as the actor system does once tensors own copies
    expect(Array.from(message.x.dataSync())).toEqual(Array.from(expected));
    tf.dispose([x, message.x]);
  }
  if (tf.getBackend() === 'wasm') expect(framePool.bytes).toBeGreaterThanOrEqual(64 * 33 * 4);
});
