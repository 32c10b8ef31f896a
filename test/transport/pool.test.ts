/**
 * Frame buffers are reused instead of allocated per tensor: the pool hands back a kept buffer
 * of the exact size, respects its limits, and ignores buffers that were transferred away; a
 * tensor encoded into a reused buffer decodes to the same values.
 */
import * as tf from '@tensorflow/tfjs';
import { MessageChannel } from 'node:worker_threads';
import { ProtocolError } from '../../src/errors.js';
import { BufferPool, bytesToFrame, decodeMessage, encodeMessage, framePool, frameToBytes, sparseDecode, sparseEncode } from '../../src/wire/index.js';
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

describe('sparse buffers on serialised links', () => {
  test('mostly-zero words travel as a bitmap and the non-zero words, bit for bit', () => {
    const words = new Float32Array(10_001);
    for (let i = 0; i < words.length; i += 7) words[i] = (i % 3) - 1.5;
    words[5] = -0; // a sign bit is data
    new Uint32Array(words.buffer)[9] = 0x7fc00001; // a NaN payload too
    const encoded = sparseEncode(words.buffer);
    expect(encoded).toBeDefined();
    expect((encoded as Uint8Array).byteLength).toBeLessThan(words.byteLength / 4);
    const back = new ArrayBuffer(words.byteLength);
    sparseDecode(encoded as Uint8Array, words.byteLength, back);
    expect(Array.from(new Uint32Array(back))).toEqual(Array.from(new Uint32Array(words.buffer)));
  });

  test('dense buffers stay raw; frames round-trip either way', () => {
    const dense = Float32Array.from({ length: 4096 }, (_, i) => i + 1);
    expect(sparseEncode(dense.buffer)).toBeUndefined();
    const sparse = new Float32Array(4096);
    sparse[100] = 3;
    const frame = { node: 'n', to: 'a', header: '{"type":"t"}', buffers: [dense.slice().buffer, sparse.slice().buffer, new ArrayBuffer(0)] };
    const bytes = frameToBytes(frame);
    expect(bytes.byteLength).toBeLessThan(dense.byteLength + sparse.byteLength / 4);
    const back = bytesToFrame(bytes);
    expect(back.buffers.map((b) => Array.from(new Float32Array(b)))).toEqual([Array.from(dense), Array.from(sparse), []]);
  });

  test('several sparse buffers in one frame each keep their own words', () => {
    const a = new Float32Array(4096);
    const b = new Float32Array(2048);
    a[7] = 1.5;
    b[9] = -2;
    b[2047] = 4;
    const back = bytesToFrame(frameToBytes({ node: 'n', to: 'a', header: '{"type":"t"}', buffers: [a.slice().buffer, b.slice().buffer] }));
    expect(back.buffers.map((x) => Array.from(new Float32Array(x)))).toEqual([Array.from(a), Array.from(b)]);
  });

  test('a sparse buffer decodes the same at any offset inside the received bytes', () => {
    const words = new Float32Array(3000);
    for (let i = 0; i < words.length; i += 5) words[i] = i / 7;
    const encoded = sparseEncode(words.buffer) as Uint8Array;
    for (const offset of [0, 1, 2, 4, 6]) {
      const received = new Uint8Array(offset + encoded.byteLength);
      received.set(encoded, offset);
      const back = new ArrayBuffer(words.byteLength);
      sparseDecode(received.subarray(offset), words.byteLength, back);
      expect({ offset, words: Array.from(new Float32Array(back)) }).toEqual({ offset, words: Array.from(words) });
    }
  });

  test('a sparse buffer that does not add up is a ProtocolError', () => {
    const sparse = new Float32Array(4096);
    sparse[1] = 1;
    const encoded = sparseEncode(sparse.buffer) as Uint8Array;
    expect(() => sparseDecode(encoded.subarray(0, encoded.byteLength - 4), sparse.byteLength, new ArrayBuffer(sparse.byteLength))).toThrow(ProtocolError);
    const extra = new Uint8Array(encoded.byteLength + 4);
    extra.set(encoded);
    expect(() => sparseDecode(extra, sparse.byteLength, new ArrayBuffer(sparse.byteLength))).toThrow(ProtocolError);
    expect(() => sparseDecode(encoded, 3 * sparse.byteLength, new ArrayBuffer(sparse.byteLength))).toThrow(ProtocolError);
    // 300 words (a bitmap of 10 words, the last one covering 12 words): a bit marking word 310.
    const short = new Float32Array(300);
    short[1] = 1;
    const marked = (sparseEncode(short.buffer) as Uint8Array).slice();
    new Uint32Array(marked.buffer)[9] |= 1 << 22;
    const padded = new Uint8Array(marked.byteLength + 4);
    padded.set(marked);
    expect(() => sparseDecode(padded, short.byteLength, new ArrayBuffer(short.byteLength))).toThrow(/past its end/);
  });

  test('a buffer reused for decoding is cleared first, and a dense tail group round-trips', () => {
    const words = new Float32Array(1000); // 31 full groups and one of 8
    for (let i = 992; i < 1000; i++) words[i] = i;
    words[3] = 2;
    const encoded = sparseEncode(words.buffer) as Uint8Array;
    const reused = new Float32Array(1000).fill(9);
    sparseDecode(encoded, words.byteLength, reused.buffer);
    expect(Array.from(reused)).toEqual(Array.from(words));
  });
});
