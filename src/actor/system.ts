/**
 * The actor system: a registry of local actors plus one delivery path (`relay`). Every message,
 * `tell` or `ask`, local or later remote, goes through `relay`, so that is the one place where
 * tracing or a transport plugs in.
 */
import { EventEmitter } from 'eventemitter3';
import { nanoid } from 'nanoid';
import { ActorStoppedError, AskTimeoutError, InvalidArgumentError } from '../errors.js';
import { Mailbox } from './mailbox.js';
import type {
  Actor,
  ActorContext,
  ActorFailed,
  ActorRef,
  Message,
  SpawnOptions,
  SupervisionPolicy,
} from './types.js';

/** Events of an {@link ActorSystem}. */
export interface ActorSystemEvents {
  /** A handler of a top-level actor (one without a parent) failed. */
  failure: (failure: ActorFailed) => void;
  /** A message was sent to an actor that does not exist or has stopped. */
  deadLetter: (target: ActorRef, message: Message) => void;
}

class LocalRef<M extends Message> implements ActorRef<M> {
  constructor(
    readonly id: string,
    readonly name: string,
    private readonly system: ActorSystem,
  ) {}

  tell(message: M): void {
    this.system.relay(this, message);
  }

  toJSON(): { id: string; name: string } {
    return { id: this.id, name: this.name };
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
  /** Failures of top-level actors and dead letters; subscribe for logging. */
  readonly events = new EventEmitter<ActorSystemEvents>();
  private readonly cells = new Map<string, Cell<Message>>();

  constructor(readonly name = 'akkordeon') {}

  /**
   * Creates an actor from a factory (called again on `restart`) and returns its ref. Messages
   * sent before `preStart` resolves are queued and delivered after it.
   */
  spawn<M extends Message>(factory: () => Actor<M>, options: SpawnOptions = {}): ActorRef<M> {
    const id = nanoid();
    const ref = new LocalRef<M>(id, options.name ?? id, this);
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
    for (const message of cell.mailbox.close()) this.events.emit('deadLetter', ref, message);
    cell.safePostStop();
  }

  /** True while the actor exists and has not stopped. */
  isAlive(ref: ActorRef): boolean {
    return this.cells.has(ref.id);
  }

  /** The single delivery path for every message. */
  relay(target: ActorRef, message: Message): void {
    const cell = this.cells.get(target.id);
    if (!cell || !cell.mailbox.enqueue(message)) this.events.emit('deadLetter', target, message);
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
    if (!this.cells.has(target.id)) {
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
