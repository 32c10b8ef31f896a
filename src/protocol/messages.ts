/**
 * The wire protocol between sentinels and gates. Whoever receives a message owns the tensors in
 * it and disposes them. A batch is identified by (sentinel id, batch number).
 *
 * Training:  sentinel ─forward→ gate 0 ─forward→ … gate n ─logits→ sentinel
 *            sentinel ─backward→ gate n ─backward→ … gate 0 ─backwardDone→ sentinel
 * Evaluation: sentinel ─predict→ gate 0 … gate n ─predictions→ sentinel
 * Failure:   a gate that fails on a batch sends `gate.abort` upstream; every gate frees the batch;
 *            gate 0 tells the sentinel `batchFailed`. A sentinel aborts a batch the same way.
 */
import type * as tf from '@tensorflow/tfjs';
import type { ActorRef } from '../actor/index.js';
import type { NamedTensor } from '../optim/index.js';

import type { ErrorInfo } from '../errors.js';

export type { ErrorInfo };

/** Training forward pass of one batch: `x` is `[batch, ...inputShape]`, float32. */
export interface GateForward {
  readonly type: 'gate.forward';
  readonly sentinel: ActorRef<SentinelReply>;
  readonly batch: number;
  readonly x: tf.Tensor;
}

/** Backward pass: `dy` is the loss gradient w.r.t. this gate's output, `[batch, ...outputShape]`. */
export interface GateBackward {
  readonly type: 'gate.backward';
  readonly sentinel: ActorRef<SentinelReply>;
  readonly batch: number;
  readonly dy: tf.Tensor;
  /** Largest weight-version lag seen so far downstream of this gate (0 at the sentinel). */
  readonly staleness?: number;
}

/** Evaluation forward pass (dropout off, nothing kept). */
export interface GatePredict {
  readonly type: 'gate.predict';
  readonly sentinel: ActorRef<SentinelReply>;
  readonly batch: number;
  readonly x: tf.Tensor;
}

/** Drops a batch's forward state; travels upstream to gate 0, which reports `batchFailed`. */
export interface GateAbort {
  readonly type: 'gate.abort';
  readonly sentinel: ActorRef<SentinelReply>;
  readonly batch: number;
  readonly error: ErrorInfo;
}

/**
 * Frees every cached tensor of a sentinel (it left, or died), or of every sentinel on a node.
 * Give `sentinelId`, `node`, or both (that sentinel, only if it is on that node); one of them.
 */
export interface GateDetach {
  readonly type: 'gate.detach';
  /** A sentinel's id (its ref's `id`). */
  readonly sentinelId?: string;
  /** A node id: every sentinel hosted there (it went down), or with `sentinelId`, the node that sentinel must be on. */
  readonly node?: string;
  readonly replyTo?: ActorRef<GateDetached>;
}

/** Wires a gate to its neighbours; a gate without `next` answers the sentinel itself. */
export interface GateConnect {
  readonly type: 'gate.connect';
  readonly previous?: ActorRef<GateMessage>;
  readonly next?: ActorRef<GateMessage>;
  /**
   * Set on a gate split by output units (tensor parallelism): its other shards, whose units
   * follow this gate's own units in this order.
   */
  readonly shards?: readonly ShardInfo[];
  /** Set on a shard: the gate it computes a slice of the output units for. */
  readonly primary?: PrimaryInfo;
}

/** One output-unit shard of a split gate, as its primary gate knows it. */
export interface ShardInfo {
  readonly ref: ActorRef<GateMessage>;
  /** Output units (columns of the layer) this shard computes. */
  readonly units: number;
}

/** A shard's view of the gate it serves. */
export interface PrimaryInfo {
  readonly ref: ActorRef<GateMessage>;
  /** Position of this shard in the primary's shard list, from 0. */
  readonly index: number;
  /** Whether the primary needs this shard's share of the input gradient (it is not the first gate). */
  readonly needDx: boolean;
}

/** A shard's output slice for one batch (training forward or predict), sent to its primary. */
export interface GateShardOutput {
  readonly type: 'gate.shardOutput';
  readonly sentinel: ActorRef<SentinelReply>;
  readonly batch: number;
  readonly shard: number;
  readonly predict: boolean;
  /** `[batch, units of the shard]`. */
  readonly y: tf.Tensor;
}

/** A shard's share of the input gradient for one batch, `[batch, ...inputShape]`; the primary sums the shares. */
export interface GateShardGradient {
  readonly type: 'gate.shardGradient';
  readonly sentinel: ActorRef<SentinelReply>;
  readonly batch: number;
  readonly shard: number;
  readonly dx: tf.Tensor;
}

/** A shard could not compute its slice of a batch; the primary fails the batch. */
export interface GateShardFailed {
  readonly type: 'gate.shardFailed';
  readonly sentinel: ActorRef<SentinelReply>;
  readonly batch: number;
  readonly predict: boolean;
  readonly error: ErrorInfo;
}

/** Asks for a copy of the gate's weights, optimizer state and layer configs. */
export interface GateGetState {
  readonly type: 'gate.getState';
  readonly replyTo: ActorRef<GateState>;
}

/** Replaces the gate's weights and optimizer state; validated first, applied all or nothing. */
export interface GateSetState {
  readonly type: 'gate.setState';
  readonly weights: NamedTensor[];
  readonly optimizer?: NamedTensor[];
  readonly replyTo: ActorRef<GateStateSet>;
}

/** Every message a gate understands. */
export type GateMessage =
  | GateForward
  | GateBackward
  | GatePredict
  | GateAbort
  | GateDetach
  | GateConnect
  | GateGetState
  | GateSetState
  | GateShardOutput
  | GateShardGradient
  | GateShardFailed;

/** Reply to `gate.detach`: how many batches of that sentinel were dropped. */
export interface GateDetached {
  readonly type: 'gate.detached';
  readonly dropped: number;
}

/** Reply to `gate.getState`; the receiver owns the tensors. */
export interface GateState {
  readonly type: 'gate.state';
  readonly gate: string;
  /** Weights by stable name (`layer<i>/<weight>`), trainable and non-trainable. */
  readonly weights: NamedTensor[];
  readonly optimizer: NamedTensor[];
  readonly optimizerName: string;
  /** tfjs-layers configs of the gate's layers, in order: `{ className, config }`. */
  readonly layers: { className: string; config: Record<string, unknown> }[];
  readonly inputShape: number[];
  readonly outputShape: number[];
}

/** Reply to `gate.setState`; `error` is set when nothing was changed. */
export interface GateStateSet {
  readonly type: 'gate.stateSet';
  readonly error?: ErrorInfo;
}

/** The last gate's output of a training forward pass: `logits` is `[batch, ...outputShape]`. */
export interface SentinelLogits {
  readonly type: 'sentinel.logits';
  readonly batch: number;
  readonly logits: tf.Tensor;
}

/** Gate 0 finished the batch's backward pass; `staleness` is the largest version lag seen. */
export interface SentinelBackwardDone {
  readonly type: 'sentinel.backwardDone';
  readonly batch: number;
  readonly staleness: number;
}

/** The last gate's output of an evaluation pass. */
export interface SentinelPredictions {
  readonly type: 'sentinel.predictions';
  readonly batch: number;
  readonly logits: tf.Tensor;
}

/** A gate rejected or failed the batch; every gate has freed it. */
export interface SentinelBatchFailed {
  readonly type: 'sentinel.batchFailed';
  readonly batch: number;
  readonly error: ErrorInfo;
}

/** Every message a gate sends to a sentinel. */
export type SentinelReply = SentinelLogits | SentinelBackwardDone | SentinelPredictions | SentinelBatchFailed;

