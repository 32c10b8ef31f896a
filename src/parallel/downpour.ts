/**
 * Data-parallel training with Downpour SGD (Dean et al., "Large Scale Distributed Deep
 * Networks", NIPS 2012) through DeepDist's entry point (`train(model, data, gradient, descent)`):
 * {@link trainDistributed} starts parameter shards on this thread and model replicas on the main
 * thread, in worker threads or in child processes, each replica on its own data, and returns the
 * trained parameters with every replica's summary and the shards' staleness statistics.
 */
import type * as tf from '@tensorflow/tfjs';
import { ActorSystem, type ActorRef } from '../actor/index.js';
import { type DataSpec, providerFromSpec } from '../data/index.js';
import { spawnProcessNode, spawnWorkerNode, hostRef, type ProcessNode, type WorkerNode } from '../deploy/index.js';
import { AkkordeonError, fromErrorInfo, InvalidArgumentError, TransportError } from '../errors.js';
import type { OptimizerSpec } from '../optim/index.js';
import type { HostMessage, HostReply, ModelSpec, PsMessage, PsReply, PsShardInfo, PsStats, ReplicaReport, ReplicaSpec, ShardPart } from '../protocol/index.js';
import { cutParts, type DownpourModel, joinParts, modelFromSpec, ParameterShard, planShards, type ReplicaSummary, runReplica, STALENESS_BUCKETS } from '../ps/index.js';

/** Where replicas run. */
export type ReplicaPlacement = 'main' | 'worker' | 'process';

/** Options of {@link trainDistributed}. */
export interface TrainDistributedOptions {
  /**
   * The model every replica trains: a `ModelSpec` (a chain of gates as layer configs, or a module
   * on each node's disk exporting a `DownpourModel`), or, with `placement: 'main'`, a function
   * making a `DownpourModel` (called once for the shards and once per replica).
   */
  model: ModelSpec | (() => DownpourModel | Promise<DownpourModel>);
  /** Each replica's data: one spec per replica, or a function of the replica's index. */
  data: DataSpec[] | ((replica: number) => DataSpec);
  replicas: number;
  /** Parameter shards (on this thread). Default 1. */
  shards?: number;
  /** The shards' update rule; default AdaGrad with learning rate 0.1 (Downpour's). Ignored where the model has `descent`. */
  optimizer?: OptimizerSpec;
  /** Default `'main'`. */
  placement?: ReplicaPlacement;
  batchSize: number;
  epochs: number;
  /** Fetch every this many batches (n_fetch). Default 1. */
  nFetch?: number;
  /** Push every this many batches (n_push). Default 1. */
  nPush?: number;
  /** Bounded delay in pushes (0: synchronous SGD); default none. */
  maxDelay?: number;
  /** The actor system to run in (its shards and replicas are stopped at the end); default a new one. */
  system?: ActorSystem;
  /** Called after every batch of every replica. */
  onStep?: (replica: string, info: { step: number; epoch: number; loss: number }) => void;
  /** Called once the shards run, with their refs (e.g. to checkpoint them, or to stop a replica's node). */
  onStarted?: (job: DownpourJob) => void;
}

/** A running job, as {@link TrainDistributedOptions.onStarted} sees it. */
export interface DownpourJob {
  readonly system: ActorSystem;
  readonly shards: readonly PsShardInfo[];
  /** The nodes replicas run on (worker and process placements), by replica id. */
  readonly nodes: ReadonlyMap<string, WorkerNode | ProcessNode>;
}

/** What {@link trainDistributed} returns. */
export interface DistributedResult {
  /** The trained parameters, by name (the caller owns them). */
  params: Map<string, tf.Tensor>;
  /** Each replica's summary, or the error it ended with (a replica that died). */
  replicas: (ReplicaSummary | { replica: string; error: Error })[];
  /** Each shard's statistics. */
  stats: PsStats[];
  /** Pushes applied with staleness s (summed over shards; the last entry is s ≥ 63). */
  staleness: number[];
  /** Wall time, s. */
  seconds: number;
}

/** The shard infos of a job whose parameters are `init`, spawned in `system`. */
export function spawnShards(system: ActorSystem, init: ReadonlyMap<string, tf.Tensor>, count: number, rule: { optimizer?: OptimizerSpec; descent?: DownpourModel['descent']; maxDelay?: number }): PsShardInfo[] {
  const plan = planShards([...init].map(([name, t]) => ({ name, shape: t.shape })), count);
  return plan.map((parts, index) => ({
    parts,
    ref: system.spawn<PsMessage>(() => new ParameterShard({ index, params: cutParts(init, parts), optimizer: rule.optimizer ?? { type: 'adagrad', learningRate: 0.1 }, descent: rule.descent, maxDelay: rule.maxDelay }), { name: `ps-shard-${index}` }),
  }));
}

/**
 * The parameters of a job's shards, joined (the caller owns them).
 * @throws the shard's error, or AskTimeoutError.
 */
export async function shardParameters(system: ActorSystem, shards: readonly PsShardInfo[], timeoutMs = 30_000): Promise<Map<string, tf.Tensor>> {
  const states = await Promise.all(shards.map((s) => system.ask<PsReply, PsMessage>(s.ref, (replyTo) => ({ type: 'ps.getState', replyTo }), timeoutMs)));
  const parts: { part: ShardPart; tensor: tf.Tensor }[] = [];
  states.forEach((state, i) => {
    if (state.type !== 'ps.state') throw new AkkordeonError(`Shard ${i} answered '${state.type}' to a state request.`);
    state.optimizer.forEach((o) => o.tensor.dispose());
    const owned = new Map((shards[i] as PsShardInfo).parts.map((p) => [p.name, p]));
    for (const p of state.params) {
      const part = owned.get(p.name);
      if (part) parts.push({ part, tensor: p.tensor });
      else p.tensor.dispose();
    }
  });
  return joinParts(parts);
}

/**
 * Trains a model by Downpour SGD: shards on this thread, `replicas` replicas where `placement`
 * says, each on its own data. Resolves once every replica has finished or died (a dead replica
 * neither stalls the others nor the shards: it leaves them).
 * @throws InvalidArgumentError for bad options (a function model off the main thread, fewer data
 *   specs than replicas, …); the model's errors at start.
 */
export async function trainDistributed(o: TrainDistributedOptions): Promise<DistributedResult> {
  const placement = o.placement ?? 'main';
  if (!Number.isInteger(o.replicas) || o.replicas < 1) throw new InvalidArgumentError(`Give at least one replica, got ${o.replicas}.`);
  if (typeof o.model === 'function' && placement !== 'main') throw new InvalidArgumentError(`A model given as a function runs only on the main thread; give a ModelSpec (layers, or a module on disk) for ${placement} replicas.`);
  const dataOf = (r: number): DataSpec => {
    const spec = Array.isArray(o.data) ? o.data[r] : o.data(r);
    if (!spec) throw new InvalidArgumentError(`No data for replica ${r}: give one data spec per replica (${o.replicas}).`);
    return spec;
  };
  const makeModel = (): Promise<DownpourModel> => (typeof o.model === 'function' ? Promise.resolve(o.model()) : modelFromSpec(o.model));
  const system = o.system ?? new ActorSystem({ name: 'downpour' });
  const started = performance.now();
  const server = await makeModel();
  const init = new Map(server.init().map((p) => [p.name, p.tensor]));
  const shards = spawnShards(system, init, o.shards ?? 1, { optimizer: o.optimizer, descent: server.descent, maxDelay: o.maxDelay });
  init.forEach((t) => t.dispose());
  const ids = Array.from({ length: o.replicas }, (_, r) => `replica-${r}`);
  for (const replica of ids) shards.forEach((s) => s.ref.tell({ type: 'ps.join', replica, clock: 0 }));
  const nodes = new Map<string, WorkerNode | ProcessNode>();
  const leave = (replica: string) => shards.forEach((s) => s.ref.tell({ type: 'ps.leave', replica }));
  const base = { batchSize: o.batchSize, epochs: o.epochs, nFetch: o.nFetch, nPush: o.nPush, maxDelay: o.maxDelay };
  try {
    const runs = ids.map(async (replica, r): Promise<ReplicaSummary | { replica: string; error: Error }> => {
      try {
        if (placement === 'main') {
          const model = await makeModel();
          try {
            const data = await providerFromSpec(dataOf(r));
            return await runReplica({ ...base, replica, system, shards, model, data, onStep: o.onStep && ((info) => o.onStep?.(replica, info)) });
          } finally {
            model.dispose?.();
          }
        }
        const node = placement === 'worker' ? await spawnWorkerNode(system, { name: replica }) : await spawnProcessNode(system, { name: replica });
        nodes.set(replica, node);
        return await remoteReplica(system, node.node, { ...base, replica, model: o.model as ModelSpec, data: dataOf(r) }, shards, o.onStep);
      } catch (error) {
        leave(replica);
        return { replica, error: error as Error };
      }
    });
    o.onStarted?.({ system, shards, nodes });
    const replicas = await Promise.all(runs);
    const stats = await Promise.all(shards.map(async (s) => (await system.ask<PsReply, PsMessage>(s.ref, (replyTo) => ({ type: 'ps.getStats', replyTo }))) as PsStats));
    const staleness = new Array<number>(STALENESS_BUCKETS).fill(0);
    stats.forEach((s) => s.staleness.forEach((n, i) => (staleness[i] = (staleness[i] as number) + n)));
    const params = await shardParameters(system, shards);
    return { params, replicas, stats, staleness, seconds: (performance.now() - started) / 1000 };
  } finally {
    await Promise.all([...nodes.values()].map((n) => n.close().catch(() => undefined)));
    shards.forEach((s) => system.stop(s.ref));
    server.dispose?.();
    if (!o.system) system.shutdown();
  }
}

/** Starts a replica on `node`'s host and resolves with its summary; rejects when it fails or its node goes down. */
function remoteReplica(system: ActorSystem, node: string, spec: ReplicaSpec, shards: PsShardInfo[], onStep?: TrainDistributedOptions['onStep']): Promise<ReplicaSummary> {
  return new Promise<ReplicaSummary>((resolve, reject) => {
    let settled = false;
    const finish = (error?: Error, summary?: ReplicaSummary) => {
      if (settled) return;
      settled = true;
      system.events.off('nodeDown', onDown);
      system.stop(reporter);
      if (error) reject(error);
      else resolve(summary as ReplicaSummary);
    };
    const onDown = (down: string) => down === node && finish(new TransportError(`Replica ${spec.replica}'s node ${node} went down.`));
    system.events.on('nodeDown', onDown);
    const reporter: ActorRef<ReplicaReport | HostReply> = system.spawn<ReplicaReport | HostReply>(() => ({
      receive: (m) => {
        if (m.type === 'host.failed') finish(fromErrorInfo(m.error));
        if (m.type !== 'replica.report') return;
        if (m.event === 'step') onStep?.(m.replica, m.payload as { step: number; epoch: number; loss: number });
        else if (m.event === 'done') finish(undefined, m.payload as ReplicaSummary);
        else finish(fromErrorInfo(m.payload as never));
      },
    }), { name: `reporter-${spec.replica}` });
    hostRef(system, node).tell({ type: 'host.spawnReplica', spec, shards, reporter: reporter as ActorRef<ReplicaReport>, replyTo: reporter as ActorRef<HostReply> } satisfies HostMessage);
  });
}
