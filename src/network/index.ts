/**
 * Networks: a chain of gates in an actor system, with attach/detach of sentinels, prediction,
 * checkpoints (atomic save/load with architecture checks) and export as a tfjs LayersModel.
 */
export { Network, type GateSpec, type NetworkOptions } from './network.js';
