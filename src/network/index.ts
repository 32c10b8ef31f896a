/**
 * Networks: a chain of gates in an actor system, with attach/detach of sentinels and prediction.
 * Placement and deployment are in `deploy/`, checkpoints and export in `persist/`, networks
 * across machines in `cluster/`.
 */
export { Network, type NetworkOptions, type PlacedSentinel } from './network.js';
