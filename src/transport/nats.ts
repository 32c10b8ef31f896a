/**
 * NATS transport: connects an actor system to a NATS server, so that actors in any number of
 * processes and machines reach each other. Each system listens on `akk.<namespace>.node.<node>.*`
 * (the last token names the sender)
 * and becomes the system's default route: a frame for any other node is published to that
 * node's subject, as bytes ({@link frameToBytes}), in chunks when it exceeds the server's
 * `max_payload`. Every node publishes `akk.<namespace>.heartbeat.<node>` `{ node, name }` once a
 * second; a node that misses heartbeats for `peerTimeoutMs` (or says goodbye) is reported as
 * `nodeDown` by the actor system. The client reconnects forever, with backoff.
 *
 * A process may also {@link NatsNode.serve} the nodes of its worker threads: it listens on their
 * subjects, relays their frames over the thread's link, and sends their heartbeats, so that
 * actors in those threads are reachable from other processes like any other node's.
 */
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import { EventEmitter } from 'eventemitter3';
import type { ActorSystem } from '../actor/index.js';
import { describeError, InvalidArgumentError, OverloadError, ProtocolError, TransportError } from '../errors.js';
import { bytesToFrame, type CodecLimits, DEFAULT_LIMITS, type Frame, framePool, frameToBytes, useWireCodec } from '../wire/index.js';
import { Chunker, isChunk, Reassembler } from '../wire/index.js';
import type { Link } from './link.js';
import { PeerTable } from './peers.js';

/** Characters allowed in a namespace or node id: one NATS subject token. */
export const SUBJECT_TOKEN = /^[A-Za-z0-9_-]{1,128}$/;
/** NATS's default `max_payload`: 1 MiB. */
export const DEFAULT_MAX_PAYLOAD = 2 ** 20;

/** Options of {@link connectNats}. */
export interface NatsOptions {
  /** Server URL(s), e.g. `nats://127.0.0.1:4222`. */
  servers: string | string[];
  /** Subject namespace, e.g. the network name: letters, digits, `_` and `-`. */
  namespace: string;
  /** Authentication token (server `authorization { token }`). */
  token?: string;
  /** User and password (server `authorization { users }`). */
  user?: string;
  pass?: string;
  /** TLS files (PEM); any of them makes TLS required. */
  tls?: { caFile?: string; certFile?: string; keyFile?: string };
  /** Client name shown by the server's monitoring and in peers' logs. */
  name?: string;
  /** Interval of this node's heartbeats, ms. Default 1000. */
  heartbeatMs?: number;
  /** A peer silent for this long (ms, while this node is connected) is down. Default 5000. */
  peerTimeoutMs?: number;
  /** Limits on frames received (the chunk reassembler rejects totals over `maxFrameBytes`). */
  limits?: CodecLimits;
  /** An incomplete chunked message is dropped this long (ms) after its last chunk. Default 30000. */
  chunkTimeoutMs?: number;
  /** Most bytes held for incomplete chunked messages. Default 512 MiB. */
  maxReassemblyBytes?: number;
  /** Bytes sent while disconnected (buffered by the client) before sends fail. Default 256 MiB. */
  maxBufferedBytes?: number;
  /** Initial connection timeout, ms. Default 5000. */
  connectTimeoutMs?: number;
  /** Reconnect delay: grows from `initialMs` to `maxMs` with the outage's length. Default 100 and 2000. */
  reconnect?: { initialMs?: number; maxMs?: number };
}

/** Events of a {@link NatsNode}. */
export interface NatsNodeEvents {
  /** A node was heard from for the first time (or again after it was down). */
  peerUp: (node: string, name: string | undefined) => void;
  /** A node said goodbye (`left`) or missed its heartbeats (`timeout`); its route is gone. */
  peerDown: (node: string, reason: 'left' | 'timeout', name: string | undefined) => void;
  /** The connection to the server was lost; sends are buffered until it is back. */
  disconnect: (server: string) => void;
  /** The connection is back. */
  reconnect: (server: string) => void;
  /** An asynchronous error of the client or of a subscription. */
  error: (error: Error) => void;
}

const NO_FRAME: Frame = { node: '', to: '(undecoded NATS message)', header: '', buffers: [] };

/** The subject of a namespace: `akk.<namespace>.<tokens…>`. */
export function natsSubject(namespace: string, ...tokens: string[]): string {
  return ['akk', namespace, ...tokens].join('.');
}

/** One actor system's connection to NATS; the system's default route (a {@link Link}). */
export class NatsNode implements Link {
  readonly description: string;
  readonly events = new EventEmitter<NatsNodeEvents>();
  /** The server URLs as given, for messages. */
  readonly servers: string[];
  /** Peers heard on the heartbeat subject; a node that left or went silent is down until heard again. */
  private readonly peers = new PeerTable({
    up: (node, name) => {
      this.system.addRoute(node, this);
      this.events.emit('peerUp', node, name);
    },
    down: (node, reason, name) => {
      this.system.removeRoute(node);
      if (reason) this.events.emit('peerDown', node, reason, name);
    },
  });
  private readonly chunker = new Chunker();
  /** One reassembler per sender (the last token of the subject), so that no sender can evict another's messages. */
  private readonly reassemblers = new Map<string, Reassembler>();
  private readonly limits: CodecLimits;
  private readonly timers: NodeJS.Timeout[] = [];
  private connected = true;
  private closed = false;
  private bufferedBytes = 0;
  /** Nodes this connection serves besides its own (see {@link serve}), with their names and subscriptions. */
  private readonly served = new Map<string, { name?: string; subscription: Subscription }>();

  /** Use {@link connectNats}. */
  constructor(
    readonly system: ActorSystem,
    readonly nc: NatsConnection,
    readonly namespace: string,
    private readonly options: NatsOptions,
  ) {
    this.servers = ([] as string[]).concat(options.servers);
    this.description = `nats ${this.servers.join(',')} (${namespace})`;
    this.limits = options.limits ?? DEFAULT_LIMITS;
  }

  /** The sender's reassembler; undefined when {@link MAX_SENDERS} others already have messages open. */
  private reassemblerOf(from: string): Reassembler | undefined {
    let reassembler = this.reassemblers.get(from);
    if (reassembler) return reassembler;
    if (this.reassemblers.size >= MAX_SENDERS) return undefined;
    reassembler = new Reassembler({ maxMessageBytes: this.limits.maxFrameBytes, maxPendingBytes: this.options.maxReassemblyBytes, timeoutMs: this.options.chunkTimeoutMs });
    this.reassemblers.set(from, reassembler);
    return reassembler;
  }

  /** Drops what timed out, and the reassemblers of senders with nothing open. */
  private sweep(): void {
    for (const [from, reassembler] of this.reassemblers) {
      reassembler.sweep();
      if (reassembler.pendingMessages === 0) this.reassemblers.delete(from);
    }
  }

  /** Subscribes, starts heartbeats and becomes the system's default route; resolves once the server has the subscriptions. */
  async start(): Promise<void> {
    useWireCodec(this.system, this.limits);
    this.subscribeFrames(this.system.node);
    this.nc.subscribe(natsSubject(this.namespace, 'heartbeat', '*'), { callback: (error, msg) => void (error ? this.events.emit('error', error) : this.heartbeat(msg.data, lastToken(msg.subject))) });
    this.system.setDefaultRoute(this);
    this.system.events.on('nodeDown', this.onNodeDown);
    const heartbeatMs = this.options.heartbeatMs ?? 1000;
    const peerTimeoutMs = this.options.peerTimeoutMs ?? 5000;
    const chunkTimeoutMs = this.options.chunkTimeoutMs ?? 30_000;
    this.timers.push(
      setInterval(() => this.beat(), heartbeatMs),
      // setImmediate: heartbeats already waiting in the socket are read before peers are judged.
      setInterval(() => setImmediate(() => this.connected && !this.closed && this.peers.check(peerTimeoutMs)), Math.max(10, Math.min(heartbeatMs, peerTimeoutMs / 4))),
      setInterval(() => this.sweep(), Math.max(10, chunkTimeoutMs / 2)),
    );
    this.timers.forEach((t) => t.unref());
    void this.watchStatus();
    await this.nc.flush();
    this.beat();
  }

  /**
   * Serves `node`, a node this process routes to (a worker thread it started), on NATS: frames
   * published to `node`'s subject are received here and relayed over the system's route to it,
   * and this connection sends `node`'s heartbeats (and its goodbye when it stops serving it), so
   * that peers see it come and go with this process. Frames from `node` to other processes
   * already leave through this connection, the system's default route. The relaying process
   * does not decode relayed frames; give the worker `validate: true` (`NodeOptions`).
   * Returns a function that stops serving `node` (idempotent).
   * @throws InvalidArgumentError when `node` is not a subject token, the system has no route to it, or it is not a child of this node (`<node>_…`).
   */
  serve(node: string, name?: string): () => void {
    if (!SUBJECT_TOKEN.test(node)) throw new InvalidArgumentError(`Node id '${node.slice(0, 64)}' must be 1-128 letters, digits, '_' or '-' to be served on NATS.`);
    if (!this.system.hasRoute(node)) throw new InvalidArgumentError(`${this.description} cannot serve node ${node}: this system has no route to it (start it from this process first).`);
    if (!node.startsWith(`${this.system.node}_`)) {
      throw new InvalidArgumentError(`${this.description} cannot serve node ${node}: only nodes started by this process (ids '${this.system.node}_…', see childNodeId) can be served, since other nodes ignore heartbeats for anyone else.`);
    }
    if (!this.served.has(node)) {
      this.served.set(node, { name, subscription: this.subscribeFrames(node) });
      this.beatFor(node, name);
    }
    return () => this.unserve(node);
  }

  /** Receives the frames published to `node`'s subjects (`…node.<node>.<sender>`; this node's own, or one it serves). */
  private subscribeFrames(node: string): Subscription {
    return this.nc.subscribe(natsSubject(this.namespace, 'node', node, '*'), { callback: (error, msg) => void (error ? this.events.emit('error', error) : this.receive(msg.data, lastToken(msg.subject))) });
  }

  /** Stops serving `node`: unsubscribes and says its goodbye. */
  private unserve(node: string): void {
    const entry = this.served.get(node);
    if (!entry) return;
    this.served.delete(node);
    entry.subscription.unsubscribe();
    this.beatFor(node, entry.name, true);
  }

  /** A served node whose route is gone (its thread exited) is no longer served. */
  private readonly onNodeDown = (node: string): void => this.unserve(node);

  /** Nodes heard from recently, with their names. */
  get peerNodes(): Map<string, string | undefined> {
    return this.peers.nodes;
  }

  /** Whether `node` is down: it said goodbye or missed its heartbeats, and has not been heard from since. */
  isDown(node: string): boolean {
    return this.peers.isDown(node);
  }

  /** The largest NATS message the connected server accepts, in bytes. */
  get maxPayload(): number {
    return this.nc.info?.max_payload ?? DEFAULT_MAX_PAYLOAD;
  }

  /**
   * Publishes a frame to its node's subject, chunked when over `max_payload`. While
   * disconnected the client buffers it (up to `maxBufferedBytes`).
   * @throws TransportError when closed, when the target node is down (it left or missed its
   *   heartbeats; the system then records a dead letter), over the buffer limit, or when the
   *   client refuses.
   */
  send(frame: Frame): void {
    if (this.closed) throw new TransportError(`${this.description} is closed; frame for ${frame.to}@${frame.node} not sent.`);
    if (!SUBJECT_TOKEN.test(frame.node)) throw new TransportError(`Node id '${frame.node.slice(0, 64)}' is not a NATS subject token; frame not sent.`);
    if (this.peers.isDown(frame.node)) throw new TransportError(`Node ${frame.node} is down (it left or missed its heartbeats); frame for ${frame.to} not sent.`);
    const bytes = frameToBytes(frame);
    frame.buffers.forEach((b) => framePool.give(b)); // copied into `bytes`
    if (!this.connected) {
      if (this.bufferedBytes + bytes.byteLength > (this.options.maxBufferedBytes ?? 256 * 2 ** 20)) {
        throw new TransportError(`${this.description} is disconnected and has buffered ${this.bufferedBytes} bytes; frame for ${frame.to} dropped.`);
      }
      this.bufferedBytes += bytes.byteLength;
    }
    // The last token names the sender: this connection's node, which a server's permissions can bind to its credentials.
    const subject = natsSubject(this.namespace, 'node', frame.node, this.system.node);
    try {
      for (const chunk of this.chunker.split(bytes, this.maxPayload)) this.nc.publish(subject, chunk);
    } catch (error) {
      throw new TransportError(`${this.description}: publishing to ${subject} failed: ${describeError(error)}`, { cause: error });
    }
  }

  /** Resolves when the server has processed everything sent so far. */
  async flush(): Promise<void> {
    await this.nc.flush();
  }

  /**
   * Says goodbye to peers, stops routing through NATS, and closes the connection (pending
   * messages are flushed for up to `timeoutMs`). Idempotent.
   */
  async close(timeoutMs = 2000): Promise<void> {
    if (this.closed) return;
    this.beat(true);
    this.stop();
    this.peers.clear();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)));
    await Promise.race([this.nc.flush().catch(() => undefined), timeout]);
    clearTimeout(timer);
    await this.nc.close().catch(() => undefined);
  }

  /** Closes the connection without a goodbye, as a crashed process would (for tests). */
  async abort(): Promise<void> {
    this.stop();
    await this.nc.close().catch(() => undefined);
  }

  private stop(): void {
    this.system.events.off('nodeDown', this.onNodeDown);
    this.closed = true;
    this.timers.forEach((t) => clearInterval(t));
    this.reassemblers.forEach((r) => r.clear());
    this.reassemblers.clear();
    this.system.setDefaultRoute(undefined);
  }

  private receive(message: Uint8Array, from: string): void {
    // A plain view: the client hands out Buffers, whose `slice` shares memory instead of copying.
    const data = new Uint8Array(message.buffer, message.byteOffset, message.byteLength);
    let frame: Frame;
    try {
      let bytes: Uint8Array | undefined = data;
      if (isChunk(data)) {
        const reassembler = this.reassemblerOf(from);
        if (!reassembler) throw new OverloadError(`Chunked messages of ${MAX_SENDERS} senders are already open; a chunk from ${from.slice(0, 64)} was dropped.`);
        try {
          bytes = reassembler.push(data);
        } finally {
          if (reassembler.pendingMessages === 0) this.reassemblers.delete(from); // a sender holds a slot only while it has a message open
        }
      }
      if (!bytes) return;
      frame = bytesToFrame(bytes, this.limits);
    } catch (error) {
      const protocolError = error instanceof ProtocolError ? error : new ProtocolError(describeError(error), { cause: error });
      this.system.events.emit('protocolError', protocolError, NO_FRAME);
      return;
    }
    try {
      this.system.receiveFrame(frame, this, from); // the subject's sender, which the server's permissions bind
    } catch (error) {
      this.events.emit('error', error instanceof Error ? error : new Error(String(error)));
    }
  }

  /** Publishes the heartbeat (or goodbye) of this node and of every node it serves. */
  private beat(bye = false): void {
    this.beatFor(this.system.node, this.options.name, bye);
    for (const [node, { name }] of this.served) this.beatFor(node, name, bye);
  }

  private beatFor(node: string, name: string | undefined, bye = false): void {
    if (this.closed) return;
    try {
      // On this connection's own heartbeat subject, also for the nodes it serves (named `<node>_…`).
      this.nc.publish(natsSubject(this.namespace, 'heartbeat', this.system.node), JSON.stringify({ node, name, ...(bye ? { bye: true } : {}) }));
    } catch (error) {
      this.events.emit('error', error instanceof Error ? error : new Error(String(error)));
    }
  }

  /** A heartbeat counts only for its sender's own node or a node it serves (`<sender>_…`): nobody speaks for others. */
  private heartbeat(data: Uint8Array, from: string): void {
    let beat: { node?: unknown; name?: unknown; bye?: unknown };
    try {
      beat = JSON.parse(new TextDecoder().decode(data));
    } catch {
      return;
    }
    const node = beat?.node;
    if (typeof node !== 'string' || !SUBJECT_TOKEN.test(node) || node === this.system.node || this.served.has(node) || this.closed) return;
    if (node !== from && !node.startsWith(`${from}_`)) return;
    const name = typeof beat.name === 'string' ? beat.name.slice(0, 200) : undefined;
    this.peers.heard(node, name, beat.bye === true);
  }

  private async watchStatus(): Promise<void> {
    for await (const status of this.nc.status()) {
      if (status.type === 'disconnect') {
        this.connected = false;
        this.events.emit('disconnect', status.server);
      } else if (status.type === 'reconnect') {
        this.connected = true;
        this.bufferedBytes = 0;
        this.peers.refresh(); // silence while we were away proves nothing
        this.beat();
        this.events.emit('reconnect', status.server);
      } else if (status.type === 'error') {
        this.events.emit('error', status.error);
      }
    }
  }
}

/** Most senders whose chunked messages are reassembled at once (each within its own budget). */
const MAX_SENDERS = 16;

const lastToken = (subject: string): string => subject.slice(subject.lastIndexOf('.') + 1);

/**
 * The reply subjects of a node: `_INBOX_<node>`, so that a server's permissions can give each
 * node its own inbox (see `natsServerConfig`) instead of every `_INBOX.>`.
 */
export function inboxPrefixOf(node: string): string {
  return `_INBOX_${node}`;
}
