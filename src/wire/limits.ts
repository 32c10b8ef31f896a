/**
 * The one set of limits on what arrives from another node. The codec enforces the frame and
 * tensor limits while decoding (before any tensor is created); the protocol's schemas enforce
 * the same tensor limits plus the batch limit while validating a decoded message.
 */

/** Limits a frame and the message in it must respect. */
export interface Limits {
  /** Largest frame, in bytes (header plus buffers). Default 1.5 GiB. */
  maxFrameBytes: number;
  /** Largest tensor, in elements. Default 2^26 (256 MiB of float32). */
  maxTensorElements: number;
  /** Largest tensor rank. Default 6. */
  maxRank: number;
  /** Largest batch, in samples. Default 65536. */
  maxBatch: number;
}

/** The limits used when none are given. */
export const LIMITS: Readonly<Limits> = Object.freeze({ maxFrameBytes: 1.5 * 2 ** 30, maxTensorElements: 2 ** 26, maxRank: 6, maxBatch: 65_536 });

/** The limits the codec reads (the old name; the same object type as {@link Limits}). */
export type CodecLimits = Limits;
/** The old name of {@link LIMITS}. */
export const DEFAULT_LIMITS: Readonly<Limits> = LIMITS;
