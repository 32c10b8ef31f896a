/**
 * Transports: how frames travel between actor systems. The {@link Frame} codec turns messages
 * into bytes and back (tensors as dtype, shape and bytes; refs as addresses); a {@link Link}
 * carries frames to a peer. In-process links come first; worker threads, child processes and
 * NATS follow the same interface.
 */
export { bytesToFrame, DEFAULT_LIMITS, decodeMessage, encodeMessage, frameToBytes, type CodecLimits, type Frame } from './codec.js';
export type { Link } from './link.js';
export { connectInMemory } from './memory.js';
export { spawnWorkerNode, type WorkerNode } from './worker.js';
export { spawnProcessNode, type ProcessNode } from './process.js';
export type { NodeOptions, RemoteNode } from './channel.js';
export { connectNats, DEFAULT_MAX_PAYLOAD, natsSubject, NatsNode, SUBJECT_TOKEN, type NatsNodeEvents, type NatsOptions } from './nats.js';
export { CHUNK_HEADER_BYTES, CHUNK_MAGIC, Chunker, isChunk, Reassembler, type ReassemblerOptions } from './chunk.js';
