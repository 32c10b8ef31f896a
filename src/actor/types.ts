/**
 * The actor protocol types: refs, logic, context, supervision. Messages are plain objects with a
 * namespaced `type` (`'gate.forward'`); a ref is an immutable address that serialises to its id.
 */
import type { ActorSystem } from './system.js';

/** Every message carries a namespaced discriminant such as `'gate.forward'`. */
export interface Message {
  readonly type: string;
}

/**
 * An immutable, serialisable address of an actor that accepts messages of type `M`.
 * `tell` is fire-and-forget; to get an answer, put a `replyTo` ref in the message (see `ask`).
 */
export interface ActorRef<M extends Message = Message> {
  /** Unique id (a nanoid), also the actor's address in its system. */
  readonly id: string;
  /** Human-readable name given at spawn, e.g. `'gate-0'`. */
  readonly name: string;
  /** Id of the actor system (node) that hosts the actor: a thread, a process, or a process elsewhere. */
  readonly node: string;
  /** Sends a message without waiting; a stopped target drops it and reports a dead letter. */
  tell(message: M): void;
}

/** What a handler may do besides replying: spawn children, stop itself, read its own ref. */
export interface ActorContext<M extends Message = Message> {
  readonly self: ActorRef<M>;
  readonly system: ActorSystem;
  readonly parent: ActorRef | undefined;
  /** Stops this actor after the current message; its `postStop` runs. */
  stop(): void;
}

/**
 * Actor logic: a `receive` function plus optional lifecycle hooks. A handler may return a
 * promise; the mailbox then waits for it before the next message. A handler that throws (or
 * rejects) never kills the mailbox: the failure is reported to the supervisor.
 */
export interface Actor<M extends Message = Message> {
  receive(message: M, context: ActorContext<M>): void | Promise<void>;
  preStart?(context: ActorContext<M>): void | Promise<void>;
  postStop?(context: ActorContext<M>): void;
}

/**
 * What happens to an actor whose handler failed:
 * - `resume`: drop the failed message, keep the state, go on with the next message (default);
 * - `restart`: discard the instance, create a fresh one from the factory, go on;
 * - `stop`: stop the actor; later messages become dead letters.
 */
export const SupervisionPolicy = { resume: 'resume', restart: 'restart', stop: 'stop' } as const;
/** One of `resume`, `restart`, `stop` (see the constant of the same name). */
export type SupervisionPolicy = (typeof SupervisionPolicy)[keyof typeof SupervisionPolicy];

/** Sent to an actor's parent when one of its handlers failed; `policy` says what was done. */
export interface ActorFailed extends Message {
  readonly type: 'actor.failed';
  readonly actor: ActorRef;
  readonly error: unknown;
  readonly messageType: string;
  readonly policy: SupervisionPolicy;
}

/** Options of {@link ActorSystem.spawn}. */
export interface SpawnOptions {
  /** Human-readable name; the id stays unique whatever the name. */
  name?: string;
  /** The supervisor that receives `actor.failed` messages; none for a top-level actor. */
  parent?: ActorRef;
  /** What to do when a handler fails; default `resume`. */
  supervision?: SupervisionPolicy;
  /** A fixed id (a well-known address such as `'host'`); default a new nanoid. */
  id?: string;
}

/** What travels between nodes, as far as the actor system needs to know: its address. */
export interface Envelope {
  /** Node id of the receiving actor system. */
  readonly node: string;
  /** Id of the receiving actor. */
  readonly to: string;
}

/**
 * A link carries envelopes (frames) to one peer actor system (a worker thread, a child process)
 * or to a bus that reaches many (NATS). Transports implement it; the actor system routes through it.
 */
export interface Link<F extends Envelope = Envelope> {
  /** Human-readable description for logs and errors, e.g. `worker 3` or `nats://127.0.0.1:4222`. */
  readonly description: string;
  /**
   * Sends a frame. May transfer (detach) the frame's buffers.
   * @throws TransportError when the link is closed.
   */
  send(frame: F): void;
  /**
   * Takes back the buffers of a frame that arrived over this link, once decoded, to reuse them:
   * a link between threads hands them back to the sender with its next frame. Optional.
   */
  recycle?(buffers: ArrayBuffer[]): void;
  /** Closes the link; idempotent. */
  close(): Promise<void>;
}

/**
 * Turns messages into frames and back. The wire layer implements it and the transports install
 * it (`ActorSystem.codec`); the actor system itself knows no encoding.
 */
export interface MessageCodec<F extends Envelope = Envelope> {
  /** Encodes a message for `target`; the message's tensors are freed (the receiver gets copies). */
  encode(message: Message, target: ActorRef): F;
  /**
   * Decodes a frame for this node; `ref` makes refs of the receiving system.
   * @throws ProtocolError for a malformed frame or one over the limits.
   */
  decode(frame: F, ref: (id: string, name: string, node: string) => ActorRef): Message;
  /** Called first for every frame that arrives (e.g. to take back buffers it returns). */
  arrived?(frame: F): void;
  /** Called once a frame that arrived over `from` has been decoded (e.g. to reuse its buffers). */
  decoded?(frame: F, from?: Link<F>): void;
}
