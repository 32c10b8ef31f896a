/**
 * Messages of Downpour SGD (Dean et al., "Large Scale Distributed Deep Networks", NIPS 2012):
 * model replicas fetch parameters from, and push gradients to, parameter shards; a host starts
 * a replica from a {@link ReplicaSpec}. Tensors travel as {@link NamedTensor}s, one per
 * parameter or row range of one (`<name>[<from>:<to>]`).
 */
import type { ActorRef } from '../actor/index.js';
import type { DataSpec } from '../data/index.js';
import type { ErrorInfo } from '../errors.js';
import type { NamedTensor, OptimizerSpec } from '../optim/index.js';
import type { LayerConfig } from './nodes.js';

/**
 * Asks a shard for its parameters. With a bounded delay (`maxDelay`), the shard answers only
 * once `clock` is at most `maxDelay` ahead of the slowest replica's clock (stale synchronous
 * parallel; Ho et al., NIPS 2013; Li et al., OSDI 2014).
 */
export interface PsFetch {
  readonly type: 'ps.fetch';
  /** The replica's id (with authorization, its node id or `<node>/<name>`). */
  readonly replica: string;
  /** Pushes the replica has made so far. */
  readonly clock: number;
  readonly replyTo: ActorRef<PsReply>;
}

/** Gradients of one replica, summed over its last `nPush` batches (each the gradient of a batch's mean loss). */
export interface PsPush {
  readonly type: 'ps.push';
  readonly replica: string;
  /** Pushes the replica has made, this one included (1, 2, …). */
  readonly clock: number;
  /** The shard version the gradients were computed at (from its `ps.params`): staleness is the shard's version minus this. */
  readonly version: number;
  /** One gradient per parameter the shard owns, by the shard's names and shapes (float32). */
  readonly grads: NamedTensor[];
  readonly replyTo?: ActorRef<PsReply>;
}

/** A replica takes part from `clock` on: the bounded delay waits for it. */
export interface PsJoin {
  readonly type: 'ps.join';
  readonly replica: string;
  readonly clock: number;
  /** The node it runs on: when that node goes down, the replica leaves. */
  readonly node?: string;
}

/** A replica is done (or died): the bounded delay no longer waits for it. */
export interface PsLeave {
  readonly type: 'ps.leave';
  readonly replica: string;
}

/** Asks for a shard's state (parameters, optimizer slots, version), e.g. for a checkpoint. */
export interface PsGetState {
  readonly type: 'ps.getState';
  readonly replyTo: ActorRef<PsReply>;
}

/** Replaces a shard's state (checked by name and shape; all or nothing). */
export interface PsSetState {
  readonly type: 'ps.setState';
  readonly version: number;
  readonly params: NamedTensor[];
  readonly optimizer: NamedTensor[];
  readonly replyTo: ActorRef<PsReply>;
}

/** Asks for a shard's statistics. */
export interface PsGetStats {
  readonly type: 'ps.getStats';
  readonly replyTo: ActorRef<PsReply>;
}

/** Messages a parameter shard handles. */
export type PsMessage = PsFetch | PsPush | PsJoin | PsLeave | PsGetState | PsSetState | PsGetStats;

/** A shard's parameters (copies; the receiver owns them). */
export interface PsParams {
  readonly type: 'ps.params';
  readonly shard: number;
  /** Updates applied so far. */
  readonly version: number;
  readonly params: NamedTensor[];
}

/** A push was applied. */
export interface PsPushed {
  readonly type: 'ps.pushed';
  readonly shard: number;
  readonly version: number;
  /** Updates applied between the fetch the gradients were computed at and this one. */
  readonly staleness: number;
}

/** A shard's state (copies). */
export interface PsState {
  readonly type: 'ps.state';
  readonly shard: number;
  readonly version: number;
  readonly params: NamedTensor[];
  readonly optimizer: NamedTensor[];
  readonly optimizerName: string;
}

/** Answer to {@link PsSetState}. */
export interface PsStateSet {
  readonly type: 'ps.stateSet';
  readonly error?: ErrorInfo;
}

/** A shard's statistics. */
export interface PsStats {
  readonly type: 'ps.stats';
  readonly shard: number;
  readonly version: number;
  readonly pushes: number;
  /** `staleness[s]`: pushes applied with staleness `s` (the last entry counts `s ≥ length − 1`). */
  readonly staleness: number[];
  /** Pushes refused (unknown names, wrong shapes, non-finite values). */
  readonly refused: number;
  readonly replicas: { replica: string; clock: number }[];
}

/** A request failed (its error says why); nothing was applied. */
export interface PsFailed {
  readonly type: 'ps.failed';
  readonly error: ErrorInfo;
}

/** Replies of a parameter shard. */
export type PsReply = PsParams | PsPushed | PsState | PsStateSet | PsStats | PsFailed;

/** One part a shard owns: a whole parameter, or rows `[from, to)` of one. */
export interface ShardPart {
  /** The part's name on the shard: `param`, or `param[from:to]`. */
  readonly name: string;
  readonly param: string;
  readonly rows?: readonly [number, number];
}

/** A shard as a replica sees it: its ref and what it owns. */
export interface PsShardInfo {
  readonly ref: ActorRef<PsMessage>;
  readonly parts: readonly ShardPart[];
}

/**
 * A replica's model as data: a chain of gates as layer configs (trained with a loss by name), or
 * a module on the replica's own disk whose export is a `DownpourModel` (DeepDist's
 * `gradient`/`descent`), referred to by path and export name: no code crosses the wire.
 */
export type ModelSpec =
  | { kind: 'layers'; inputShape: number[]; gates: { name: string; layers: LayerConfig[] }[]; loss?: string; seed?: number }
  | { kind: 'module'; path: string; export?: string };

/** A model replica as data, started on a node by `host.spawnReplica`. */
export interface ReplicaSpec {
  /** The replica's id on the shards. */
  readonly replica: string;
  readonly model: ModelSpec;
  readonly data: DataSpec;
  readonly batchSize: number;
  readonly epochs: number;
  /** Fetch every this many batches (Downpour's n_fetch). Default 1. */
  readonly nFetch?: number;
  /** Push every this many batches (n_push). Default 1. */
  readonly nPush?: number;
  /** Wait at a fetch while more than this many pushes ahead of the slowest replica; 0 is synchronous SGD. Default: no bound. */
  readonly maxDelay?: number;
  readonly seed?: number;
}

/** What a running replica reports. */
export interface ReplicaReport {
  readonly type: 'replica.report';
  readonly replica: string;
  readonly event: 'step' | 'done' | 'failed';
  /** step: `{ step, epoch, loss }`; done: `ReplicaSummary`; failed: an ErrorInfo. */
  readonly payload: unknown;
}

/** The optimizer a shard applies, or none where the model's `descent` does. */
export type ShardRule = OptimizerSpec;
