/**
 * A link carries frames to one peer actor system (a worker thread, a child process) or to a
 * bus that reaches many (NATS). Transports implement it; the actor system routes through it.
 */
import type { Frame } from './codec.js';

/** One direction of a connection: frames out. Frames in are handed to `ActorSystem.receiveFrame`. */
export interface Link {
  /** Human-readable description for logs and errors, e.g. `worker 3` or `nats://127.0.0.1:4222`. */
  readonly description: string;
  /**
   * Sends a frame. May transfer (detach) the frame's buffers.
   * @throws TransportError when the link is closed.
   */
  send(frame: Frame): void;
  /**
   * Takes back the buffers of a frame that arrived over this link, once decoded, to reuse them:
   * a link between threads hands them back to the sender with its next frame. Optional.
   */
  recycle?(buffers: ArrayBuffer[]): void;
  /** Closes the link; idempotent. */
  close(): Promise<void>;
}
