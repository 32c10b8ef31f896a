/**
 * akkordeon: asynchronous neural-network training with actors. Gates own groups of layers and
 * their optimizers (DC-ASGD by default); sentinels own data, loss and metrics and drive
 * training, validation, test and prediction passes; a network chains gates. See README.md.
 */
export * from './errors.js';
export { BACKENDS, initBackend, type BackendName } from './backend.js';
export * from './actor/index.js';
export * from './optim/index.js';
export { fusedKernelsActive, loadFusedKernels, useFusedKernels } from './kernels/index.js';
export * from './gate/index.js';
export * from './sentinel/index.js';
export * from './data/index.js';
export * from './network/index.js';
export * from './models/index.js';
export * from './transport/index.js';
export { answerInvalid, protocolValidator, type SchemaLimits } from './schema.js';
export type * from './protocol.js';
