/**
 * Networks: a chain of gates in an actor system, with attach/detach of sentinels and prediction;
 * {@link GateChain}, the control requests (wiring, freeing, state) that every network shares.
 * Placement and deployment are in `deploy/`, checkpoints and export in `persist/`, networks
 * across machines in `cluster/`.
 */
export { Network, type NetworkOptions, type PlacedSentinel } from './network.js';
export { GateChain, type FreeTarget, type GateChainOptions } from './chain.js';
