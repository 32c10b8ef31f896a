/**
 * The actor system: a registry of local actors plus one delivery path (`relay`). Every message,
 * `tell` or `ask`, local or remote, goes through `relay`: a message for an actor of this node is
 * queued in its mailbox; one for another node is encoded into a frame by the injected codec
 * (`codec`, installed by the transports) and sent over the link routed to that node. Frames from
 * other nodes enter through `receiveFrame`, are decoded, validated, and delivered like local
 * messages. The system knows no wire format: links and codec are interfaces (`types.ts`).
 */
import { EventEmitter } from 'eventemitter3';
import { nanoid } from 'nanoid';
import { ActorStoppedError, AskTimeoutError, InvalidArgumentError, OverloadError, ProtocolError } from '../errors.js';
import { Mailbox } from './mailbox.js';
import { tensorsIn } from './tensors.js';
import { type HandlerTracer, traceNow, tracerFromEnv } from './trace.js';
import type {
  Actor,
  ActorContext,
  ActorFailed,
  ActorRef,
  Envelope,
  Link,
  Message,
  MessageCodec,
  SpawnOptions,
  SupervisionPolicy,
} from './types.js';

/** Events of an {@link ActorSystem}. */
export interface ActorSystemEvents {
  /** A handler of a top-level actor (one without a parent) failed. */
  failure: (failure: ActorFailed) => void;
  /** A message was sent to an actor that does not exist, has stopped, or has no route; its tensors are freed right after. */
  deadLetter: (target: ActorRef, message: Message) => void;
  /** A frame from another node was rejected (malformed, over a limit, or invalid). */
  protocolError: (error: ProtocolError, frame: Envelope, message?: Message) => void;
  /** The route to a node was removed (its link closed: a worker exited, a process died). */
  nodeDown: (node: string) => void;
}

/** Options of an {@link ActorSystem}. */
export interface ActorSystemOptions {
  /** Name for logs. Default `'akkordeon'`. */
  name?: string;
  /** This system's node id, unique among connected systems. Default a new nanoid. */
  node?: string;
  /**
   * Encodes messages for other nodes and decodes frames from them. Default: none until a
   * transport installs one (every transport installs the wire codec, with its default limits).
   */
  codec?: MessageCodec;
  /**
   * Checks a message decoded from another node before delivery; throws ProtocolError to reject
   * it. Default: accept.
   */
  validate?: (message: Message) => void;
  /**
   * Most messages an actor's mailbox may hold when one more arrives from another node; beyond it
   * the message is dropped unread and reported as a `protocolError` (OverloadError), whose
   * batch then fails at its sentinel (see `answerInvalid`). Local messages are never dropped.
   * Default 10000.
   */
  maxRemoteQueue?: number;
  /**
   * Checks that the sender may send a message decoded from another node (after `validate`);
   * throws ProtocolError (e.g. UnauthorizedError) to reject it. `sender` is the node the
   * transport vouches for (a NATS subject's sender), undefined where it vouches for none.
   * Default: accept.
   */
  authorize?: (message: Message, sender: string | undefined) => void;
  /**
   * Receives every handled message with its handler's start and end (see `trace.ts`); `false`
   * turns tracing off. Default: this thread's file tracer when `AKKORDEON_TRACE` names a
   * directory, else none.
   */
  trace?: HandlerTracer | false;
}

class Ref<M extends Message> implements ActorRef<M> {
  constructor(
    readonly id: string,
    readonly name: string,
    readonly node: string,
    private readonly system: ActorSystem,
  ) {}

  tell(message: M): void {
    this.system.relay(this, message);
  }

  toJSON(): { id: string; name: string; node: string } {
    return { id: this.id, name: this.name, node: this.node };
  }

  toString(): string {
    return `ActorRef(${this.name}#${this.id})`;
  }
}

class Cell<M extends Message> {
  readonly mailbox: Mailbox<M>;
  readonly context: ActorContext<M>;
  private stopping = false;
  stopped = false;

  constructor(
    readonly system: ActorSystem,
    readonly ref: ActorRef<M>,
    private actor: Actor<M>,
    private readonly factory: () => Actor<M>,
    readonly options: SpawnOptions,
  ) {
    this.mailbox = new Mailbox<M>((message) => this.handle(message));
    this.context = {
      self: ref,
      system,
      parent: options.parent,
      stop: () => {
        this.stopping = true;
      },
    };
  }

  async start(): Promise<void> {
    try {
      await this.actor.preStart?.(this.context);
    } catch (error) {
      this.fail(error, 'actor.preStart');
    }
  }

  private handle(message: M): void | Promise<void> {
    const trace = this.system.trace;
    if (!trace) return this.deliver(message);
    const start = traceNow();
    const result = this.deliver(message);
    const record = () => trace(this.ref.name, message.type, start, traceNow());
    if (result === undefined) record();
    else void result.then(record);
    return result;
  }

  private deliver(message: M): void | Promise<void> {
    try {
      const result = this.actor.receive(message, this.context);
      if (result instanceof Promise) {
        return result.then(
          () => this.afterMessage(),
          (error: unknown) => {
            this.fail(error, message.type);
            this.afterMessage();
          },
        );
      }
    } catch (error) {
      this.fail(error, message.type);
    }
    this.afterMessage();
  }

  private afterMessage(): void {
    if (this.stopping && !this.stopped) this.system.stop(this.ref);
  }

  private fail(error: unknown, messageType: string): void {
    const policy: SupervisionPolicy = this.options.supervision ?? 'resume';
    if (policy === 'restart') {
      this.safePostStop();
      this.actor = this.factory();
      void this.start();
    } else if (policy === 'stop') {
      this.stopping = true;
    }
    const failure: ActorFailed = { type: 'actor.failed', actor: this.ref, error, messageType, policy };
    if (this.options.parent) this.system.relay(this.options.parent, failure);
    else this.system.events.emit('failure', failure);
  }

  safePostStop(): void {
    try {
      this.actor.postStop?.(this.context);
    } catch (error) {
      this.system.events.emit('failure', {
        type: 'actor.failed',
        actor: this.ref,
        error,
        messageType: 'actor.postStop',
        policy: 'stop',
      });
    }
  }
}

/**
 * Hosts actors and delivers their messages. One system per thread or process; refs to actors in
 * other systems are routed by a transport (see `relay`).
 */
export class ActorSystem {
  /** Failures of top-level actors, dead letters, rejected frames, lost nodes; subscribe for logging. */
  readonly events = new EventEmitter<ActorSystemEvents>();
  readonly name: string;
  /** This system's node id. */
  readonly node: string;
  private readonly cells = new Map<string, Cell<Message>>();
  private readonly routes = new Map<string, Link>();
  private defaultRoute?: Link;
  /** Encodes and decodes the frames of remote messages; set by `ActorSystemOptions.codec` or a transport. */
  codec?: MessageCodec;
  private readonly validate?: (message: Message) => void;
  private readonly maxRemoteQueue: number;
  private readonly authorize?: (message: Message, sender: string | undefined) => void;
  /** Receives every handled message, when tracing is on (`ActorSystemOptions.trace`). */
  readonly trace?: HandlerTracer;

  constructor(options: ActorSystemOptions | string = {}) {
    const o = typeof options === 'string' ? { name: options } : options;
    this.name = o.name ?? 'akkordeon';
    this.node = o.node ?? nanoid();
    this.codec = o.codec;
    this.validate = o.validate;
    this.maxRemoteQueue = o.maxRemoteQueue ?? 10_000;
    this.authorize = o.authorize;
    this.trace = o.trace === false ? undefined : (o.trace ?? tracerFromEnv());
  }

  /**
   * Creates an actor from a factory (called again on `restart`) and returns its ref. Messages
   * sent before `preStart` resolves are queued and delivered after it.
   */
  spawn<M extends Message>(factory: () => Actor<M>, options: SpawnOptions = {}): ActorRef<M> {
    const id = options.id ?? nanoid();
    if (this.cells.has(id)) throw new InvalidArgumentError(`An actor with id '${id}' already exists on this node.`);
    const ref = new Ref<M>(id, options.name ?? id, this.node, this);
    const cell = new Cell<M>(this, ref, factory(), factory, options);
    this.cells.set(id, cell as unknown as Cell<Message>);
    void cell.start();
    return ref;
  }

  /** Stops an actor: undelivered messages become dead letters, then `postStop` runs. */
  stop(ref: ActorRef): void {
    const cell = this.cells.get(ref.id);
    if (!cell || cell.stopped) return;
    cell.stopped = true;
    this.cells.delete(ref.id);
    for (const message of cell.mailbox.close()) this.deadLetter(ref, message);
    cell.safePostStop();
  }

  /** True while a local actor exists, or while a route to a remote actor's node exists. */
  isAlive(ref: ActorRef): boolean {
    if (ref.node === this.node) return this.cells.has(ref.id);
    return this.routeTo(ref.node) !== undefined;
  }

  /** A ref of this system for an address; local when `node` is this node. */
  ref<M extends Message = Message>(id: string, name: string, node: string = this.node): ActorRef<M> {
    return new Ref<M>(id, name, node, this);
  }

  /** True while this system has an explicit route to `node` (a worker or child process it started, a peer). */
  hasRoute(node: string): boolean {
    return this.routes.has(node);
  }

  /** Routes frames for `node` over `link` (a worker, a child process). */
  addRoute(node: string, link: Link): void {
    this.routes.set(node, link);
  }

  /** Removes the route to `node` and emits `nodeDown`. */
  removeRoute(node: string): void {
    if (this.routes.delete(node)) this.events.emit('nodeDown', node);
  }

  /** Routes frames for every node without an explicit route over `link` (a parent, a bus). */
  setDefaultRoute(link: Link | undefined): void {
    this.defaultRoute = link;
  }

  private routeTo(node: string): Link | undefined {
    return this.routes.get(node) ?? this.defaultRoute;
  }

  /** The single delivery path for every message. */
  relay(target: ActorRef, message: Message): void {
    if (target.node === this.node) {
      const cell = this.cells.get(target.id);
      if (!cell || !cell.mailbox.enqueue(message)) this.deadLetter(target, message);
      return;
    }
    const link = this.routeTo(target.node);
    if (!link || !this.codec) return this.deadLetter(target, message);
    // The receiver gets its own copies; the codec frees the sender's tensors (ownership moved).
    const frame = this.codec.encode(message, target);
    try {
      link.send(frame);
    } catch {
      this.deadLetter(target, { type: message.type });
    }
  }

  /**
   * Reports a message nobody will receive, then frees the tensors it carries: a message owns its
   * tensors, and a dead letter has no receiver to dispose them. Listeners of `deadLetter` may
   * read the message (not keep its tensors) while the event is emitted.
   */
  private deadLetter(target: ActorRef, message: Message): void {
    this.events.emit('deadLetter', target, message);
    tensorsIn(message).forEach((t) => t.dispose());
  }

  /**
   * Delivers a frame that arrived from another node: forwards it when it is for a node this
   * system routes to, else decodes, validates and delivers it. A rejected frame is reported as a
   * `protocolError` event and never reaches an actor.
   */
  receiveFrame(frame: Envelope, from?: Link, sender?: string): void {
    const codec = this.codec;
    codec?.arrived?.(frame);
    if (frame.node !== this.node) {
      const link = this.routes.get(frame.node) ?? (this.defaultRoute !== from ? this.defaultRoute : undefined);
      if (link) link.send(frame);
      else this.events.emit('protocolError', new ProtocolError(`No route to node ${frame.node}; frame for ${frame.to} dropped.`), frame);
      return;
    }
    if (!codec) {
      this.events.emit('protocolError', new ProtocolError(`No codec to decode a frame for ${frame.to}; connect this system through a transport.`), frame);
      return;
    }
    let message: Message;
    try {
      message = codec.decode(frame, (id, name, node) => this.ref(id, name, node));
    } catch (error) {
      const protocolError = error instanceof ProtocolError ? error : new ProtocolError(String(error), { cause: error });
      this.events.emit('protocolError', protocolError, frame);
      return codec.decoded?.(frame, from);
    }
    codec.decoded?.(frame, from);
    try {
      this.validate?.(message);
      this.authorize?.(message, sender);
    } catch (error) {
      const protocolError = error instanceof ProtocolError ? error : new ProtocolError(String(error), { cause: error });
      this.events.emit('protocolError', protocolError, frame, message);
      tensorsIn(message).forEach((t) => t.dispose()); // a rejected message is never delivered
      return;
    }
    const queued = this.cells.get(frame.to)?.mailbox.size ?? 0;
    if (queued >= this.maxRemoteQueue) {
      const overload = new OverloadError(`${frame.to} already has ${queued} messages queued; '${message.type}' from another node dropped.`);
      this.events.emit('protocolError', overload, frame, message);
      tensorsIn(message).forEach((t) => t.dispose());
      return;
    }
    this.relay(this.ref(frame.to, frame.to), message);
  }

  /**
   * Sends a message built around a temporary `replyTo` ref and resolves with the first reply.
   *
   * @param timeoutMs how long to wait for the reply, in ms (default 10000).
   * @throws AskTimeoutError when no reply arrives in time; ActorStoppedError when the target does
   *   not exist.
   */
  ask<R extends Message, M extends Message>(
    target: ActorRef<M>,
    build: (replyTo: ActorRef<R>) => M,
    timeoutMs = 10_000,
  ): Promise<R> {
    if (!(timeoutMs > 0)) throw new InvalidArgumentError(`ask timeout must be > 0 ms, got ${timeoutMs}.`);
    if (!this.isAlive(target)) {
      return Promise.reject(
        new ActorStoppedError(`Cannot ask ${target.name}: it has stopped or never existed.`),
      );
    }
    return new Promise<R>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const replyTo = this.spawn<R>(
        () => ({
          receive: (reply, context) => {
            clearTimeout(timer);
            context.stop();
            resolve(reply);
          },
        }),
        { name: `ask-${target.name}` },
      );
      timer = setTimeout(() => {
        this.stop(replyTo);
        reject(new AskTimeoutError(`${target.name} did not reply to an ask within ${timeoutMs} ms.`));
      }, timeoutMs);
      target.tell(build(replyTo));
    });
  }

  /** Stops every actor. */
  shutdown(): void {
    for (const cell of [...this.cells.values()]) this.stop(cell.ref);
  }
}
