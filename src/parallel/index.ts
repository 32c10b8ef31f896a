/**
 * Data parallelism over the actors: Downpour SGD with sharded parameter servers and model
 * replicas on any placement, behind DeepDist's entry point ({@link trainDistributed}).
 */
export { type DistributedResult, type DownpourJob, type ReplicaPlacement, shardParameters, spawnShards, trainDistributed, type TrainDistributedOptions } from './downpour.js';
