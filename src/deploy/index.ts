/**
 * Deployment of gates onto nodes: the placement cost model (which gate runs where, how a gate is
 * split into shards), deploying gates onto worker threads and child processes, the host actor
 * every node runs, and the node entry that boots a thread or process ({@link NODE_ENTRY}, passed
 * to the transports by {@link spawnWorkerNode} and {@link spawnProcessNode}).
 */
export { Host, HOST_ID, hostRef, type HostMessage, type HostReply, type SentinelReport } from './host.js';
export {
  balancedPlacement,
  checkShards,
  deployGates,
  describePlacement,
  gateCosts,
  isPortable,
  partition,
  placementBottleneck,
  planGates,
  resolvePlacement,
  shardableUnits,
  splitPlacement,
  MAIN_THREAD_SHARE,
  MIN_SPLIT_UNITS,
  SPLIT_OVERHEAD,
  type Deployment,
  type GatePlan,
  type Place,
  type Placement,
  type PlacementContext,
  type PlacementSpec,
  type PlanOptions,
  type ShardSpec,
} from './placement.js';
export { NODE_ENTRY, spawnProcessNode, spawnWorkerNode, type ProcessNode, type WorkerNode } from './nodes.js';
