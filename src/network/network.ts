// Over 400 lines: the Network class is one public entry point (create, attach, predict, state, close).
/**
 * A network: a chain of gates, plus the sentinels attached to it. Gates run on the main thread
 * (`new Network`) or wherever a placement puts them (`Network.create`: worker threads, child
 * processes). Sentinels attach and detach while training runs; detaching frees every tensor the
 * gates held for that sentinel.
 */
import * as tf from '@tensorflow/tfjs';
import { ActorSystem, type ActorRef, type Message } from '../actor/index.js';
import { ActorStoppedError, AkkordeonError, fromErrorInfo, InvalidArgumentError, toErrorInfo, TransportError } from '../errors.js';
import { Gate, type GateSpec } from '../gate/index.js';
import { type FreeTarget, GateChain } from './chain.js';
import { createOptimizer, DEFAULT_OPTIMIZER, type NamedTensor, Optimizer, type OptimizerSpec } from '../optim/index.js';
import { type GateMessage, type GateState, type SentinelReply, type ShardInfo } from '../protocol/index.js';
import { EventEmitter } from 'eventemitter3';
import type { Sentinel, SentinelEvents, SentinelMessage, SentinelSummary } from '../sentinel/index.js';
import { type SentinelSpec, specTensors } from '../sentinel/index.js';
import type { NodeOptions, RemoteNode } from '../transport/index.js';
import type { HostMessage, HostReply, SentinelReport } from '../deploy/index.js';
import { type Deployment, deployGates, spawnProcessNode, spawnWorkerNode, isPortable, type Placement, type PlacementSpec, planGates, resolvePlacement } from '../deploy/index.js';

/** Options of a {@link Network}. */
export interface NetworkOptions {
  /** Per-sample input shape of gate 0, e.g. `[784]`. */
  inputShape: number[];
  gates: GateSpec[];
  /**
   * Each gate's optimizer: a spec (`{ type: 'dcasgd', learningRate: 0.02, momentum: 0.9 }`) or a
   * factory; default `DEFAULT_OPTIMIZER` (DC-ASGD, learning rate 0.03, momentum 0.9). Gates off the main thread need a spec.
   */
  optimizer?: OptimizerSpec | (() => Optimizer);
  /** Actor system to host the gates; default a new one. */
  system?: ActorSystem;
  /** Seed for dropout masks (gate i uses seed + i). Default 0. */
  seed?: number;
  /** Timeout of control asks (state, detach), ms. Default 30000. */
  askTimeoutMs?: number;
  /**
   * Gates reject inputs and gradients holding NaN or ±Infinity before they touch the weights
   * (one reduction and read-back per message). Default true.
   */
  checkFinite?: boolean;
  /**
   * Where the gates run (`Network.create` only; `new Network` keeps them on the main thread):
   * `'auto'` (default; worker threads when the backend is wasm or cpu and cores are spare),
   * `'main'`, `'worker'` or `'process'` (one per gate), or one {@link PlacementSpec} per gate.
   */
  placement?: Placement;
  /** Options of the worker threads and child processes started for the gates (backend, modules). */
  nodeOptions?: Omit<NodeOptions, 'name'>;
}

/**
 * A sentinel running in a worker thread or child process of its own, started by
 * {@link Network.attachPlaced}. Its node is closed when it finishes, fails or is detached.
 */
export interface PlacedSentinel {
  readonly name: string;
  /** The sentinel actor on its node (for `sentinel.requestPass` and `sentinel.finish`). */
  readonly ref: ActorRef<SentinelMessage>;
  /** The worker thread or child process it runs in. */
  readonly node: RemoteNode;
  /** Its `batch`, `epoch`, `batchError` and `done` events, re-emitted on this thread. */
  readonly events: EventEmitter<SentinelEvents>;
  /**
   * Resolves with its summary once it finishes and the gates have freed its state; rejects with
   * its error, or with a TransportError when its node goes down or the network is disposed.
   */
  readonly done: Promise<SentinelSummary>;
  /** Runs one more pass (a sentinel with `trigger: 'manual'`). */
  requestPass(): void;
  /** Lets it complete its running pass and the passes already requested, then finish. */
  finish(): void;
  /** Stops it at once, frees what the gates hold for it and closes its node. */
  detach(): Promise<void>;
}

/** A chain of gates with attach/detach of sentinels, prediction, and state transfer. */
export class Network {
  readonly system: ActorSystem;
  readonly gates: ActorRef<GateMessage>[];
  /** Per-sample shapes at the network's input and output, e.g. `[784]` and `[10]`. */
  readonly inputShape: number[];
  readonly outputShape: number[];
  /** Where each gate runs. */
  readonly placement: PlacementSpec[];
  /** Worker threads and child processes this network started; {@link dispose} ends them. */
  readonly nodes: readonly RemoteNode[];
  private readonly attached = new Map<Sentinel, ActorRef<SentinelMessage>>();
  /** Placed sentinels by node id, with what ends them. */
  private readonly placed = new Map<string, { end: (error?: Error) => Promise<void> }>();
  private readonly nodeOptions: Omit<NodeOptions, 'name'>;
  /** Detaches under way, awaited by {@link dispose}. */
  private readonly releases = new Set<Promise<void>>();
  private readonly askTimeoutMs: number;
  /** Wiring, freeing and state requests of the gates. */
  private readonly chain: GateChain;
  private readonly gateNodes: Map<string, string[]>;
  /** The shards of each gate split by output units, by gate index. */
  private readonly shards: Map<number, ShardInfo[]>;
  /** Set once a node hosting gates went down; every later operation fails with it. */
  private failure?: TransportError;
  private readonly failed: Promise<never>;
  private fail!: (error: TransportError) => void;
  private disposing = false;

  /**
   * Builds the gates on the main thread, synchronously (see {@link Network.create} for other
   * placements).
   * @throws InvalidArgumentError without gates or with a placement other than `'main'`;
   *   ShapeMismatchError when the gates' shapes do not chain.
   */
  constructor(options: NetworkOptions, deployment?: Deployment & { system: ActorSystem; placement: PlacementSpec[] }) {
    this.nodeOptions = options.nodeOptions ?? {};
    if (options.gates.length === 0) throw new InvalidArgumentError('A network needs at least one gate.');
    this.failed = new Promise<never>((_, reject) => (this.fail = reject));
    this.failed.catch(() => undefined);
    this.askTimeoutMs = options.askTimeoutMs ?? 30_000;
    this.inputShape = options.inputShape;
    if (deployment) {
      ({ system: this.system, gates: this.gates, outputShape: this.outputShape, nodes: this.nodes, placement: this.placement, gateNodes: this.gateNodes, shards: this.shards } = deployment);
    } else {
      const placement = options.placement ?? 'main';
      if (placement !== 'main' && !(Array.isArray(placement) && placement.every((p) => p.kind === 'main' && !p.shards)))
        throw new InvalidArgumentError(`new Network() places every gate on the main thread; for placement ${JSON.stringify(placement)} use \`await Network.create(options)\`.`);
      this.system = options.system ?? new ActorSystem();
      this.placement = options.gates.map(() => ({ kind: 'main' }));
      this.nodes = [];
      this.gateNodes = new Map();
      this.shards = new Map();
      const makeOptimizer = typeof options.optimizer === 'function' ? options.optimizer : options.optimizer ? () => createOptimizer(options.optimizer as OptimizerSpec) : () => createOptimizer(DEFAULT_OPTIMIZER);
      let shape = options.inputShape;
      const logic = options.gates.map((spec, i) => {
        const gate = new Gate({
          name: spec.name ?? `gate-${i}`,
          layers: spec.layers,
          inputShape: shape,
          optimizer: spec.optimizer === undefined ? makeOptimizer() : spec.optimizer instanceof Optimizer ? spec.optimizer : createOptimizer(spec.optimizer),
          seed: (options.seed ?? 0) + i,
          checkFinite: options.checkFinite,
        });
        shape = gate.module.outputShape;
        return gate;
      });
      this.outputShape = shape;
      this.gates = logic.map((gate) => this.system.spawn(() => gate, { name: gate.name, supervision: 'resume' }));
    }
    this.chain = new GateChain(this.system, this.gates, { askTimeoutMs: this.askTimeoutMs, ask: (gate, build) => this.askGate(gate, build) });
    this.chain.wire({}, (i) => this.shards.get(i));
    this.system.events.on('deadLetter', this.onDeadLetter);
    this.system.events.on('nodeDown', this.onNodeDown);
  }

  /**
   * Creates a network whose gates run where `options.placement` says (default `'auto'`): it
   * starts the worker threads / child processes, sends each gate there as data (layer configs,
   * optimizer spec, seed) and chains the shapes from the hosts' replies.
   * @throws InvalidArgumentError without gates, or for gates that cannot travel (an optimizer
   *   function or instance, built layers) off the main thread; TransportError when a node does not start.
   */
  static async create(options: NetworkOptions): Promise<Network> {
    const placement = resolvePlacement(options.placement ?? 'auto', { gates: options.gates, inputShape: options.inputShape, backend: tf.getBackend(), portable: isPortable(options) });
    const gatePlans = planGates(options, placement);
    if (placement.every((p) => p.kind === 'main' && !p.shards)) {
      return new Network({ ...options, placement: 'main', optimizer: undefined, gates: options.gates.map((g, i) => ({ ...g, optimizer: gatePlans[i]?.optimizer })) });
    }
    const system = options.system ?? new ActorSystem();
    const deployment = await deployGates(system, gatePlans, options.inputShape, placement, { ...options.nodeOptions, askTimeoutMs: options.askTimeoutMs });
    return new Network(options, { ...deployment, system, placement });
  }

  /** A batch that cannot reach a gate fails at its sentinel (the system frees the message's tensors). */
  private readonly onDeadLetter = (target: ActorRef, message: Message): void => {
    const m = message as { sentinel?: ActorRef<SentinelReply>; batch?: unknown };
    const batchMessage = ['gate.forward', 'gate.backward', 'gate.predict', 'gate.abort'].includes(message.type);
    if (batchMessage && m.sentinel && typeof m.batch === 'number' && this.gates.some((g) => g.id === target.id && g.node === target.node)) {
      const error = this.failure ?? new ActorStoppedError(`${target.name} has stopped; batch ${m.batch} cannot be processed.`);
      m.sentinel.tell({ type: 'sentinel.batchFailed', batch: m.batch, error: toErrorInfo(error) });
    }
  };

  /** A node went down: free what the gates hold for its sentinels; if it hosted gates, fail. */
  private readonly onNodeDown = (node: string): void => {
    if (this.disposing) return;
    const placed = this.placed.get(node);
    if (placed) {
      // A placed sentinel's node hosts only that sentinel; its end frees the gates' state for it.
      this.track(placed.end(new TransportError(`The node running a placed sentinel (${node}) went down before the sentinel finished.`)));
      return;
    }
    const names = this.gateNodes.get(node);
    if (names && !this.failure) {
      const kind = this.nodes.find((n) => n.node === node)?.kind ?? 'node';
      this.failure = new TransportError(`The ${kind} hosting ${names.join(', ')} (node ${node}) went down; this network cannot train or predict any more. Dispose it and create a new one.`);
      this.fail(this.failure);
      this.failInFlight(this.failure);
    }
    this.track(this.detachNode(node).then(() => undefined));
  };

  /** Tells every attached sentinel that its in-flight batches failed (they were lost with a node). */
  private failInFlight(error: TransportError): void {
    for (const ref of this.attached.values()) ref.tell({ type: 'sentinel.failInFlight', error: toErrorInfo(error) });
  }

  private track(pending: Promise<void>): void {
    const settled = pending.catch(() => undefined);
    this.releases.add(settled);
    void settled.finally(() => this.releases.delete(settled));
  }

  /** Runs an ask to a gate; rejects at once with the network's failure once a gate node is down. */
  private askGate<R extends Message>(gate: ActorRef<GateMessage>, build: (replyTo: ActorRef<R>) => GateMessage): Promise<R> {
    if (this.failure) return Promise.reject(this.failure);
    return Promise.race([this.system.ask<R, GateMessage>(gate, build, this.askTimeoutMs), this.failed]);
  }

  /**
   * Starts a sentinel on this network and returns its ref. It runs until it finishes (then it
   * is detached automatically) or until {@link detach}.
   */
  attach(sentinel: Sentinel): ActorRef<SentinelMessage> {
    if (this.failure) throw this.failure;
    if (this.attached.has(sentinel)) throw new InvalidArgumentError(`Sentinel '${sentinel.name}' is already attached.`);
    const ref = this.system.spawn<SentinelMessage>(() => sentinel, { name: `sentinel-${sentinel.name}` });
    this.attached.set(sentinel, ref);
    const release = () => this.track(this.release(sentinel));
    sentinel.done.then(release, release);
    ref.tell({ type: 'sentinel.start', first: this.gates[0] as ActorRef<GateMessage>, last: this.gates[this.gates.length - 1] as ActorRef<GateMessage> });
    return ref;
  }

  /**
   * Starts a sentinel in a worker thread or child process of its own, built there from `spec`
   * (its data too: MNIST is read by the node itself, tensors travel with the request and are
   * consumed). Its events are re-emitted on this thread. Training, validation and test
   * sentinels can be placed; a predict sentinel runs where its outputs are wanted (`attach`).
   * @param nodeOptions the node's backend and modules (default: as the network's nodes).
   * @throws the network's TransportError once a gate node is down; TransportError when the node
   *   does not start; the node's named error when the spec is rejected (InvalidArgumentError,
   *   DataFormatError, ShapeMismatchError, LabelRangeError, ProtocolError).
   */
  async attachPlaced(spec: SentinelSpec, place: { kind: 'worker' | 'process' }, nodeOptions: Omit<NodeOptions, 'name'> = this.nodeOptions): Promise<PlacedSentinel> {
    if (this.failure) {
      tf.dispose(specTensors(spec));
      throw this.failure;
    }
    const spawn = place.kind === 'process' ? spawnProcessNode : spawnWorkerNode;
    let node: RemoteNode;
    try {
      node = await spawn(this.system, { ...nodeOptions, name: `sentinel-${spec.name}` });
    } catch (error) {
      tf.dispose(specTensors(spec));
      throw error;
    }
    const events = new EventEmitter<SentinelEvents>();
    let settle!: { resolve: (summary: SentinelSummary) => void; reject: (error: Error) => void };
    const done = new Promise<SentinelSummary>((resolve, reject) => (settle = { resolve, reject }));
    done.catch(() => undefined); // rejections are for whoever awaits `done`
    let ended: Promise<void> | undefined;
    let sentinelRef: ActorRef<SentinelMessage> | undefined;
    const reporter = this.system.spawn<SentinelReport>(() => ({
      receive: (report) => {
        const p = report.payload as never;
        if (report.event === 'batch') events.emit('batch', p);
        else if (report.event === 'epoch') events.emit('epoch', p);
        else if (report.event === 'batchError') events.emit('batchError', (p as { error: never }).error, (p as { batch: number }).batch, (p as { lost?: boolean }).lost === true);
        else if (report.event === 'done') void end(undefined, p as SentinelSummary);
        else if (report.event === 'failed') void end(fromErrorInfo(p));
      },
    }), { name: `reporter-${spec.name}` });
    // Frees the gates' state for the sentinel, stops the reporter and the node, then settles `done`.
    const end = (error?: Error, summary?: SentinelSummary): Promise<void> =>
      (ended ??= (async () => {
        this.placed.delete(node.node);
        if (sentinelRef) await this.detachId(sentinelRef.id).catch(() => 0);
        this.system.stop(reporter);
        await node.close();
        if (summary) {
          events.emit('done', summary);
          settle.resolve(summary);
        } else settle.reject(error ?? new TransportError(`Placed sentinel '${spec.name}' ended without a summary.`));
      })());
    this.placed.set(node.node, { end: (error) => end(error) });
    let reply: HostReply;
    try {
      reply = await this.system.ask<HostReply, HostMessage>(
        node.host,
        (replyTo) => ({ type: 'host.spawnSentinel', spec, first: this.gates[0] as ActorRef<GateMessage>, last: this.gates[this.gates.length - 1] as ActorRef<GateMessage>, reporter, replyTo }),
        this.askTimeoutMs,
      );
    } catch (error) {
      await end(error as Error);
      throw error;
    }
    if (reply.type !== 'host.sentinelSpawned') {
      const error = reply.type === 'host.failed' ? fromErrorInfo(reply.error) : new TransportError(`Unexpected reply '${reply.type}' from ${node.host.name}.`);
      await end(error);
      throw error;
    }
    const ref = (sentinelRef = reply.sentinel);
    return {
      name: spec.name,
      ref,
      node,
      events,
      done,
      requestPass: () => ref.tell({ type: 'sentinel.requestPass' }),
      finish: () => ref.tell({ type: 'sentinel.finish' }),
      detach: () => end(new ActorStoppedError(`Placed sentinel '${spec.name}' was detached.`)),
    };
  }

  /** Runs one more pass of a sentinel with `trigger: 'manual'` (e.g. validation after an epoch). */
  requestPass(sentinel: Sentinel): void {
    this.attached.get(sentinel)?.tell({ type: 'sentinel.requestPass' });
  }

  /**
   * Lets a sentinel complete its running pass and the passes already requested, then finish
   * (`stoppedBy: 'stopped'`); it is then detached.
   */
  finish(sentinel: Sentinel): void {
    this.attached.get(sentinel)?.tell({ type: 'sentinel.finish' });
  }

  /**
   * Stops a sentinel at once and frees every tensor the gates hold for it; resolves when all
   * gates that are still up have confirmed. In-flight batches of that sentinel are dropped.
   */
  async detach(sentinel: Sentinel): Promise<void> {
    await this.release(sentinel);
  }

  private async release(sentinel: Sentinel): Promise<void> {
    const ref = this.attached.get(sentinel);
    if (!ref) return;
    this.attached.delete(sentinel);
    this.system.stop(ref);
    await this.detachId(ref.id);
  }

  /**
   * Tells every gate to free a sentinel's state by id (also for sentinels that died elsewhere)
   * and returns the number of batches dropped. Gates are asked in pipeline order, one after the
   * other: a batch that gate i had already passed on reaches gate i+1 before its detach does.
   */
  async detachId(sentinelId: string): Promise<number> {
    return this.detachWhere({ sentinelId });
  }

  /** Frees the state of every sentinel hosted on `node` (it went down); returns batches dropped. */
  async detachNode(node: string): Promise<number> {
    return this.detachWhere({ node });
  }

  private detachWhere(which: FreeTarget): Promise<number> {
    return this.chain.free(which);
  }

  /**
   * Predicts outputs for `x` (`[batch, ...inputShape]`, float32) with dropout off. The caller
   * owns the result (`[batch, ...outputShape]`); `x` is not disposed.
   * @throws the gate's named error (e.g. ShapeMismatchError) when `x` is rejected;
   *   TransportError when a node hosting gates went down.
   */
  async predict(x: tf.Tensor): Promise<tf.Tensor> {
    const reply = await this.askGate<SentinelReply>(this.gates[0] as ActorRef<GateMessage>, (replyTo) => ({ type: 'gate.predict', sentinel: replyTo, batch: 0, x: tf.clone(x) }));
    if (reply.type === 'sentinel.predictions') return reply.logits;
    if (reply.type === 'sentinel.batchFailed') throw fromErrorInfo(reply.error);
    throw new AkkordeonError(`Unexpected reply '${reply.type}' to a prediction.`);
  }

  /** Copies of every gate's weights, optimizer state and layer configs; the caller owns them. */
  getState(): Promise<GateState[]> {
    return this.chain.getState();
  }

  /**
   * Replaces every gate's weights (and optimizer state, if given). Tensors are consumed.
   * @throws the first gate's named error (e.g. CheckpointMismatchError); such a gate is unchanged.
   */
  setState(states: { weights: NamedTensor[]; optimizer?: NamedTensor[] }[]): Promise<void> {
    return this.chain.setState(states);
  }

  /** Stops every sentinel and gate, frees their tensors, and ends the threads and processes it started. */
  async dispose(): Promise<void> {
    await Promise.allSettled([...this.releases]);
    await Promise.allSettled([...this.placed.values()].map((p) => p.end(new TransportError('The network was disposed before this placed sentinel finished.'))));
    for (const sentinel of [...this.attached.keys()]) await this.release(sentinel).catch(() => undefined);
    this.disposing = true;
    this.gates.forEach((gate) => this.system.stop(gate));
    this.shards.forEach((shards) => shards.forEach((shard) => this.system.stop(shard.ref)));
    await Promise.all(this.nodes.map((node) => node.close()));
    this.system.events.off('nodeDown', this.onNodeDown);
    this.system.events.off('deadLetter', this.onDeadLetter);
  }
}

