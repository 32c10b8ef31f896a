/**
 * The wire codec: a message becomes a {@link Frame}, a JSON header plus one binary buffer per
 * tensor (dtype, shape, bytes), and back. Actor refs travel as addresses (`{ id, name, node }`).
 * Frames go to worker threads as they are, with the buffers transferred rather than copied.
 * Child processes and NATS get them as bytes ({@link frameToBytes}).
 */
import * as tf from '@tensorflow/tfjs';
import type { ActorRef, Message } from '../actor/types.js';
import { InvalidArgumentError, ProtocolError } from '../errors.js';

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
}

/** Limits that a decoded frame must respect. */
export interface CodecLimits {
  /** Largest tensor accepted, in elements. Default 2^28 (1 GiB of float32). */
  maxTensorElements: number;
  /** Largest rank accepted. Default 8. */
  maxRank: number;
  /** Largest frame accepted, in bytes (header plus buffers). Default 1.5 GiB. */
  maxFrameBytes: number;
}

/** The limits used when none are given. */
export const DEFAULT_LIMITS: CodecLimits = { maxTensorElements: 2 ** 28, maxRank: 8, maxFrameBytes: 1.5 * 2 ** 30 };

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
      if (!(value.dtype in DTYPES)) throw new InvalidArgumentError(`${path}: tensors of dtype ${value.dtype} cannot cross nodes; use float32, int32 or bool.`);
      const data = value.dataSync() as Float32Array | Int32Array | Uint8Array;
      buffers.push(ownBuffer(data));
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

function isRef(value: unknown): value is ActorRef {
  return typeof value === 'object' && value !== null && typeof (value as ActorRef).tell === 'function' && typeof (value as ActorRef).id === 'string';
}

/**
 * Decodes a frame; `ref` turns an address into a ref of the receiving system. The caller owns
 * the tensors created.
 * @throws ProtocolError for malformed JSON, a placeholder that points nowhere, a dtype or shape
 *   that does not match its buffer, or a tensor over the limits.
 */
export function decodeMessage(frame: Frame, ref: (id: string, name: string, node: string) => ActorRef, limits: CodecLimits = DEFAULT_LIMITS): Message {
  let parsed: unknown;
  try {
    parsed = JSON.parse(frame.header);
  } catch (error) {
    throw new ProtocolError(`Frame header is not valid JSON: ${(error as Error).message}`);
  }
  const created: tf.Tensor[] = [];
  const walk = (value: unknown): unknown => {
    if (Array.isArray(value)) return value.map(walk);
    if (value === null || typeof value !== 'object') return value;
    const v = value as Record<string, unknown>;
    if ('$tensor' in v) return tensorFrom(v, frame.buffers, limits, created);
    if ('$ref' in v) {
      if (typeof v.$ref !== 'string' || typeof v.node !== 'string') throw new ProtocolError('A ref in the frame has no id or node.');
      return ref(v.$ref, typeof v.name === 'string' ? v.name : v.$ref, v.node);
    }
    const out: Record<string, unknown> = {};
    for (const [key, inner] of Object.entries(v)) out[key] = walk(inner);
    return out;
  };
  try {
    const message = walk(parsed) as Message;
    if (typeof message !== 'object' || message === null || typeof message.type !== 'string') throw new ProtocolError('Frame holds no message with a string `type`.');
    return message;
  } catch (error) {
    created.forEach((t) => t.dispose());
    throw error;
  }
}

function tensorFrom(v: Record<string, unknown>, buffers: ArrayBuffer[], limits: CodecLimits, created: tf.Tensor[]): tf.Tensor {
  const { $tensor: index, dtype, shape } = v;
  const buffer = typeof index === 'number' ? buffers[index] : undefined;
  if (!buffer) throw new ProtocolError(`Tensor placeholder ${String(index)} points to no buffer.`);
  if (typeof dtype !== 'string' || !(dtype in DTYPES)) throw new ProtocolError(`Tensor dtype '${String(dtype)}' is not one of float32, int32, bool.`);
  if (!Array.isArray(shape) || shape.length > limits.maxRank || !shape.every((d) => Number.isInteger(d) && d >= 0)) {
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

const MAGIC = 0x414b4b31; // "AKK1"

/**
 * Serialises a frame to bytes: magic, envelope length, envelope JSON (node, to, header, buffer
 * lengths), then the buffers, 8-byte aligned.
 */
export function frameToBytes(frame: Frame): Uint8Array {
  const envelope = new TextEncoder().encode(JSON.stringify({ node: frame.node, to: frame.to, header: frame.header, lengths: frame.buffers.map((b) => b.byteLength) }));
  const align = (n: number) => Math.ceil(n / 8) * 8;
  let size = align(8 + envelope.byteLength);
  for (const b of frame.buffers) size += align(b.byteLength);
  const bytes = new Uint8Array(size);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, MAGIC);
  view.setUint32(4, envelope.byteLength);
  bytes.set(envelope, 8);
  let offset = align(8 + envelope.byteLength);
  for (const b of frame.buffers) {
    bytes.set(new Uint8Array(b), offset);
    offset += align(b.byteLength);
  }
  return bytes;
}

/**
 * Parses bytes written by {@link frameToBytes}; buffers are copied into fresh `ArrayBuffer`s.
 * @throws ProtocolError for a wrong magic number, a truncated frame or a frame over `maxFrameBytes`.
 */
export function bytesToFrame(bytes: Uint8Array, limits: CodecLimits = DEFAULT_LIMITS): Frame {
  if (bytes.byteLength > limits.maxFrameBytes) throw new ProtocolError(`Frame of ${bytes.byteLength} bytes is over the limit of ${limits.maxFrameBytes}.`);
  if (bytes.byteLength < 8) throw new ProtocolError(`Frame of ${bytes.byteLength} bytes is too short.`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (view.getUint32(0) !== MAGIC) throw new ProtocolError('Frame does not start with the akkordeon magic number; is the sender an akkordeon node of the same version?');
  const length = view.getUint32(4);
  if (8 + length > bytes.byteLength) throw new ProtocolError('Frame envelope is truncated.');
  let envelope: { node: string; to: string; header: string; lengths: number[] };
  try {
    envelope = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + length)));
  } catch {
    throw new ProtocolError('Frame envelope is not valid JSON.');
  }
  if (typeof envelope.node !== 'string' || typeof envelope.to !== 'string' || typeof envelope.header !== 'string' || !Array.isArray(envelope.lengths)) {
    throw new ProtocolError('Frame envelope lacks node, to, header or lengths.');
  }
  const align = (n: number) => Math.ceil(n / 8) * 8;
  let offset = align(8 + length);
  const buffers = envelope.lengths.map((n) => {
    if (!Number.isInteger(n) || n < 0 || offset + n > bytes.byteLength) throw new ProtocolError('Frame buffers are truncated.');
    // Uint8Array's slice copies; a Node Buffer's `slice` would return a view of its shared pool.
    const copy = Uint8Array.prototype.slice.call(bytes, offset, offset + n).buffer;
    offset += align(n);
    return copy;
  });
  return { node: envelope.node, to: envelope.to, header: envelope.header, buffers };
}

/** Every tensor inside a message (nested objects and arrays included). */
export function tensorsIn(value: unknown, found: tf.Tensor[] = []): tf.Tensor[] {
  if (value instanceof tf.Tensor) found.push(value);
  else if (Array.isArray(value)) value.forEach((v) => tensorsIn(v, found));
  else if (value !== null && typeof value === 'object' && !isRef(value)) Object.values(value).forEach((v) => tensorsIn(v, found));
  return found;
}
