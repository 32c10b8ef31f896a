/**
 * Property-based fuzzing (fast-check) of what a node decodes from another: frame bytes
 * (`bytesToFrame`), frame headers (`decodeMessage`), chunk reassembly and the protocol schemas.
 * Inputs are random, or valid frames mutated (bytes flipped, cut, extended). Every input must be
 * decoded or refused with a named error (`AkkordeonError`), never crash with another error, hold
 * no more than the reassembly budget, and leave no tensor behind.
 *
 * `npm test` runs a few thousand cases (FUZZ_RUNS, default 500 per property);
 * `npm run fuzz` runs 100,000 per property family (FUZZ_RUNS=25000 over 4 families of mutations).
 */
import fc from 'fast-check';
import * as tf from '@tensorflow/tfjs';
import type { ActorRef } from '../../src/actor/index.js';
import { AkkordeonError } from '../../src/errors.js';
import { protocolValidator } from '../../src/protocol/index.js';
import { bytesToFrame, CHUNK_HEADER_BYTES, Chunker, decodeMessage, encodeMessage, frameToBytes, type Frame, LIMITS, Reassembler } from '../../src/wire/index.js';
import { setupBackend } from '../helpers.js';

const RUNS = Number(process.env.FUZZ_RUNS ?? 500);
const SEED = process.env.FUZZ_SEED === undefined ? undefined : Number(process.env.FUZZ_SEED);
const params = { numRuns: RUNS, ...(SEED === undefined ? {} : { seed: SEED }) };
const ref = (id: string, name: string, node: string) => ({ id, name, node, tell: () => undefined }) as unknown as ActorRef;
const target = ref('gate', 'gate', 'node-b');
const small = { ...LIMITS, maxFrameBytes: 4 * 2 ** 20, maxTensorElements: 2 ** 18 };

/** Runs `f`; passes when it returns or throws a named akkordeon error, and rethrows anything else. */
function namedOrFine(f: () => void): boolean {
  try {
    f();
    return true;
  } catch (error) {
    if (error instanceof AkkordeonError) return true;
    throw error;
  }
}

/** Decodes bytes all the way to a validated message, disposing whatever tensors it makes. */
function decodeAll(bytes: Uint8Array, validate: (m: never) => void): void {
  const frame = bytesToFrame(bytes, small);
  const message = decodeMessage(frame, ref, small);
  try {
    validate(message as never);
  } finally {
    tf.dispose(Object.values(message).filter((v): v is tf.Tensor => v instanceof tf.Tensor));
  }
}

/** A valid frame of a batch message: a [rows, cols] tensor, sparse or dense. */
const validFrame = fc.record({ rows: fc.integer({ min: 1, max: 8 }), cols: fc.integer({ min: 1, max: 300 }), zeros: fc.double({ min: 0, max: 1, noNaN: true }), batch: fc.nat(1000) }).map(({ rows, cols, zeros, batch }) => {
  const values = Float32Array.from({ length: rows * cols }, (_, i) => (Math.sin(i * 12.9898) * 0.5 + 0.5 < zeros ? 0 : i + 0.5));
  const x = tf.tensor(values, [rows, cols]);
  const { frame } = encodeMessage({ type: 'gate.forward', sentinel: ref('s', 's', 'node-a'), batch, x } as never, target);
  x.dispose();
  return frameToBytes(frame);
});

const mutation = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), value: fc.nat(255) }),
  fc.record({ kind: fc.constant('cut' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('extend' as const), extra: fc.uint8Array({ maxLength: 64 }) }),
  fc.record({ kind: fc.constant('splice' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }) }),
);

/** Applies mutations to a copy of `bytes`. */
function mutate(bytes: Uint8Array, changes: { kind: string; at?: number; value?: number; extra?: Uint8Array; bytes?: Uint8Array }[]): Uint8Array {
  let out = bytes.slice();
  for (const m of changes) {
    const at = (m.at ?? 0) % Math.max(1, out.length);
    if (m.kind === 'flip') out[at] = m.value as number;
    else if (m.kind === 'cut') out = out.slice(0, at);
    else if (m.kind === 'extend') out = new Uint8Array([...out, ...(m.extra as Uint8Array)]);
    else out.set((m.bytes as Uint8Array).subarray(0, out.length - at), at);
  }
  return out;
}

beforeAll(async () => {
  await setupBackend();
});

describe('fuzzing the wire', () => {
  const validate = protocolValidator({ limits: small });
  let before: number;
  beforeEach(() => (before = tf.memory().numTensors));
  afterEach(() => expect(tf.memory().numTensors).toBe(before));

  test('random bytes decode or are refused with a named error', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 256 }), (bytes) => namedOrFine(() => decodeAll(bytes, validate))), params);
  });

  test('valid frames, mutated (bytes flipped, cut, extended, spliced), decode or are refused with a named error', () => {
    fc.assert(fc.property(validFrame, fc.array(mutation, { minLength: 1, maxLength: 4 }), (bytes, changes) => namedOrFine(() => decodeAll(mutate(bytes, changes), validate))), params);
  });

  test('any JSON header, prototype keys and deep nesting included, decodes or is refused with a named error', () => {
    const key = fc.oneof(fc.string({ maxLength: 8 }), fc.constantFrom('__proto__', 'constructor', 'prototype', '$tensor', '$ref', 'type', 'x', 'batch', 'sentinel'));
    const json = fc.letrec((tie) => ({
      value: fc.oneof({ depthSize: 'small' }, fc.jsonValue({ maxDepth: 2 }), fc.array(tie('value'), { maxLength: 3 }), fc.dictionary(key, tie('value'), { maxKeys: 4 })),
    })).value;
    const deep = fc.integer({ min: 1, max: 30_000 }).map((n) => `{"type":"gate.forward","x":${'['.repeat(n)}${']'.repeat(n)}}`);
    // A prototype key spelled out in the JSON text, where JSON.parse makes it an own key.
    const poisoned = fc.tuple(fc.constantFrom('__proto__', 'constructor', 'prototype'), json).map(([k, v]) => `{"type":"gate.forward","${k}":${JSON.stringify(v) ?? 'null'},"batch":0}`);
    const header = fc.oneof(json.map((v) => JSON.stringify(v) ?? 'null'), deep, poisoned, fc.string({ maxLength: 64 }));
    const buffers = fc.array(fc.nat(64).map((n) => new ArrayBuffer(n * 4)), { maxLength: 3 });
    fc.assert(
      fc.property(header, buffers, (text, bufs) =>
        namedOrFine(() => {
          const frame: Frame = { node: 'node-b', to: 'gate', header: text, buffers: bufs };
          const message = decodeMessage(frame, ref, small);
          expect(Object.getPrototypeOf(message)).toBe(Object.prototype); // never another prototype
          try {
            validate(message as never);
          } finally {
            tf.dispose(Object.values(message).filter((v): v is tf.Tensor => v instanceof tf.Tensor));
          }
        }),
      ),
      params,
    );
  });

  test('chunk reassembly: random and mutated chunks from many messages stay within the budget and fail only by name', () => {
    const budget = 64 * 1024;
    const payload = fc.uint8Array({ minLength: 1, maxLength: 4096 });
    const chunks = fc.array(fc.tuple(payload, fc.integer({ min: CHUNK_HEADER_BYTES + 1, max: CHUNK_HEADER_BYTES + 512 })), { minLength: 1, maxLength: 6 }).map((messages) => {
      const chunker = new Chunker();
      return messages.flatMap(([bytes, max]) => (bytes.length > max ? chunker.split(bytes, max) : []));
    });
    fc.assert(
      fc.property(chunks, fc.array(mutation, { maxLength: 3 }), fc.array(fc.uint8Array({ maxLength: 80 }), { maxLength: 3 }), fc.boolean(), (parts, changes, noise, shuffle) => {
        const reassembler = new Reassembler({ maxMessageBytes: budget, maxPendingBytes: budget, maxPendingMessages: 4 });
        const sequence = [...parts.map((c, i) => (i === 0 && changes.length > 0 ? mutate(c, changes) : c)), ...noise];
        if (shuffle) sequence.reverse();
        for (const chunk of sequence) {
          namedOrFine(() => void reassembler.push(chunk));
          expect(reassembler.pendingBytes).toBeLessThanOrEqual(budget);
          expect(reassembler.pendingMessages).toBeLessThanOrEqual(4);
        }
        return true;
      }),
      params,
    );
  });
});
