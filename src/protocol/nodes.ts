/**
 * Messages of the host actor every node runs (build and stop gates, start placed sentinels) and
 * of sentinels (their control messages), and the data they carry: gates and sentinels as data
 * ({@link GateConfig}, {@link SentinelSpec}).
 */
import type { ActorFailed, ActorRef } from '../actor/index.js';
import type { DataSpec } from '../data/index.js';
import type { ErrorInfo } from '../errors.js';
import type { OptimizerSpec } from '../optim/index.js';
import type { GateMessage, SentinelReply } from './messages.js';
import type { PsShardInfo, ReplicaReport, ReplicaSpec } from './ps.js';

/** A tfjs-layers layer as data: its registered class name and its `getConfig()`. */
export interface LayerConfig {
  className: string;
  config: Record<string, unknown>;
}

/** Everything needed to build a gate anywhere. */
export interface GateConfig {
  name: string;
  layers: LayerConfig[];
  /** Per-sample input shape, e.g. `[784]`. */
  inputShape: number[];
  optimizer: OptimizerSpec;
  seed?: number;
  checkFinite?: boolean;
}

/** Where a placed sentinel's samples come from: any {@link DataSpec} (MNIST, tensors sent along, CSV, JSON-lines or IDX files, or a provider module on the node). */
export type SentinelDataSpec = DataSpec;

/** A sentinel as data: the sentinel's options without functions, with its data as a {@link SentinelDataSpec} (see `SentinelOptions`). */
export interface SentinelSpec {
  name: string;
  /** `train`, `validate` or `test` (a `predict` sentinel returns its outputs, so it runs where they are wanted). */
  mode: 'train' | 'validate' | 'test';
  data: SentinelDataSpec;
  batchSize?: number;
  concurrency?: number;
  epochs?: number;
  /** A name from `LOSSES`; default `'softmaxCrossEntropy'` for class labels, else `'meanSquaredError'`. */
  loss?: string;
  target?: { metric: string; atLeast?: number; atMost?: number };
  timeLimitMs?: number;
  batchTimeoutMs?: number;
  trigger?: 'auto' | 'manual';
  shuffle?: boolean;
  onBatchError?: 'stop' | 'skip';
}

/** Control messages of a sentinel (besides the gates' replies). */
export type SentinelControl =
  | { type: 'sentinel.start'; first: ActorRef<GateMessage>; last: ActorRef<GateMessage> }
  | { type: 'sentinel.requestPass' }
  | { type: 'sentinel.finish' }
  | { type: 'sentinel.batchTimeout'; batch: number }
  /** Fails every batch in flight (e.g. a node hosting gates went down). */
  | { type: 'sentinel.failInFlight'; error: ErrorInfo }
  /**
   * A node hosting gates went down: give up the batches in flight (counted lost, each reported
   * as a `batchError` with `error`) and send no more until `sentinel.connect`.
   */
  | { type: 'sentinel.hold'; error: ErrorInfo }
  /** The network is whole again (after `sentinel.hold`): send the next batches to these gates. */
  | { type: 'sentinel.connect'; first: ActorRef<GateMessage>; last: ActorRef<GateMessage> };

/** Everything a sentinel's mailbox accepts. */
export type SentinelMessage = SentinelReply | SentinelControl;

/** Messages a host understands. */
export type HostMessage =
  | { readonly type: 'host.spawnGate'; readonly config: GateConfig; readonly replyTo: ActorRef<HostReply> }
  | { readonly type: 'host.stopGate'; readonly gate: ActorRef<GateMessage>; readonly replyTo?: ActorRef<HostReply> }
  | { readonly type: 'host.ping'; readonly replyTo: ActorRef<HostReply> }
  | {
      readonly type: 'host.spawnSentinel';
      readonly spec: SentinelSpec;
      /** The network's first and last gates. */
      readonly first: ActorRef<GateMessage>;
      readonly last: ActorRef<GateMessage>;
      /** Receives the sentinel's events as {@link SentinelReport}s. */
      readonly reporter: ActorRef<SentinelReport>;
      readonly replyTo: ActorRef<HostReply>;
    }
  | {
      /** Starts a Downpour model replica on this node, training against `shards`. */
      readonly type: 'host.spawnReplica';
      readonly spec: ReplicaSpec;
      readonly shards: PsShardInfo[];
      /** Receives the replica's {@link ReplicaReport}s. */
      readonly reporter: ActorRef<ReplicaReport>;
      readonly replyTo: ActorRef<HostReply>;
    }
  | ActorFailed;

/**
 * A placed sentinel's event, sent to its reporter: `batch`, `epoch` and `batchError` carry the
 * arguments of the sentinel's event of that name; `done` its summary; `failed` the error
 * (`ErrorInfo`) its `done` rejected with.
 */
export type SentinelReport = { readonly type: 'sentinel.report'; readonly event: 'batch' | 'epoch' | 'batchError' | 'done' | 'failed'; readonly payload: unknown };

/** Replies of a host. */
export type HostReply =
  | { readonly type: 'host.gateSpawned'; readonly gate: ActorRef<GateMessage>; readonly inputShape: number[]; readonly outputShape: number[] }
  | { readonly type: 'host.gateStopped' }
  | { readonly type: 'host.pong'; readonly node: string; readonly backend: string; readonly pid: number }
  | { readonly type: 'host.sentinelSpawned'; readonly sentinel: ActorRef<SentinelMessage> }
  | { readonly type: 'host.replicaSpawned'; readonly replica: string }
  | { readonly type: 'host.failed'; readonly error: ErrorInfo };

