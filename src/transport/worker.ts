/**
 * Worker-thread transport: {@link spawnWorkerNode} starts a Node worker thread that runs its own
 * actor system with a `Host` actor, and links it to the caller's system. Frames cross the
 * thread's MessagePort with their tensor buffers transferred, not copied. tfjs-node is never
 * loaded in a worker (it is not context-aware); with that backend workers use wasm.
 */
import { nanoid } from 'nanoid';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs';
import type { ActorSystem } from '../actor/index.js';
import { InvalidArgumentError } from '../errors.js';
import { type Channel, childNodeId, connectNode, type NodeConfig, type NodeOptions, type RemoteNode } from './channel.js';

/** A worker thread started by {@link startWorkerNode}. */
export type WorkerNode = RemoteNode;

const HERE = import.meta.url;
/** Loads a node's entry module through tsx when it is TypeScript. */
export const NODE_BOOTSTRAP = new URL('./bootstrap.mjs', HERE);

/** Resolves module specifiers for a node: paths become file URLs, package names stay. */
export function resolveModules(modules: string[] = []): string[] {
  return modules.map((m) => (m.startsWith('.') || m.startsWith('/') ? new URL(m, `file://${process.cwd()}/`).href : m));
}

/** The file a node starts from: the entry itself when it is JavaScript, else the tsx bootstrap. */
export function nodeScript(entry: URL): string {
  return fileURLToPath(entry.href.endsWith('.ts') ? NODE_BOOTSTRAP : entry);
}

/**
 * Starts a worker thread running `entry` (deploy's node entry hosts a `Host` actor at id `'host'`) and links it to `system`; the
 * worker's system routes everything it does not host back to `system`. When the worker exits
 * (closed, crashed, terminated), its route is removed: `nodeDown` fires on `system` and later
 * sends to it become dead letters.
 *
 * @param options.backend the worker's backend; default the parent's, with `'wasm'` in place of
 *   `'tensorflow'`.
 * @throws InvalidArgumentError for backend `'tensorflow'` (use {@link startProcessNode});
 *   TransportError when the worker fails to start.
 */
export async function startWorkerNode(system: ActorSystem, entry: URL, options: NodeOptions = {}): Promise<WorkerNode> {
  const parentBackend = tf.getBackend();
  const backend = options.backend ?? (parentBackend === 'tensorflow' ? 'wasm' : parentBackend);
  if (backend === 'tensorflow') {
    throw new InvalidArgumentError("tfjs-node cannot load in worker threads; use backend 'wasm' or 'cpu' for workers, or spawnProcessNode for a child process.");
  }
  const name = options.name ?? `worker-${nanoid(8)}`; // unique without a module-level counter
  const node = childNodeId(system.node, name);
  const config: NodeConfig = { node, parent: system.node, name, backend, modules: resolveModules(options.modules), validate: options.validate, dataAccess: options.dataAccess };
  const worker = new Worker(nodeScript(entry), { workerData: { entry: entry.href, config }, execArgv: [], stdout: false, stderr: false });
  const channel: Channel = {
    description: `worker thread ${name}`,
    post: (message, transfer) => worker.postMessage(message, transfer),
    onMessage: (handler) => worker.on('message', handler),
    onExit: (handler) => worker.once('exit', handler),
    kill: () => void worker.terminate(),
  };
  worker.on('error', (error) => console.error(`[${name}] worker thread failed: ${error.stack ?? error.message}`));
  return connectNode(system, node, 'worker', channel, options.startTimeoutMs);
}
