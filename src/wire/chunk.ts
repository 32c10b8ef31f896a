/**
 * Chunking of large payloads for message buses with a size limit per message (NATS's
 * `max_payload`, 1 MiB by default). A payload that fits travels as it is; a larger one is split
 * into chunks, each with a 36-byte header (magic, message id, index, count, total bytes), and
 * reassembled by the receiver with bounded memory: incomplete messages are dropped after a
 * timeout or when the bytes held for them would exceed a budget.
 */
import { randomBytes } from 'node:crypto';
import { InvalidArgumentError, ProtocolError } from '../errors.js';

/** The first four bytes of every chunk: "AKC1". */
export const CHUNK_MAGIC = 0x414b4331;
/** Bytes of a chunk header: magic (4), message id (16), index (4), count (4), total bytes (8). */
export const CHUNK_HEADER_BYTES = 36;

/** True when `bytes` starts with the chunk magic number (else it is a whole payload). */
export function isChunk(bytes: Uint8Array): boolean {
  return bytes.byteLength >= 4 && new DataView(bytes.buffer, bytes.byteOffset, 4).getUint32(0) === CHUNK_MAGIC;
}

/** Splits payloads into chunks; one per sender, so that message ids stay unique. */
export class Chunker {
  private readonly stream = randomBytes(12);
  private counter = 0;

  /**
   * Returns `payload` itself when it is at most `maxPayload` bytes, else chunks of at most
   * `maxPayload` bytes each (header included), in order.
   * @throws InvalidArgumentError when `maxPayload` leaves no room for data after the header.
   */
  split(payload: Uint8Array, maxPayload: number): Uint8Array[] {
    if (payload.byteLength <= maxPayload) return [payload];
    const room = maxPayload - CHUNK_HEADER_BYTES;
    if (!(room >= 1)) throw new InvalidArgumentError(`A maximum payload of ${maxPayload} bytes leaves no room for chunk data; it must exceed ${CHUNK_HEADER_BYTES} bytes.`);
    const count = Math.ceil(payload.byteLength / room);
    this.counter = (this.counter + 1) >>> 0;
    const chunks: Uint8Array[] = [];
    for (let index = 0; index < count; index++) {
      const data = payload.subarray(index * room, Math.min((index + 1) * room, payload.byteLength));
      const chunk = new Uint8Array(CHUNK_HEADER_BYTES + data.byteLength);
      const view = new DataView(chunk.buffer);
      view.setUint32(0, CHUNK_MAGIC);
      chunk.set(this.stream, 4);
      view.setUint32(16, this.counter);
      view.setUint32(20, index);
      view.setUint32(24, count);
      view.setFloat64(28, payload.byteLength);
      chunk.set(data, CHUNK_HEADER_BYTES);
      chunks.push(chunk);
    }
    return chunks;
  }
}

/** Options of a {@link Reassembler}. */
export interface ReassemblerOptions {
  /** Largest message accepted, in bytes (the codec's `maxFrameBytes`). */
  maxMessageBytes: number;
  /** Most bytes held for incomplete messages at once; the oldest are dropped to make room. Default 512 MiB. */
  maxPendingBytes?: number;
  /** Most incomplete messages held at once; the oldest is dropped to make room. Default 256. */
  maxPendingMessages?: number;
  /** An incomplete message older than this (ms since its last chunk) is dropped. Default 30000. */
  timeoutMs?: number;
  /** Clock in ms; injectable for tests. Default `Date.now`. */
  now?: () => number;
}

interface PendingMessage {
  parts: Uint8Array[];
  received: number;
  /** What it counts against the budget: its bytes, each empty chunk as one. */
  cost: number;
  next: number;
  count: number;
  total: number;
  lastAt: number;
}

/**
 * Reassembles chunked messages. Chunks of one message must arrive in order (as NATS delivers
 * the messages of one publisher); chunks of different messages may interleave.
 */
export class Reassembler {
  private readonly partial = new Map<string, PendingMessage>();
  /** Ids of messages given up on; their remaining chunks are ignored without a report. */
  private readonly dropped = new Set<string>();
  private held = 0;
  private readonly maxPendingBytes: number;
  private readonly maxPendingMessages: number;
  private readonly timeoutMs: number;
  private readonly now: () => number;

  constructor(private readonly options: ReassemblerOptions) {
    this.maxPendingBytes = options.maxPendingBytes ?? 512 * 2 ** 20;
    this.maxPendingMessages = options.maxPendingMessages ?? 256;
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.now = options.now ?? Date.now;
  }

  /** Bytes held for incomplete messages. */
  get pendingBytes(): number {
    return this.held;
  }

  /** Number of incomplete messages. */
  get pendingMessages(): number {
    return this.partial.size;
  }

  /**
   * Takes one chunk; returns the whole message when this chunk completes it.
   * @throws ProtocolError for a malformed chunk, one out of order, or a total over the limits
   *   (the message is dropped; its later chunks are ignored).
   */
  push(chunk: Uint8Array): Uint8Array | undefined {
    if (chunk.byteLength < CHUNK_HEADER_BYTES || !isChunk(chunk)) throw new ProtocolError(`A chunk of ${chunk.byteLength} bytes has no valid chunk header.`);
    const view = new DataView(chunk.buffer, chunk.byteOffset, CHUNK_HEADER_BYTES);
    const id = Buffer.from(chunk.buffer, chunk.byteOffset + 4, 16).toString('hex');
    const index = view.getUint32(20);
    const count = view.getUint32(24);
    const total = view.getFloat64(28);
    const data = chunk.subarray(CHUNK_HEADER_BYTES);
    if (this.dropped.has(id)) return undefined;
    const fail = (reason: string): never => {
      this.drop(id);
      throw new ProtocolError(`Chunked message ${id.slice(0, 8)}… rejected: ${reason}`);
    };
    let entry = this.partial.get(id);
    if (!entry) {
      if (index !== 0) fail(`chunk ${index} arrived without chunk 0 (it was lost or dropped).`);
      if (!Number.isSafeInteger(total) || total < 1 || count < 2 || count > total) fail(`header claims ${count} chunks for ${total} bytes.`);
      if (total > this.options.maxMessageBytes) fail(`${total} bytes is over the limit of ${this.options.maxMessageBytes}.`);
      if (total > this.maxPendingBytes) fail(`${total} bytes is over the reassembly budget of ${this.maxPendingBytes} bytes.`);
      if (this.partial.size >= this.maxPendingMessages) this.drop(this.partial.keys().next().value as string); // the oldest
      entry = { parts: [], received: 0, cost: 0, next: 0, count, total, lastAt: this.now() };
      this.partial.set(id, entry);
    }
    if (index !== entry.next || count !== entry.count || total !== entry.total) fail(`chunk ${index}/${count} of ${total} bytes does not follow chunk ${entry.next - 1}/${entry.count} of ${entry.total} bytes.`);
    if (entry.received + data.byteLength > entry.total) fail(`chunks carry more than the ${entry.total} bytes announced.`);
    const cost = Math.max(1, data.byteLength); // an empty chunk is not free: it holds an entry open
    this.makeRoom(cost, id);
    if (this.held + cost > this.maxPendingBytes) fail(`its chunks would hold more than the reassembly budget of ${this.maxPendingBytes} bytes.`);
    entry.parts.push(Uint8Array.prototype.slice.call(data)); // a copy, also for a Buffer
    entry.received += data.byteLength;
    entry.cost += cost;
    entry.next++;
    entry.lastAt = this.now();
    this.held += cost;
    if (entry.next < entry.count) return undefined;
    this.partial.delete(id);
    this.held -= entry.cost;
    if (entry.received !== entry.total) fail(`its ${entry.count} chunks carry ${entry.received} bytes, not the ${entry.total} announced.`);
    const whole = new Uint8Array(entry.total);
    let offset = 0;
    for (const part of entry.parts) {
      whole.set(part, offset);
      offset += part.byteLength;
    }
    return whole;
  }

  /** Drops incomplete messages whose last chunk is older than the timeout; returns how many. */
  sweep(): number {
    const cutoff = this.now() - this.timeoutMs;
    let n = 0;
    for (const [id, entry] of this.partial) {
      if (entry.lastAt <= cutoff) {
        this.drop(id);
        n++;
      }
    }
    return n;
  }

  /** Drops every incomplete message. */
  clear(): void {
    this.partial.clear();
    this.held = 0;
  }

  private makeRoom(bytes: number, keep: string): void {
    for (const [id] of this.partial) {
      if (this.held + bytes <= this.maxPendingBytes) return;
      if (id !== keep) this.drop(id);
    }
  }

  private drop(id: string): void {
    const entry = this.partial.get(id);
    if (entry) {
      this.held -= entry.cost;
      this.partial.delete(id);
    }
    this.dropped.add(id);
    if (this.dropped.size > 1024) this.dropped.delete(this.dropped.values().next().value as string);
  }
}
