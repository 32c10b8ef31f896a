/**
 * A FIFO mailbox that hands its messages to one consumer, one at a time. When the consumer
 * returns a promise, the next message waits until it settles. Draining yields to the event loop
 * (via `setImmediate`) after `burst` messages so that timers and I/O are never starved.
 */
export class Mailbox<M> {
  private readonly queue: M[] = [];
  private head = 0;
  private running = false;
  private closed = false;

  constructor(
    private readonly consume: (message: M) => void | Promise<void>,
    private readonly burst = 64,
  ) {}

  /** Number of messages waiting (not counting the one being processed). */
  get size(): number {
    return this.queue.length - this.head;
  }

  /** Appends a message; returns false (and drops it) when the mailbox is closed. */
  enqueue(message: M): boolean {
    if (this.closed) return false;
    this.queue.push(message);
    if (!this.running) {
      this.running = true;
      setImmediate(() => void this.drain());
    }
    return true;
  }

  /** Stops delivery and returns the messages that were never processed. */
  close(): M[] {
    this.closed = true;
    const rest = this.queue.slice(this.head);
    this.queue.length = 0;
    this.head = 0;
    return rest;
  }

  private async drain(): Promise<void> {
    let handled = 0;
    while (!this.closed && this.head < this.queue.length) {
      const message = this.queue[this.head++] as M;
      if (this.head > 1024 && this.head * 2 > this.queue.length) {
        this.queue.splice(0, this.head);
        this.head = 0;
      }
      const result = this.consume(message);
      if (result !== undefined) await result;
      if (++handled >= this.burst) {
        setImmediate(() => void this.drain());
        return;
      }
    }
    this.running = false;
  }
}
