/**
 * The wire format: a message becomes a frame (a JSON header plus one buffer per tensor) and
 * back, with actor refs as addresses; frames serialise to bytes with a sparse encoding of
 * mostly-zero tensors, split into chunks for a bus with a payload limit, and reuse pooled
 * buffers. {@link wireCodec} is the codec the transports install in an actor system. One set of
 * {@link Limits} bounds what a frame may carry; the protocol's schemas check the same limits.
 */
export {
  bytesToFrame,
  decodeMessage,
  encodeMessage,
  frameToBytes,
  sparseDecode,
  sparseEncode,
  tensorsCopyBuffers,
  transferList,
  useWireCodec,
  wireCodec,
  type Frame,
} from './codec.js';
export { CHUNK_HEADER_BYTES, CHUNK_MAGIC, Chunker, isChunk, Reassembler, type ReassemblerOptions } from './chunk.js';
export { DEFAULT_LIMITS, LIMITS, type CodecLimits, type Limits } from './limits.js';
export { BufferPool, framePool } from './pool.js';
