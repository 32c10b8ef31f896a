/**
 * Downpour SGD's parameter server and model replicas (Dean et al., NIPS 2012): parameter shards
 * ({@link ParameterShard}) that own slices of a model's parameters ({@link planShards}) and apply
 * pushed gradients with a server-side rule, replicas ({@link runReplica}) that fetch and push
 * through a {@link ParameterClient}, and the models they train: DeepDist's `gradient`/`descent`
 * API ({@link DownpourModel}) or a chain of gates ({@link chainModel}).
 */
export { chainModel, type Descent, type DownpourModel, modelFromSpec } from './model.js';
export { cutPart, cutParts, joinParts, partName, planShards } from './partition.js';
export { type Fetched, ParameterClient, type ReplicaOptions, type ReplicaSummary, runReplica } from './replica.js';
export { ParameterShard, type ParameterShardOptions, STALENESS_BUCKETS } from './shard.js';
