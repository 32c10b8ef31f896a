/**
 * What the codec refuses from another node, each with a ProtocolError and nothing created:
 * prototype keys in a header, headers nested past the depth limit, dtypes that are inherited
 * properties, tensor placeholders that point outside the frame, frames whose sparse buffers
 * expand past the frame limit; and the reassembler's bounds on incomplete messages (count, and
 * empty chunks counted against the byte budget). The fuzz tests (test/fuzz) cover random input.
 */
import * as tf from '@tensorflow/tfjs';
import type { ActorRef } from '../actor/index.js';
import { ProtocolError } from '../errors.js';
import { Chunker, Reassembler } from './chunk.js';
import { bytesToFrame, decodeMessage, encodeMessage, frameToBytes, type Frame } from './codec.js';
import { LIMITS } from './limits.js';

const ref = (id: string, name: string, node: string) => ({ id, name, node, tell: () => undefined }) as unknown as ActorRef;
const decode = (header: string, buffers: ArrayBuffer[] = []) => decodeMessage({ node: 'n', to: 'a', header, buffers } as Frame, ref);

beforeAll(async () => {
  await tf.setBackend('cpu');
});

test('prototype keys, deep nesting and inherited dtypes are refused with a ProtocolError, and no tensor is left', () => {
  const before = tf.memory().numTensors;
  for (const key of ['__proto__', 'constructor', 'prototype']) {
    expect(() => decode(`{"type":"gate.forward","${key}":{"polluted":true}}`)).toThrow(new RegExp(`key '${key}'`));
  }
  const x = '{"$tensor":0,"dtype":"float32","shape":[1]}';
  expect(() => decode(`{"type":"t","x":${x},"__proto__":{}}`, [new ArrayBuffer(4)])).toThrow(ProtocolError);
  expect(() => decode(`{"type":"t","x":${'['.repeat(50_000)}${']'.repeat(50_000)}}`)).toThrow(/nests deeper than 32 levels/);
  expect(() => decode('{"type":"t","x":{"$tensor":0,"dtype":"toString","shape":[1]}}', [new ArrayBuffer(4)])).toThrow(/dtype 'toString'/);
  expect(() => decode('{"type":"t","x":{"$tensor":"constructor","dtype":"float32","shape":[1]}}', [new ArrayBuffer(4)])).toThrow(/points to no buffer/);
  expect(() => decode('{"type":"t","x":{"$tensor":1.5,"dtype":"float32","shape":[1]}}', [new ArrayBuffer(4)])).toThrow(/points to no buffer/);
  expect(() => decode('[{"type":"t"}]')).toThrow(/no message with a string `type`/);
  expect(tf.memory().numTensors).toBe(before);
});

test('a frame whose sparse buffers expand past the frame limit is refused before anything is allocated', () => {
  const zeros = tf.zeros([64, 1024]); // 256 KiB of zeros travel as a few KiB
  const { frame } = encodeMessage({ type: 'gate.forward', sentinel: ref('s', 's', 'n'), batch: 0, x: zeros } as never, ref('g', 'g', 'm'));
  zeros.dispose();
  const bytes = frameToBytes(frame);
  expect(bytes.byteLength).toBeLessThan(16 * 1024);
  expect(() => bytesToFrame(bytes, { ...LIMITS, maxFrameBytes: 64 * 1024 })).toThrow(/decodes to 262144 bytes, over the limit of 65536/);
  expect(bytesToFrame(bytes).buffers[0]?.byteLength).toBe(262_144);
});

test('the reassembler holds at most maxPendingMessages incomplete messages, and empty chunks count against its budget', () => {
  const reassembler = new Reassembler({ maxMessageBytes: 1 << 20, maxPendingBytes: 1 << 20, maxPendingMessages: 3 });
  const chunker = new Chunker();
  const firsts = Array.from({ length: 10 }, () => chunker.split(new Uint8Array(200), 100)[0] as Uint8Array);
  firsts.forEach((chunk) => reassembler.push(chunk));
  expect(reassembler.pendingMessages).toBe(3);
  // A message of many empty chunks: each costs one byte of the budget.
  const tight = new Reassembler({ maxMessageBytes: 1 << 20, maxPendingBytes: 100 });
  const base = (chunker.split(new Uint8Array(300), 137)[0] as Uint8Array).slice(0, 36); // a valid header (one message id) to copy
  const header = (index: number) => {
    const empty = base.slice();
    const view = new DataView(empty.buffer);
    view.setUint32(20, index);
    view.setUint32(24, 90);
    view.setFloat64(28, 90);
    return empty;
  };
  for (let i = 0; i < 80; i++) tight.push(header(i));
  expect(tight.pendingBytes).toBe(80);
  expect(() => {
    for (let i = 80; i < 90; i++) tight.push(header(i));
  }).toThrow(ProtocolError);
  expect(tight.pendingBytes).toBeLessThanOrEqual(100);
});
