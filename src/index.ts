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
export * from './deploy/index.js';
export * from './network/index.js';
export * from './persist/index.js';
export * from './cluster/index.js';
export * from './models/index.js';
export * from './transport/index.js';
export {
  bytesToFrame,
  CHUNK_HEADER_BYTES,
  CHUNK_MAGIC,
  Chunker,
  DEFAULT_LIMITS,
  decodeMessage,
  encodeMessage,
  frameToBytes,
  isChunk,
  LIMITS,
  Reassembler,
  wireCodec,
  type CodecLimits,
  type Frame,
  type Limits,
  type ReassemblerOptions,
} from './wire/index.js';
export * from './protocol/index.js';
