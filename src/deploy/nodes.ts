/**
 * Worker threads and child processes that boot as akkordeon nodes: the transports start them
 * with this folder's node entry (`node-main.ts`), which runs a host actor.
 */
import type { ActorSystem } from '../actor/index.js';
import { type NodeOptions, type ProcessNode, startProcessNode, startWorkerNode, type WorkerNode } from '../transport/index.js';

const HERE = import.meta.url;
/** The module a worker thread or child process runs (`node-main.ts` from sources, `.js` when built). */
export const NODE_ENTRY = new URL(`./node-main${HERE.endsWith('.ts') ? '.ts' : '.js'}`, HERE);

export type { ProcessNode, WorkerNode };

/** Starts a worker thread hosting a `Host` actor at id `'host'` (see `startWorkerNode`). */
export function spawnWorkerNode(system: ActorSystem, options: NodeOptions = {}): Promise<WorkerNode> {
  return startWorkerNode(system, NODE_ENTRY, options);
}

/** Starts a child process hosting a `Host` actor at id `'host'` (see `startProcessNode`). */
export function spawnProcessNode(system: ActorSystem, options: NodeOptions = {}): Promise<ProcessNode> {
  return startProcessNode(system, NODE_ENTRY, options);
}
