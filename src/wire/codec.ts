/**
 * The wire codec: a message becomes a {@link Frame}, a JSON header plus one binary buffer per
 * tensor (dtype, shape, bytes), and back. Actor refs travel as addresses (`{ id, name, node }`).
 * Frames go to worker threads as they are, with the buffers transferred rather than copied.
 * Child processes and NATS get them as bytes ({@link frameToBytes}).
 */
import * as tf from '@tensorflow/tfjs';
import { type ActorRef, type ActorSystem, isRef, type Message, type MessageCodec } from '../actor/index.js';
import { backendCopiesData } from '../backend.js';
import { InvalidArgumentError, ProtocolError } from '../errors.js';
import { type Limits, LIMITS } from './limits.js';
import { framePool } from './pool.js';

/** One message on its way to an actor on another node. */
export interface Frame {
  /** Node id of the receiving actor system. */
  node: string;
  /** Id of the receiving actor. */
  to: string;
  /** The message as JSON, with tensors and refs replaced by placeholders. */
  header: string;
  /** Tensor data, in placeholder order. */
  buffers: ArrayBuffer[];
  /**
   * Buffers of earlier frames from the receiving side, handed back (transferred) for reuse once
   * their data was copied into tensors, so that a steady stream of frames between two threads
   * allocates no new buffers (see {@link BufferPool}).
   */
  returns?: ArrayBuffer[];
}

/** Whether tensors created from a buffer copy it (so the buffer may be reused at once). */
export const tensorsCopyBuffers = backendCopiesData;

/** The buffers a frame moves to the receiver when posted to a thread. */
export const transferList = (frame: Frame): ArrayBuffer[] => (frame.returns ? [...frame.buffers, ...frame.returns] : frame.buffers);

const DTYPES = { float32: Float32Array, int32: Int32Array, bool: Uint8Array } as const;
type WireDtype = keyof typeof DTYPES;

/**
 * Encodes a message for `target`. Tensors are copied out, so the caller may dispose them.
 * @throws InvalidArgumentError for values that cannot travel (functions, string tensors, …).
 */
export function encodeMessage(message: Message, target: ActorRef): { frame: Frame; tensors: tf.Tensor[] } {
  const buffers: ArrayBuffer[] = [];
  const tensors: tf.Tensor[] = [];
  const walk = (value: unknown, path: string): unknown => {
    if (value === null || typeof value === 'number' || typeof value === 'string' || typeof value === 'boolean') return value;
    if (value === undefined) return undefined;
    if (value instanceof tf.Tensor) {
      if (!Object.hasOwn(DTYPES, value.dtype)) throw new InvalidArgumentError(`${path}: tensors of dtype ${value.dtype} cannot cross nodes; use float32, int32 or bool.`);
      buffers.push(tensorBuffer(value));
      tensors.push(value);
      return { $tensor: buffers.length - 1, dtype: value.dtype, shape: value.shape };
    }
    if (isRef(value)) return { $ref: value.id, name: value.name, node: value.node };
    if (Array.isArray(value)) return value.map((v, i) => walk(v, `${path}[${i}]`));
    if (typeof value === 'object') {
      const out: Record<string, unknown> = {};
      for (const [key, v] of Object.entries(value)) out[key] = walk(v, `${path}.${key}`);
      return out;
    }
    throw new InvalidArgumentError(`${path}: a ${typeof value} cannot cross nodes; messages hold data, tensors and refs only.`);
  };
  const header = JSON.stringify(walk(message, message.type));
  return { frame: { node: target.node, to: target.id, header, buffers }, tensors };
}

interface WasmBackendInternals {
  dataIdMap?: { get(dataId: object): { memoryOffset?: number | null } | undefined };
  wasm?: { HEAPU8: Uint8Array };
}

/**
 * The bytes of a tensor in a buffer the frame owns. On wasm they are copied straight from the
 * heap into a pooled buffer; elsewhere (or if the backend's layout is not the expected one)
 * through `dataSync()`.
 */
function tensorBuffer(t: tf.Tensor): ArrayBuffer {
  const bytes = t.size * (DTYPES[t.dtype as WireDtype] as { BYTES_PER_ELEMENT: number }).BYTES_PER_ELEMENT;
  if (bytes >= framePool.minBytes && tf.getBackend() === 'wasm') {
    const backend = tf.engine().backend as unknown as WasmBackendInternals;
    const offset = backend.dataIdMap?.get(t.dataId)?.memoryOffset;
    const heap = backend.wasm?.HEAPU8;
    if (typeof offset === 'number' && heap && offset + bytes <= heap.byteLength) {
      const buffer = framePool.take(bytes);
      new Uint8Array(buffer).set(heap.subarray(offset, offset + bytes));
      return buffer;
    }
  }
  return ownBuffer(t.dataSync() as Float32Array | Int32Array | Uint8Array);
}

/**
 * A buffer that the frame may own and transfer. On wasm, `dataSync()` returns a fresh copy of
 * the heap (`HEAPU8.slice`), which is used as it is; other backends may return their own
 * storage, so it is copied.
 */
function ownBuffer(data: Float32Array | Int32Array | Uint8Array): ArrayBuffer {
  const whole = data.byteOffset === 0 && data.byteLength === data.buffer.byteLength;
  if (tf.getBackend() === 'wasm' && whole && data.buffer instanceof ArrayBuffer) return data.buffer;
  return Uint8Array.prototype.slice.call(new Uint8Array(data.buffer, data.byteOffset, data.byteLength)).buffer as ArrayBuffer;
}

/**
 * Decodes a frame; `ref` turns an address into a ref of the receiving system. The caller owns
 * the tensors created.
 * @throws ProtocolError for malformed JSON, a placeholder that points nowhere, a dtype or shape
 *   that does not match its buffer, or a tensor over the limits.
 */
export function decodeMessage(frame: Frame, ref: (id: string, name: string, node: string) => ActorRef, limits: Limits = LIMITS): Message {
  let parsed: unknown;
  try {
    parsed = JSON.parse(frame.header);
  } catch (error) {
    throw new ProtocolError(`Frame header is not valid JSON: ${(error as Error).message}`);
  }
  const created: tf.Tensor[] = [];
  const walk = (value: unknown, depth: number): unknown => {
    if (value === null || typeof value !== 'object') return value;
    if (depth > MAX_DEPTH) throw new ProtocolError(`Frame header nests deeper than ${MAX_DEPTH} levels.`);
    if (Array.isArray(value)) return value.map((inner) => walk(inner, depth + 1));
    const v = value as Record<string, unknown>;
    // Own keys only, and none that could reach a prototype when the object is used.
    if (Object.hasOwn(v, '$tensor')) return tensorFrom(v, frame.buffers, limits, created);
    if (Object.hasOwn(v, '$ref')) {
      if (typeof v.$ref !== 'string' || typeof v.node !== 'string') throw new ProtocolError('A ref in the frame has no id or node.');
      return ref(v.$ref, typeof v.name === 'string' ? v.name : v.$ref, v.node);
    }
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(v)) {
      if (FORBIDDEN_KEYS.has(key)) throw new ProtocolError(`Frame header holds the key '${key}', which is refused (it could reach an object's prototype).`);
      out[key] = walk(v[key], depth + 1);
    }
    return out;
  };
  try {
    const message = walk(parsed, 0) as Message;
    if (typeof message !== 'object' || message === null || Array.isArray(message) || typeof message.type !== 'string') throw new ProtocolError('Frame holds no message with a string `type`.');
    return message;
  } catch (error) {
    created.forEach((t) => t.dispose());
    throw error;
  }
}

/** Keys a decoded header may not hold: they could reach a prototype (`__proto__`) or its constructor. */
const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);
/** How deep a decoded header may nest (messages nest a few levels; a deeper one is an attack on the stack). */
const MAX_DEPTH = 32;

function tensorFrom(v: Record<string, unknown>, buffers: ArrayBuffer[], limits: Limits, created: tf.Tensor[]): tf.Tensor {
  const { $tensor: index, dtype, shape } = v;
  const buffer = Number.isInteger(index) && (index as number) >= 0 && (index as number) < buffers.length ? buffers[index as number] : undefined;
  if (!(buffer instanceof ArrayBuffer)) throw new ProtocolError(`Tensor placeholder ${String(index).slice(0, 32)} points to no buffer.`);
  if (typeof dtype !== 'string' || !Object.hasOwn(DTYPES, dtype)) throw new ProtocolError(`Tensor dtype '${String(dtype)}' is not one of float32, int32, bool.`);
  if (!Array.isArray(shape) || shape.length > limits.maxRank || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw new ProtocolError(`Tensor shape ${JSON.stringify(shape)} is not a list of at most ${limits.maxRank} non-negative integers.`);
  }
  const elements = (shape as number[]).reduce((a, b) => a * b, 1);
  if (elements > limits.maxTensorElements) throw new ProtocolError(`Tensor of ${elements} elements is over the limit of ${limits.maxTensorElements}.`);
  const Type = DTYPES[dtype as WireDtype];
  if (buffer.byteLength !== elements * Type.BYTES_PER_ELEMENT) {
    throw new ProtocolError(`Tensor [${shape}] ${dtype} needs ${elements * Type.BYTES_PER_ELEMENT} bytes, the frame has ${buffer.byteLength}.`);
  }
  const t = tf.tensor(new Type(buffer), shape as number[], dtype as WireDtype);
  created.push(t);
  return t;
}

const MAGIC = 0x414b4b32; // "AKK2"
/** Most buffers in one frame (a message's tensors; a checkpoint's state is the largest, a few hundred). */
const MAX_BUFFERS = 100_000;

/** Buffer encodings in serialised frames. */
const RAW = 0;
/** Zero words elided: a bitmap of the non-zero 32-bit words, then those words. */
const SPARSE = 1;

/**
 * The sparse encoding of a buffer of 32-bit words (float32 or int32 data): a bitmap of the
 * non-zero words, then those words. It is used when at least a quarter of the words are zero
 * (below that it would not pay). ReLU activations, their gradients and images with a blank
 * background are largely zero, so this often shrinks a tensor on the wire severalfold, for one
 * pass over it. Returns a view of a scratch buffer reused by the next call, or undefined when
 * the buffer is too small, not whole words, or too dense. Bit patterns are kept exactly (−0 and
 * NaN payloads included).
 */
function sparseEncodeScratch(buffer: ArrayBuffer): Uint8Array | undefined {
  if (buffer.byteLength % 4 !== 0 || buffer.byteLength < 1024) return undefined;
  const words = new Int32Array(buffer);
  const n = words.length;
  const bitmapWords = Math.ceil(n / 32);
  const limit = Math.floor((buffer.byteLength * 0.75) / 4); // most words the encoding may take
  if (scratch.length < bitmapWords + n) scratch = new Int32Array(bitmapWords + n);
  const out = scratch;
  let k = bitmapWords;
  for (let group = 0; group < bitmapWords; group++) {
    const base = group * 32;
    const end = Math.min(base + 32, n);
    let mask = 0;
    for (let i = base; i < end; i++) {
      const w = words[i] as number;
      if (w !== 0) {
        out[k++] = w;
        mask |= 1 << (i - base);
      }
    }
    out[group] = mask;
    if (k > limit) return undefined;
  }
  return new Uint8Array(out.buffer, 0, k * 4);
}
let scratch = new Int32Array(0);
/** Where {@link sparseDecode} aligns encoded words that arrive at an odd offset. */
let decodeScratch = new Uint32Array(0);

/** The sparse encoding of `buffer` as a new array, or undefined when it would not pay (see {@link sparseEncodeScratch}). */
export function sparseEncode(buffer: ArrayBuffer): Uint8Array | undefined {
  return sparseEncodeScratch(buffer)?.slice();
}

/**
 * Decodes {@link sparseEncode}'s output of a `rawBytes`-byte buffer into `into`.
 * @throws ProtocolError when the encoded bytes do not fit `rawBytes`.
 */
export function sparseDecode(encoded: Uint8Array, rawBytes: number, into: ArrayBuffer): void {
  const n = rawBytes / 4;
  const bitmapBytes = Math.ceil(n / 32) * 4;
  if (!Number.isInteger(n) || encoded.byteLength < bitmapBytes || (encoded.byteLength - bitmapBytes) % 4 !== 0 || into.byteLength !== rawBytes) {
    throw new ProtocolError(`A sparse buffer of ${encoded.byteLength} bytes cannot hold ${rawBytes} bytes of data.`);
  }
  // Read the words in place when `encoded` is 4-byte aligned inside the received bytes; else
  // copy them into a scratch buffer kept for the next frame.
  let aligned: Uint32Array;
  if (encoded.byteOffset % 4 === 0) aligned = new Uint32Array(encoded.buffer, encoded.byteOffset, encoded.byteLength / 4);
  else {
    if (decodeScratch.byteLength < encoded.byteLength) decodeScratch = new Uint32Array(encoded.byteLength / 4);
    aligned = decodeScratch.subarray(0, encoded.byteLength / 4);
    new Uint8Array(aligned.buffer, 0, encoded.byteLength).set(encoded);
  }
  const bitmap = aligned.subarray(0, bitmapBytes / 4);
  const packed = aligned.subarray(bitmapBytes / 4);
  const words = new Uint32Array(into);
  let marked = 0;
  for (let g = 0; g < bitmap.length; g++) {
    let m = bitmap[g] as number;
    m -= (m >>> 1) & 0x55555555; // population count of the group's mask
    m = (m & 0x33333333) + ((m >>> 2) & 0x33333333);
    marked += Math.imul((m + (m >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24;
  }
  if (marked !== packed.length) throw new ProtocolError(`A sparse buffer has ${packed.length} words but its bitmap marks ${marked}.`);
  if ((bitmap[bitmap.length - 1] as number) >>> (n - 32 * (bitmap.length - 1)) !== 0 && n % 32 !== 0) throw new ProtocolError('A sparse buffer marks words past its end.');
  words.fill(0);
  let k = 0;
  for (let g = 0; g < bitmap.length; g++) {
    let m = bitmap[g] as number;
    const base = g * 32;
    while (m !== 0) {
      words[base + 31 - Math.clz32(m & -m)] = packed[k++] as number; // lowest set bit first
      m &= m - 1;
    }
  }
}

/**
 * Serialises a frame to bytes: magic, envelope length, envelope JSON (node, to, header, and per
 * buffer its encoded length, raw length and encoding), then the buffers, 8-byte aligned. Buffers
 * with many zero words travel sparse ({@link sparseEncode}).
 */
export function frameToBytes(frame: Frame): Uint8Array {
  // Each encoding but the last is copied out of the shared scratch before the next one is
  // encoded; the last is copied straight into the frame's bytes below.
  const last = frame.buffers.length - 1;
  const sparse = frame.buffers.map((b, i) => (i < last ? sparseEncodeScratch(b)?.slice() : sparseEncodeScratch(b)));
  const lengths = frame.buffers.map((b, i) => sparse[i]?.byteLength ?? b.byteLength);
  const envelope = new TextEncoder().encode(
    JSON.stringify({
      node: frame.node,
      to: frame.to,
      header: frame.header,
      lengths,
      raw: frame.buffers.map((b) => b.byteLength),
      encodings: sparse.map((n) => (n === undefined ? RAW : SPARSE)),
    }),
  );
  const align = (n: number) => Math.ceil(n / 8) * 8;
  let size = align(8 + envelope.byteLength);
  for (const n of lengths) size += align(n);
  const bytes = new Uint8Array(size);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, MAGIC);
  view.setUint32(4, envelope.byteLength);
  bytes.set(envelope, 8);
  let offset = align(8 + envelope.byteLength);
  frame.buffers.forEach((b, i) => {
    bytes.set(sparse[i] ?? new Uint8Array(b), offset);
    offset += align(lengths[i] as number);
  });
  return bytes;
}

/**
 * Parses bytes written by {@link frameToBytes}; buffers are decoded into fresh (pooled) buffers.
 * @throws ProtocolError for a wrong magic number, a truncated or inconsistent frame, or a frame
 *   over `maxFrameBytes`.
 */
export function bytesToFrame(bytes: Uint8Array, limits: Limits = LIMITS): Frame {
  if (bytes.byteLength > limits.maxFrameBytes) throw new ProtocolError(`Frame of ${bytes.byteLength} bytes is over the limit of ${limits.maxFrameBytes}.`);
  if (bytes.byteLength < 8) throw new ProtocolError(`Frame of ${bytes.byteLength} bytes is too short.`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (view.getUint32(0) !== MAGIC) throw new ProtocolError('Frame does not start with the akkordeon magic number; is the sender an akkordeon node of the same version?');
  const length = view.getUint32(4);
  if (8 + length > bytes.byteLength) throw new ProtocolError('Frame envelope is truncated.');
  let envelope: { node: string; to: string; header: string; lengths: number[]; raw: number[]; encodings: number[] };
  try {
    envelope = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + length)));
  } catch {
    throw new ProtocolError('Frame envelope is not valid JSON.');
  }
  const { lengths, raw, encodings } = envelope;
  if (typeof envelope.node !== 'string' || typeof envelope.to !== 'string' || typeof envelope.header !== 'string' || !Array.isArray(lengths) || !Array.isArray(raw) || !Array.isArray(encodings) || raw.length !== lengths.length || encodings.length !== lengths.length) {
    throw new ProtocolError('Frame envelope lacks node, to, header, or the lengths and encodings of its buffers.');
  }
  const align = (n: number) => Math.ceil(n / 8) * 8;
  // The limit holds for the frame as decoded: sparse buffers expand, so their raw sizes count.
  const decoded = raw.reduce((sum: number, r: unknown) => sum + (Number.isSafeInteger(r) && (r as number) >= 0 ? (r as number) : Infinity), 0);
  if (decoded > limits.maxFrameBytes) throw new ProtocolError(`Frame decodes to ${decoded} bytes, over the limit of ${limits.maxFrameBytes}.`);
  if (lengths.length > MAX_BUFFERS) throw new ProtocolError(`Frame has ${lengths.length} buffers, over the limit of ${MAX_BUFFERS}.`);
  let offset = align(8 + length);
  const buffers = lengths.map((n, i) => {
    const rawBytes = raw[i] as number;
    const encoding = encodings[i];
    if (!Number.isInteger(n) || n < 0 || offset + n > bytes.byteLength) throw new ProtocolError('Frame buffers are truncated.');
    if (!Number.isInteger(rawBytes) || rawBytes < 0 || rawBytes > limits.maxFrameBytes || (encoding === RAW ? rawBytes !== n : encoding !== SPARSE || rawBytes > 32 * n)) {
      throw new ProtocolError(`Frame buffer ${i} has an inconsistent size (${n} bytes encoded, ${rawBytes} raw, encoding ${String(encoding)}).`);
    }
    const copy = framePool.take(rawBytes);
    if (encoding === RAW) new Uint8Array(copy).set(bytes.subarray(offset, offset + n));
    else sparseDecode(bytes.subarray(offset, offset + n), rawBytes, copy);
    offset += align(n);
    return copy;
  });
  return { node: envelope.node, to: envelope.to, header: envelope.header, buffers };
}

/**
 * The codec an actor system uses for frames ({@link MessageCodec}): encoding frees the
 * message's tensors, arriving frames give back the pooled buffers they return, decoded frames
 * hand their buffers back for reuse where the tensors made from them own copies.
 */
export function wireCodec(limits: Limits = LIMITS): MessageCodec<Frame> {
  return {
    encode(message, target) {
      const { frame, tensors } = encodeMessage(message, target);
      tensors.forEach((t) => t.dispose()); // the receiver gets its own copies; ownership moved
      return frame;
    },
    decode: (frame, ref) => decodeMessage(frame, ref, limits),
    arrived(frame) {
      if (!frame.returns) return;
      frame.returns.forEach((b) => framePool.give(b));
      delete frame.returns; // they were ours; a forwarded frame must not carry them on
    },
    decoded(frame, from) {
      if (!tensorsCopyBuffers() || frame.buffers.length === 0) return;
      if (from?.recycle) from.recycle(frame.buffers);
      else frame.buffers.forEach((b) => framePool.give(b));
    },
  };
}

/** Gives `system` the wire codec unless it has a codec already; every transport calls it. */
export function useWireCodec(system: ActorSystem, limits?: Limits): void {
  system.codec ??= wireCodec(limits);
}
