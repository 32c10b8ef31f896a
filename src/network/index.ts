/**
 * Networks: a chain of gates in an actor system, with attach/detach of sentinels, prediction,
 * checkpoints (atomic save/load with architecture checks) and export as a tfjs LayersModel.
 */
export { Network, type GateSpec, type NetworkOptions, type PlacedSentinel } from './network.js';
export {
  CHECKPOINT_FORMAT,
  CHECKPOINT_VERSION,
  loadCheckpoint,
  periodicCheckpoints,
  saveCheckpoint,
  writeDirectoryAtomically,
  type Checkpointable,
  type CheckpointSaveOutcome,
  type PeriodicCheckpoints,
  type CheckpointManifest,
  type GateEntry,
  type TensorEntry,
} from './checkpoint.js';
export { exportModel, loadExportedModel, type ExportedModelJSON } from './export.js';
export { Host, HOST_ID, hostRef, type HostMessage, type HostReply, type SentinelReport } from './host.js';
export {
  balancedPlacement,
  checkShards,
  deployGates,
  describePlacement,
  gateCosts,
  partition,
  placementBottleneck,
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
  type ShardSpec,
} from './placement.js';
export {
  announceSubject,
  attachRemote,
  directoryConflict,
  discoverNetwork,
  listSlices,
  parseSlice,
  registrySubject,
  serveRegistry,
  sliceConflict,
  type AttachRemoteOptions,
  type DiscoveredGate,
  type DiscoveryOptions,
  type NetworkDirectory,
  type PlannedSlice,
  type RegistryGate,
  type RegistrySlice,
  type RemoteAttachment,
  type RemoteAttachmentEvents,
} from './discovery.js';
export {
  hostGates,
  type HostedGate,
  type HostedGates,
  type HostedGatesEvents,
  type HostGatesOptions,
} from './remote.js';
