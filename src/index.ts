/**
 * akkordeon: asynchronous neural-network training with actors. Gates own groups of layers and
 * their optimizers (DC-ASGD by default); sentinels own data, loss and metrics and drive
 * training, validation, test and prediction passes; a network chains gates.
 *
 * This entry holds what a user of the framework needs: networks and their descriptions,
 * sentinels, optimizers, data providers, checkpoints and export, the backend, and every named
 * error. Each layer below has a subpath of its own for the rest: `akkordeon/actor`,
 * `akkordeon/wire`, `akkordeon/protocol`, `akkordeon/transport`, `akkordeon/kernels`,
 * `akkordeon/optim`, `akkordeon/data`, `akkordeon/gate`, `akkordeon/sentinel`, `akkordeon/models`,
 * `akkordeon/ps` (Downpour's parameter shards and replicas), `akkordeon/deploy` (placement, hosts),
 * `akkordeon/network`, `akkordeon/parallel` (data-parallel training), `akkordeon/persist`,
 * `akkordeon/cluster` (NATS: hosted slices, discovery, remote sentinels) and `akkordeon/apps`
 * (the command-line programs).
 */
export * from './errors.js';
export { BACKENDS, initBackend, type BackendName } from './backend.js';
export { Network, type NetworkOptions, type PlacedSentinel } from './network/index.js';
export type { GateSpec } from './gate/index.js';
export type { Placement } from './deploy/index.js';
export { describeNetwork, loadNetworkDescription, mnistCnn, mnistMlp, networkGates, type NetworkDescription } from './models/index.js';
export { Sentinel, LOSSES, type EpochStats, type SentinelOptions, type SentinelSpec, type SentinelSummary } from './sentinel/index.js';
export { AdaGrad, Adam, cosineDecay, DCASGD, DEFAULT_OPTIMIZER, SGD, type OptimizerSpec } from './optim/index.js';
export { ArrayProvider, ensureMnist, loadMnist, readCsv, readJsonl, resolveMnistDir, type DataProvider, type DataSpec } from './data/index.js';
export { trainDistributed, type DistributedResult, type TrainDistributedOptions } from './parallel/index.js';
export type { DownpourModel, Descent } from './ps/index.js';
export type { ModelSpec } from './protocol/index.js';
export { exportModel, loadCheckpoint, loadExportedModel, periodicCheckpoints, saveCheckpoint } from './persist/index.js';
