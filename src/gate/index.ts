/**
 * Gates: actors that own a group of tfjs-layers layers and an optimizer. {@link Gate} is the
 * actor logic; {@link GateModule} its arithmetic (forward, backward at stashed weights, update);
 * {@link ParamStore} the weight versions kept for in-flight batches (weight stashing).
 */
export { Gate, type GateOptions } from './gate.js';
export { GateModule, type ForwardState } from './module.js';
export { ParamStore, ParamVersion } from './params.js';
export { createOp, type LayerOp, type Saved } from './ops.js';
export { createLayer, gateFromConfig, layerConfig, type GateConfig, type LayerConfig } from './config.js';
export { type GateSpec } from './spec.js';
export { disposeStates, getGateStates, setGateStates, type AskGate } from './states.js';
