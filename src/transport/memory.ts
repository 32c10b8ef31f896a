/**
 * In-process transport: connects two actor systems of one thread through the full byte codec,
 * delivering frames asynchronously in order. For tests, and for running the remote code path
 * without threads.
 */
import type { ActorSystem } from '../actor/index.js';
import { TransportError } from '../errors.js';
import { bytesToFrame, type Frame, frameToBytes, useWireCodec } from '../wire/index.js';
import type { Link } from './link.js';

class MemoryLink implements Link {
  private closed = false;
  peer?: MemoryLink;

  constructor(
    readonly description: string,
    private readonly deliver: (frame: Frame) => void,
    private readonly onClose: () => void,
  ) {}

  send(frame: Frame): void {
    if (this.closed) throw new TransportError(`${this.description} is closed.`);
    const bytes = frameToBytes(frame);
    setImmediate(() => {
      if (!this.closed) this.deliver(bytesToFrame(bytes));
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.onClose();
    await this.peer?.close();
  }
}

/** Connects two systems both ways; closing either link closes both and emits `nodeDown` on each side. */
export function connectInMemory(a: ActorSystem, b: ActorSystem): { ab: Link; ba: Link } {
  const ab = new MemoryLink(`memory ${a.node}→${b.node}`, (frame) => b.receiveFrame(frame), () => a.removeRoute(b.node));
  const ba = new MemoryLink(`memory ${b.node}→${a.node}`, (frame) => a.receiveFrame(frame), () => b.removeRoute(a.node));
  ab.peer = ba;
  ba.peer = ab;
  useWireCodec(a);
  useWireCodec(b);
  a.addRoute(b.node, ab);
  b.addRoute(a.node, ba);
  return { ab, ba };
}
