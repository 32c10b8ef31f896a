/**
 * A Downpour SGD model replica (Dean et al., NIPS 2012, §4.1, Algorithm "Downpour SGD client"):
 * it trains a full copy of the model on its own data, fetches fresh parameters from the shards
 * every `nFetch` batches and pushes its gradients, summed, every `nPush` batches. Fetches do not
 * stall compute: the replica goes on with the parameters it has until the new ones arrive,
 * unless a bounded delay (`maxDelay`) makes it wait at a fetch.
 */
import * as tf from '@tensorflow/tfjs';
import type { ActorRef, ActorSystem } from '../actor/index.js';
import type { DataProvider } from '../data/index.js';
import { AkkordeonError, fromErrorInfo } from '../errors.js';
import type { PsReply, PsShardInfo, ShardPart } from '../protocol/index.js';
import type { DownpourModel } from './model.js';
import { cutParts, joinParts } from './partition.js';

/** Parameters fetched from every shard, joined, and the version of each shard they are at. */
export interface Fetched {
  params: Map<string, tf.Tensor>;
  versions: number[];
}

/**
 * A replica's connection to the shards: fetch all parameters, push gradients cut into each
 * shard's parts. Location-transparent: shards may be anywhere the system routes to.
 */
export class ParameterClient {
  /** Pushes sent and not yet acknowledged, summed over shards. */
  inFlight = 0;
  /** The first push a shard refused (its named error), if any. */
  refusal?: Error;
  private readonly acks: ActorRef<PsReply>;
  private waiters: { max: number; resolve: () => void }[] = [];

  constructor(
    private readonly system: ActorSystem,
    readonly shards: readonly PsShardInfo[],
    readonly replica: string,
    private readonly askTimeoutMs = 600_000,
  ) {
    this.acks = system.spawn<PsReply>(() => ({
      receive: (m) => {
        this.inFlight--;
        if (m.type === 'ps.failed') this.refusal ??= fromErrorInfo(m.error);
        this.waiters = this.waiters.filter((w) => (this.inFlight <= w.max ? (w.resolve(), false) : true));
      },
    }), { name: `acks-${replica}` });
  }

  /** Resolves once at most `max` pushes are unacknowledged (backpressure: a replica never runs further ahead of the shards than that). */
  settled(max: number): Promise<void> {
    if (this.inFlight <= max) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ max, resolve }));
  }

  /** Stops listening for acknowledgements. */
  close(): void {
    this.system.stop(this.acks);
    this.waiters.forEach((w) => w.resolve());
    this.waiters = [];
  }

  /** Tells every shard that this replica takes part from `clock` on (for the bounded delay). */
  join(clock: number): void {
    for (const s of this.shards) s.ref.tell({ type: 'ps.join', replica: this.replica, clock, node: this.system.node });
  }

  /** Tells every shard that this replica is done. */
  leave(): void {
    for (const s of this.shards) s.ref.tell({ type: 'ps.leave', replica: this.replica });
  }

  /**
   * Every shard's parameters, joined into whole tensors (the caller owns them).
   * @throws the shard's named error, or AskTimeoutError when a shard does not answer.
   */
  async fetch(clock: number): Promise<Fetched> {
    const replies = await Promise.all(this.shards.map((s) => this.system.ask<PsReply, never>(s.ref as never, (replyTo) => ({ type: 'ps.fetch', replica: this.replica, clock, replyTo }) as never, this.askTimeoutMs)));
    const parts: { part: ShardPart; tensor: tf.Tensor }[] = [];
    const versions: number[] = [];
    let failure: Error | undefined;
    replies.forEach((reply, i) => {
      if (reply.type !== 'ps.params') {
        failure ??= reply.type === 'ps.failed' ? fromErrorInfo(reply.error) : new AkkordeonError(`Unexpected reply '${reply.type}' to a fetch.`);
        return;
      }
      versions[i] = reply.version;
      const owned = new Map((this.shards[i] as PsShardInfo).parts.map((p) => [p.name, p]));
      for (const { name, tensor } of reply.params) {
        const part = owned.get(name);
        if (part) parts.push({ part, tensor });
        else tensor.dispose();
      }
    });
    if (failure) {
      parts.forEach((p) => p.tensor.dispose());
      throw failure;
    }
    return { params: joinParts(parts), versions };
  }

  /** Pushes gradients (by parameter name; not disposed) as push number `clock`, computed at `versions`. */
  push(grads: ReadonlyMap<string, tf.Tensor>, clock: number, versions: readonly number[]): void {
    this.shards.forEach((s, i) => s.ref.tell({ type: 'ps.push', replica: this.replica, clock, version: versions[i] ?? 0, grads: cutParts(grads, s.parts), replyTo: this.acks }));
    this.inFlight += this.shards.length;
  }
}

/** Options of {@link runReplica}. */
export interface ReplicaOptions {
  /** The replica's id on the shards. */
  replica: string;
  system: ActorSystem;
  shards: readonly PsShardInfo[];
  model: DownpourModel;
  data: DataProvider;
  batchSize: number;
  epochs: number;
  /** Fetch every this many batches (n_fetch). Default 1. */
  nFetch?: number;
  /** Push every this many batches (n_push). Default 1. */
  nPush?: number;
  /** Bounded delay (see `ParameterShard`): with it, the replica waits at each fetch for the answer. */
  maxDelay?: number;
  shuffle?: boolean;
  /**
   * Pushes (per shard) a replica may have sent and not yet seen applied before it waits: bounds
   * how far a shard's queue, and so the staleness, can grow when the shards are slower than the
   * replicas. Default 2.
   */
  maxPendingPushes?: number;
  /** Stops the replica after its current batch. */
  signal?: AbortSignal;
  /** Called after every batch. */
  onStep?: (info: { step: number; epoch: number; loss: number }) => void;
}

/** What a replica did. */
export interface ReplicaSummary {
  replica: string;
  /** Batches trained. */
  steps: number;
  pushes: number;
  fetches: number;
  /** Mean loss of the last epoch's batches. */
  loss: number;
  /** Samples per second over the run. */
  samplesPerSecond: number;
  stoppedBy: 'epochs' | 'signal';
}

const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * Runs one replica to the end of its epochs (or its signal), then pushes what it has left and
 * leaves. Tensor memory returns to where it was.
 * @throws the shards' named errors (a fetch that fails), and the model's.
 */
export async function runReplica(o: ReplicaOptions): Promise<ReplicaSummary> {
  const nFetch = o.nFetch ?? 1;
  const nPush = o.nPush ?? 1;
  const client = new ParameterClient(o.system, o.shards, o.replica);
  const started = performance.now();
  client.join(0);
  let current = await client.fetch(0);
  let fetches = 1;
  let next: Fetched | undefined;
  let pending: Promise<void> | undefined;
  let fetchError: unknown;
  let accumulated: Map<string, tf.Tensor> | undefined;
  let inAccumulator = 0;
  let clock = 0;
  let step = 0;
  let samples = 0;
  let lossSum = 0;
  let lossCount = 0;
  let stoppedBy: ReplicaSummary['stoppedBy'] = 'epochs';
  const swap = () => {
    if (!next) return;
    current.params.forEach((t) => t.dispose());
    current = next;
    next = undefined;
  };
  const push = () => {
    if (!accumulated) return;
    clock++;
    client.push(accumulated, clock, current.versions);
    accumulated.forEach((t) => t.dispose());
    accumulated = undefined;
    inAccumulator = 0;
  };
  try {
    training: for (let epoch = 0; epoch < o.epochs; epoch++) {
      lossSum = 0;
      lossCount = 0;
      for (let it = o.data.batches(epoch, o.batchSize, o.shuffle ?? true), r = it.next(); !r.done; r = it.next()) {
        const batch = r.value;
        if (fetchError) throw fetchError;
        swap();
        let out;
        try {
          out = o.model.gradient(current.params, batch);
        } finally {
          batch.x.dispose();
          batch.y.dispose();
        }
        samples += batch.x.shape[0] as number;
        step++;
        lossSum += out.loss;
        lossCount++;
        if (!accumulated) accumulated = new Map(out.grads.map((g) => [g.name, g.tensor]));
        else {
          for (const g of out.grads) {
            const sum = accumulated.get(g.name);
            accumulated.set(g.name, sum ? tf.add(sum, g.tensor) : tf.clone(g.tensor));
            sum?.dispose();
            g.tensor.dispose();
          }
        }
        inAccumulator++;
        if (inAccumulator >= nPush) {
          push();
          await client.settled((o.maxPendingPushes ?? 2) * o.shards.length);
          if (client.refusal) throw client.refusal;
        }
        if (step % nFetch === 0 && !pending) {
          fetches++;
          const at = clock;
          pending = client.fetch(at).then(
            (fetched) => {
              next?.params.forEach((t) => t.dispose());
              next = fetched;
              pending = undefined;
            },
            (error: unknown) => {
              fetchError = error;
              pending = undefined;
            },
          );
          if (o.maxDelay !== undefined) await pending;
        }
        o.onStep?.({ step, epoch, loss: out.loss });
        if (o.signal?.aborted) {
          stoppedBy = 'signal';
          break training;
        }
        await turn(); // lets replies (fetched parameters) in
      }
    }
    push();
    await pending;
  } finally {
    client.leave();
    client.close();
    accumulated?.forEach((t) => t.dispose());
    current.params.forEach((t) => t.dispose());
    next?.params.forEach((t) => t.dispose());
  }
  if (fetchError) throw fetchError;
  const seconds = (performance.now() - started) / 1000;
  return { replica: o.replica, steps: step, pushes: clock, fetches, loss: lossCount ? lossSum / lossCount : NaN, samplesPerSecond: samples / seconds, stoppedBy };
}
