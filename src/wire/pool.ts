/**
 * Frame buffer pooling: encoding takes its buffers from this thread's pool, decoding on a backend
 * that copies tensor data gives them back (or hands them to the peer thread for reuse).
 */
/**
 * Free frame buffers of this thread, by exact size. Encoding takes a buffer from here instead of
 * allocating one; buffers come back when a frame is decoded on a backend that copies tensor data
 * on creation (wasm), directly or from the peer thread ({@link Frame.returns}). Without it, every
 * tensor crossing a thread allocates a fresh `ArrayBuffer`, and their churn drives V8 into
 * frequent full garbage collections.
 */
export class BufferPool {
  private readonly free = new Map<number, ArrayBuffer[]>();
  private held = 0;

  /**
   * @param maxBytes most bytes kept (default 64 MiB); more are left to the garbage collector.
   * @param maxPerSize most buffers kept of one size (default 16).
   * @param minBytes smallest buffer worth keeping (default 4 KiB).
   */
  constructor(
    readonly maxBytes = 64 * 2 ** 20,
    readonly maxPerSize = 16,
    readonly minBytes = 4096,
  ) {}

  /** Bytes currently kept. */
  get bytes(): number {
    return this.held;
  }

  /** A buffer of exactly `byteLength` bytes (contents undefined): a kept one, else a new one. */
  take(byteLength: number): ArrayBuffer {
    const buffer = this.free.get(byteLength)?.pop();
    if (!buffer) return new ArrayBuffer(byteLength);
    this.held -= byteLength;
    return buffer;
  }

  /** Keeps `buffer` for reuse when it is worth keeping and there is room; detached buffers are ignored. */
  give(buffer: ArrayBuffer): void {
    const n = buffer.byteLength;
    if (n < this.minBytes || this.held + n > this.maxBytes || !(buffer instanceof ArrayBuffer)) return;
    let list = this.free.get(n);
    if (!list) this.free.set(n, (list = []));
    if (list.length >= this.maxPerSize) return;
    list.push(buffer);
    this.held += n;
  }
}

/** This thread's frame buffers (each worker thread has its own module instance). */
export const framePool = new BufferPool();
