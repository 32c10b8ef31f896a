/**
 * The parent side of a node this process started (a worker thread or a child process): the
 * start-up handshake, the {@link Link} that carries frames to it, the dispatch of frames that
 * come back, and the clean-up when it exits (routes removed, so `nodeDown` fires and later sends
 * become dead letters). {@link spawnWorkerNode} and {@link spawnProcessNode} build on it.
 */
import { nanoid } from 'nanoid';
import type { ActorRef } from '../actor/index.js';
import type { ActorSystem } from '../actor/index.js';
import { describeError, type ErrorInfo, fromErrorInfo, TransportError } from '../errors.js';
import { type Frame, framePool, transferList, useWireCodec } from '../wire/index.js';
import type { Link } from './link.js';

/** The id at which a node's bootstrap spawns its host actor (`HOST_ID` of `deploy/host.ts`, which the transports do not import). */
export const NODE_HOST_ID = 'host';

/** What a started node needs to know, passed as `workerData` or in `AKKORDEON_NODE_CONFIG`. */
export interface NodeConfig {
  /** The node id of the new actor system, chosen by the parent. */
  node: string;
  /** The parent's node id. */
  parent: string;
  /** Name of the new actor system, for logs. */
  name: string;
  /** Backend to start (`'wasm'`, `'cpu'`, `'tensorflow'`, `'auto'`). */
  backend: string;
  /** Modules to import before the node reports ready, e.g. ones that register custom layers. */
  modules: string[];
  /**
   * Whether the node validates every message it receives (see `NodeOptions.validate`); default:
   * child processes do, worker threads do not.
   */
  validate?: boolean;
  /** What the node's host lets data specs from other nodes read (see `NodeOptions.dataAccess`). */
  dataAccess?: { roots?: string[]; modules?: boolean };
}

/** Control messages between a parent and a node it started (frames travel beside them). */
export type ControlMessage =
  | { control: 'ready'; backend: string; pid: number }
  | { control: 'failed'; error: ErrorInfo }
  /** Parent → node: route frames for `node` back to the parent (another system of the parent). */
  | { control: 'alias'; node: string }
  | { control: 'shutdown' };

/** Options shared by {@link spawnWorkerNode} and {@link spawnProcessNode}. */
export interface NodeOptions {
  /** Backend of the node; default: the parent's (`'wasm'` in place of `'tensorflow'` in workers). */
  backend?: string;
  /** Name for logs; default `worker-<n>` or `process-<n>`. */
  name?: string;
  /** Modules (file paths, file URLs or package names) the node imports before it is ready. */
  modules?: string[];
  /** How long to wait for the node to start, ms. Default 60000. */
  startTimeoutMs?: number;
  /**
   * Whether the node validates every message it receives against the protocol schemas. Child
   * processes always do. Worker threads do not by default, as their messages come from their own
   * process; turn it on for a worker that receives frames relayed from outside the process
   * (gates in worker threads of a network process, served over NATS).
   */
  validate?: boolean;
  /**
   * Which files and modules a sentinel that the node's host builds may read (`DataAccess` of
   * the data folder): unrestricted by default, right for a node this process placed its own
   * sentinels on; `{ roots: [...] }` for a node served to other machines.
   */
  dataAccess?: { roots?: string[]; modules?: boolean };
}

/**
 * The node id of a node started by `parent` under `name`: `<parent>_<name>-<6 random characters>`,
 * one NATS subject token (letters, digits, `_` and `-`, at most 128 characters), so that a
 * relaying process can serve it on NATS. Other characters of `name` become `-`.
 */
export function childNodeId(parent: string, name: string): string {
  const suffix = `_${name.replace(/[^A-Za-z0-9_-]/g, '-').slice(0, 40)}-${nanoid(6)}`;
  return `${parent.slice(0, 128 - suffix.length)}${suffix}`;
}

/** A node (thread or process) started by this process, hosting a `Host` actor. */
export interface RemoteNode {
  /** Node id of the node's actor system. */
  readonly node: string;
  readonly kind: 'worker' | 'process';
  /** The node's host actor (spawns gates from configs; see `deploy/host.ts`), at the well-known id {@link NODE_HOST_ID}. */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- the host's message type lives above the transports (deploy/host.ts)
  readonly host: ActorRef<any>;
  /** The link that carries frames to the node. */
  readonly link: Link;
  /** The backend the node started. */
  readonly backend: string;
  /** Process id of the node (the parent's own pid for a worker thread). */
  readonly pid: number;
  /** Resolves with the exit code once the node has exited. */
  readonly exited: Promise<number>;
  /** Lets another actor system of this thread reach the node over the same link, both ways. */
  attach(system: ActorSystem): void;
  /** Routes frames for `node` (one behind this node) over the link, until the node exits. */
  route(node: string): void;
  /** Stops the node's actors and ends it; resolves once it has exited. Idempotent. */
  close(): Promise<void>;
  /** Ends the node at once, as if it crashed (worker terminated, process killed with SIGKILL). */
  kill(): void;
}

/** What the parent side needs from a worker or a child process. */
export interface Channel {
  readonly description: string;
  /** Posts a frame or a control message; `transfer` lists buffers that may be moved, not copied. */
  post(message: Frame | ControlMessage, transfer?: ArrayBuffer[]): void;
  /** Subscribes to messages from the node. */
  onMessage(handler: (message: unknown) => void): void;
  /** Subscribes to the node's exit, with its exit code. */
  onExit(handler: (code: number) => void): void;
  /** Ends the node at once. */
  kill(): void;
}

/** The frame in a message from another thread or process, or undefined if it is none. */
export function asFrame(value: unknown): Frame | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const f = value as Partial<Frame>;
  if (typeof f.node !== 'string' || typeof f.to !== 'string' || typeof f.header !== 'string' || !Array.isArray(f.buffers)) return undefined;
  if (!f.buffers.every((b) => b instanceof ArrayBuffer)) return undefined;
  if (f.returns !== undefined && !(Array.isArray(f.returns) && f.returns.every((b) => b instanceof ArrayBuffer))) return undefined;
  return f as Frame;
}

/**
 * A link over a channel: frames are posted with their buffers transferred where possible. Over
 * a thread boundary (`returnBuffers`), the buffers of decoded frames ride back to the peer with
 * the next frame ({@link Frame.returns}), so the two threads trade a fixed set of buffers.
 */
export class ChannelLink implements Link {
  closed = false;
  private returns: ArrayBuffer[] = [];

  constructor(
    readonly description: string,
    private readonly post: (frame: Frame) => void,
    private readonly onClose: () => Promise<void> = async () => undefined,
    private readonly returnBuffers = false,
  ) {}

  send(frame: Frame): void {
    if (this.closed) throw new TransportError(`${this.description} is closed; the node has exited.`);
    if (this.returns.length > 0 && !frame.returns) {
      frame.returns = this.returns;
      this.returns = [];
    }
    this.post(frame);
  }

  recycle(buffers: ArrayBuffer[]): void {
    if (!this.returnBuffers) return buffers.forEach((b) => framePool.give(b));
    for (const b of buffers) {
      if (this.returns.length < 64) this.returns.push(b);
      else framePool.give(b);
    }
  }

  async close(): Promise<void> {
    await this.onClose();
  }
}

/**
 * Waits for a node's `ready` message and returns the node; the node's systems get routes to it
 * that are removed (emitting `nodeDown`) when it exits.
 * @throws TransportError when the node fails to start, exits first, or is not ready in time.
 */
export async function connectNode(system: ActorSystem, node: string, kind: 'worker' | 'process', channel: Channel, startTimeoutMs = 60_000): Promise<RemoteNode> {
  const systems = new Map<string, ActorSystem>([[system.node, system]]);
  const routed = new Set<string>([node]);
  let exitCode: number | undefined;
  let onExited!: (code: number) => void;
  const exited = new Promise<number>((resolve) => (onExited = resolve));
  const link = new ChannelLink(`${channel.description} (node ${node})`, (frame) => channel.post(frame, transferList(frame)), () => remote.close(), kind === 'worker');
  let settle!: { resolve: (m: { backend: string; pid: number }) => void; reject: (e: Error) => void };
  const ready = new Promise<{ backend: string; pid: number }>((resolve, reject) => (settle = { resolve, reject }));

  channel.onMessage((message) => {
    const frame = asFrame(message);
    if (frame) return void (systems.get(frame.node) ?? system).receiveFrame(frame, link);
    const control = message as ControlMessage;
    if (control?.control === 'ready') settle.resolve({ backend: control.backend, pid: control.pid });
    else if (control?.control === 'failed') settle.reject(new TransportError(`${channel.description} failed to start: ${describeError(fromErrorInfo(control.error))}`));
  });
  channel.onExit((code) => {
    exitCode = code;
    link.closed = true;
    settle.reject(new TransportError(`${channel.description} exited with code ${code} before it was ready; see its output above.`));
    for (const s of systems.values()) s.removeRoute(node);
    for (const n of routed) if (n !== node) system.removeRoute(n);
    onExited(code);
  });

  const remote: RemoteNode = {
    node,
    kind,
    host: system.ref(NODE_HOST_ID, `host@${node}`, node),
    link,
    backend: '',
    pid: 0,
    exited,
    attach(other: ActorSystem) {
      if (exitCode !== undefined) throw new TransportError(`${channel.description} has exited.`);
      systems.set(other.node, other);
      useWireCodec(other);
      other.addRoute(node, link);
      channel.post({ control: 'alias', node: other.node });
    },
    route(other: string) {
      if (exitCode !== undefined) throw new TransportError(`${channel.description} has exited.`);
      routed.add(other);
      system.addRoute(other, link);
    },
    async close() {
      if (exitCode !== undefined) return;
      channel.post({ control: 'shutdown' });
      const timer = setTimeout(() => channel.kill(), 5_000);
      await exited;
      clearTimeout(timer);
    },
    kill() {
      if (exitCode === undefined) channel.kill();
    },
  };

  useWireCodec(system);
  system.addRoute(node, link);
  const timer = setTimeout(() => settle.reject(new TransportError(`${channel.description} did not start within ${startTimeoutMs} ms.`)), startTimeoutMs);
  try {
    const info = await ready;
    return Object.assign(remote, info);
  } catch (error) {
    channel.kill();
    await exited;
    throw error;
  } finally {
    clearTimeout(timer);
  }
}
