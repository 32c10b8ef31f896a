// Over 400 lines: one actor whose forward, backward, shard and state handlers share the per-batch stash.
/**
 * The gate actor: owns a group of layers and its own optimizer, and serves forward, backward and
 * predict messages for the batches of any number of sentinels. It never waits on a round trip:
 * a forward is answered at once and its state kept under (sentinel, batch) until the backward
 * arrives, so batch k+1 runs while batch k is still downstream.
 *
 * A gate of one Dense layer can be split by output units over several places (tensor
 * parallelism, the column-parallel linear layer of Megatron-LM, Shoeybi et al. 2019, Sec. 3):
 * the primary gate computes the first units and tells its shards to compute the others from the
 * same input; it joins their output slices, splits the gradient by columns, and sums their
 * input-gradient shares. Every unit's weights and optimizer state live in exactly one shard, and
 * the optimizers are elementwise, so a split gate computes what the whole gate would.
 */
import * as tf from '@tensorflow/tfjs';
import type { Actor, ActorContext, ActorRef } from '../actor/index.js';
import {
  CheckpointMismatchError,
  describeError,
  InvalidArgumentError,
  OverloadError,
  UnauthorizedError,
  NonFiniteError,
  ShapeMismatchError,
  TransportError,
  UnknownBatchError,
  UnknownMessageError,
  toErrorInfo,
} from '../errors.js';
import type { Optimizer } from '../optim/index.js';
import { allFinite } from '../kernels/index.js';
import type {
  ErrorInfo,
  GateAbort,
  GateBackward,
  GateDetached,
  GateForward,
  GateMessage,
  GatePredict,
  GateSetState,
  GateShardFailed,
  GateShardGradient,
  GateShardOutput,
  GateState,
  GateStateSet,
  PrimaryInfo,
  SentinelReply,
  ShardInfo,
} from '../protocol/index.js';
import { concatLastAxis, splitLastAxis } from './shards.js';
import { GateModule, type ForwardState } from './module.js';

/** Options of a {@link Gate}. */
export interface GateOptions {
  /** Name used in logs and checkpoints, e.g. `'gate-0'`. */
  name?: string;
  /** tfjs-layers layers, applied in order; built here for `inputShape`. */
  layers: tf.layers.Layer[];
  /** Per-sample input shape, without the batch axis, e.g. `[784]`. */
  inputShape: number[];
  /** This gate's own optimizer instance (never shared between gates). */
  optimizer: Optimizer;
  /** Seed of the dropout masks. Default 0. */
  seed?: number;
  /**
   * Reject inputs and gradients that hold NaN or ±Infinity before they touch the weights.
   * Costs one reduction per message. Default true.
   */
  checkFinite?: boolean;
  /** Timeout of the asks a split gate sends its shards (state, detach), ms. Default 30000. */
  shardAskTimeoutMs?: number;
  /**
   * Most batches one sentinel may have in flight at this gate (forward state kept for its
   * backward pass); a forward beyond it fails with OverloadError at that sentinel. Default 1024.
   */
  maxInFlightPerSentinel?: number;
  /** Most batches the sentinels of one node may have in flight here together. Default 4096. */
  maxInFlightPerNode?: number;
}

type JoinKind = 'forward' | 'predict' | 'backward';

/** Slices of one batch that a split gate is waiting for. */
interface Join {
  readonly sentinel: ActorRef<SentinelReply>;
  readonly batch: number;
  readonly kind: JoinKind;
  /** Index 0: this gate's own slice; index i + 1: shard i's. */
  readonly parts: (tf.Tensor | undefined)[];
  remaining: number;
  readonly staleness: number;
}

const joinKey = (kind: JoinKind, sentinelId: string, batch: number): string => `${kind}:${batch}:${sentinelId}`;

/** Gate actor logic; spawn it with `system.spawn(() => new Gate(options))`. */
export class Gate implements Actor<GateMessage> {
  readonly name: string;
  readonly module: GateModule;
  readonly optimizer: Optimizer;
  private readonly checkFinite: boolean;
  private readonly maxInFlightPerSentinel: number;
  private readonly maxInFlightPerNode: number;
  private previous?: ActorRef<GateMessage>;
  private next?: ActorRef<GateMessage>;
  /** Forward state of in-flight training batches, by sentinel id, then batch number. */
  private readonly pending = new Map<string, Map<number, ForwardState>>();
  /** The node of each sentinel with pending batches. */
  private readonly nodes = new Map<string, string>();
  /** This gate's other output-unit shards, when it is split (it is then their primary). */
  private shards: readonly ShardInfo[] = [];
  /** The gate this one is a shard of. */
  private primary?: PrimaryInfo;
  /** Batches of a split gate waiting for its shards' slices. */
  private readonly joins = new Map<string, Join>();
  private readonly shardAskTimeoutMs: number;

  /** @throws ShapeMismatchError when the layers do not fit `inputShape`. */
  constructor(options: GateOptions) {
    if (options.layers.length === 0) throw new InvalidArgumentError('A gate needs at least one layer.');
    this.name = options.name ?? 'gate';
    this.module = new GateModule(options.layers, options.inputShape, options.seed ?? 0);
    this.optimizer = options.optimizer;
    this.checkFinite = options.checkFinite ?? true;
    this.maxInFlightPerSentinel = options.maxInFlightPerSentinel ?? 1024;
    this.maxInFlightPerNode = options.maxInFlightPerNode ?? 4096;
    this.shardAskTimeoutMs = options.shardAskTimeoutMs ?? 30_000;
  }

  /** Per-sample output shape of the whole gate: its own units plus those of its shards. */
  get outputShape(): number[] {
    const own = this.module.outputShape;
    if (this.shards.length === 0) return own;
    const units = this.shards.reduce((n, s) => n + s.units, own[own.length - 1] as number);
    return [...own.slice(0, -1), units];
  }

  /** Output units per part, this gate's own first, then each shard's. */
  private get unitSplit(): number[] {
    return [this.module.outputShape[this.module.outputShape.length - 1] as number, ...this.shards.map((s) => s.units)];
  }

  /** Number of batches whose backward pass has not arrived yet, over all sentinels. */
  get inFlight(): number {
    let n = 0;
    this.pending.forEach((batches) => (n += batches.size));
    return n;
  }

  receive(message: GateMessage, context: ActorContext<GateMessage>): void | Promise<void> {
    switch (message.type) {
      case 'gate.forward':
        return this.guard(message, () => this.forward(message));
      case 'gate.backward':
        return this.guard(message, () => this.backward(message));
      case 'gate.predict':
        return this.predict(message);
      case 'gate.abort':
        // A shard's primary already handles the batch's sentinel and upstream gates.
        if (this.primary) return void this.releaseBatch(message.sentinel, message.batch);
        return this.abort(message.sentinel, message.batch, message.error);
      case 'gate.shardOutput':
        return this.onShardOutput(message);
      case 'gate.shardGradient':
        return this.onShardGradient(message);
      case 'gate.shardFailed':
        return this.onShardFailed(message);
      case 'gate.detach':
        if (this.shards.length > 0) return this.detachSplit(message, context, message.replyTo);
        this.detach(message, message.replyTo);
        return;
      case 'gate.connect':
        this.previous = message.previous;
        this.next = message.next;
        this.shards = message.shards ?? [];
        this.primary = message.primary;
        return;
      case 'gate.getState':
        if (this.shards.length > 0) return this.getStateSplit(message.replyTo, context);
        return message.replyTo.tell(this.state());
      case 'gate.setState':
        if (this.shards.length > 0) return this.setStateSplit(message, context);
        return this.setState(message);
      default:
        throw new UnknownMessageError(
          `${context.self.name} got a message of unknown type '${(message as { type: string }).type}'.`,
        );
    }
  }

  /** This gate's own state (not its shards'); the caller owns the tensors. */
  private state(): GateState {
    return {
      type: 'gate.state',
      gate: this.name,
      weights: this.module.getWeights(),
      optimizer: this.optimizer.getState(),
      optimizerName: this.optimizer.name,
      layers: this.module.layers.map((l) => ({ className: l.getClassName(), config: l.getConfig() as Record<string, unknown> })),
      inputShape: this.module.inputShape,
      outputShape: this.module.outputShape,
    };
  }

  postStop(): void {
    for (const sentinelId of [...this.pending.keys()]) this.detach({ sentinelId });
    this.joins.forEach((join) => join.parts.forEach((t) => t?.dispose()));
    this.joins.clear();
    this.optimizer.dispose();
    this.module.dispose();
    for (const layer of this.module.layers) {
      try {
        layer.dispose();
      } catch {
        // tfjs refuses to dispose a layer that was built but never applied; free its weights.
        layer.weights.forEach((v) => v.dispose());
      }
    }
  }

  /** Runs a batch handler; on failure frees the batch here and upstream and tells the sentinel. */
  private guard(message: GateForward | GateBackward, handler: () => void): void {
    try {
      handler();
    } catch (error) {
      const t = message.type === 'gate.forward' ? message.x : message.dy;
      if (!t.isDisposed) t.dispose();
      if (this.primary) {
        this.releaseBatch(message.sentinel, message.batch);
        this.primary.ref.tell({ type: 'gate.shardFailed', sentinel: message.sentinel, batch: message.batch, predict: false, error: toErrorInfo(error) });
      } else {
        this.abort(message.sentinel, message.batch, toErrorInfo(error));
      }
    }
  }

  private check(t: unknown, what: string, shape: number[]): asserts t is tf.Tensor {
    if (!(t instanceof tf.Tensor) || t.isDisposed) {
      throw new InvalidArgumentError(`${this.name}: ${what} is not a live tf.Tensor.`);
    }
    if (t.dtype !== 'float32') {
      throw new ShapeMismatchError(`${this.name}: ${what} has dtype ${t.dtype}; cast it to float32.`);
    }
    if (t.rank !== shape.length + 1 || !tf.util.arraysEqual(t.shape.slice(1), shape)) {
      throw new ShapeMismatchError(
        `${this.name}: ${what} has shape [${t.shape}] but this gate takes [batch, ${shape}]. Reshape the data to ${shape.join('x')} features per sample.`,
      );
    }
    if (this.checkFinite && !allFinite(t)) {
      throw new NonFiniteError(`${this.name}: ${what} contains NaN or Infinity; clean the data, or lower the learning rate, the momentum or the sentinels' concurrency (more batches in flight means staler gradients, which can make training diverge).`);
    }
  }

  /** Batches in flight here of every sentinel on `node`. */
  private inFlightOfNode(node: string): number {
    let n = 0;
    for (const [sentinel, batches] of this.pending) if (this.nodes.get(sentinel) === node) n += batches.size;
    return n;
  }

  private forward(m: GateForward): void {
    this.check(m.x, 'forward input', this.module.inputShape);
    const known = this.nodes.get(m.sentinel.id);
    if (known !== undefined && known !== m.sentinel.node) {
      throw new UnauthorizedError(`${this.name}: sentinel id ${m.sentinel.id} already has batches in flight here from node ${known}, not ${m.sentinel.node}; a sentinel's id names one sentinel.`);
    }
    const batches = this.batchesOf(m.sentinel.id);
    this.nodes.set(m.sentinel.id, m.sentinel.node);
    if (batches.has(m.batch)) {
      throw new InvalidArgumentError(`${this.name}: batch ${m.batch} of sentinel ${m.sentinel.name} is already in flight; batch numbers must be unique.`);
    }
    if (batches.size >= this.maxInFlightPerSentinel) {
      throw new OverloadError(`${this.name}: sentinel ${m.sentinel.name} already has ${batches.size} batches in flight here, the most a gate keeps for one sentinel; lower its concurrency.`);
    }
    if (this.inFlightOfNode(m.sentinel.node) >= this.maxInFlightPerNode) {
      throw new OverloadError(`${this.name}: the sentinels of node ${m.sentinel.node} already have ${this.maxInFlightPerNode} batches in flight here, the most a gate keeps for one node.`);
    }
    // Shards start on their slices before this gate computes its own.
    this.shards.forEach((shard) => shard.ref.tell({ type: 'gate.forward', sentinel: m.sentinel, batch: m.batch, x: tf.clone(m.x) }));
    const { y, state } = this.module.forward(m.x);
    m.x.dispose();
    batches.set(m.batch, state);
    if (this.shards.length > 0) this.startJoin('forward', m.sentinel, m.batch, y, 0);
    else this.emitOutput(false, m.sentinel, m.batch, y);
  }

  /** Passes a batch's output on: to the primary (a shard), the next gate, or the sentinel. */
  private emitOutput(predict: boolean, sentinel: ActorRef<SentinelReply>, batch: number, y: tf.Tensor): void {
    if (this.primary) this.primary.ref.tell({ type: 'gate.shardOutput', sentinel, batch, shard: this.primary.index, predict, y });
    else if (this.next) this.next.tell({ type: predict ? 'gate.predict' : 'gate.forward', sentinel, batch, x: y });
    else sentinel.tell(predict ? { type: 'sentinel.predictions', batch, logits: y } : { type: 'sentinel.logits', batch, logits: y });
  }

  private backward(m: GateBackward): void {
    const state = this.nodes.get(m.sentinel.id) === m.sentinel.node ? this.pending.get(m.sentinel.id)?.get(m.batch) : undefined;
    if (!state) {
      m.dy.dispose();
      throw new UnknownBatchError(`${this.name}: no forward state for batch ${m.batch} of sentinel ${m.sentinel.name}; it was never sent, already finished, or detached.`);
    }
    const outputShape = this.shards.length > 0 ? [state.outputShape[0] as number, ...this.outputShape] : state.outputShape;
    if (!tf.util.arraysEqual(m.dy.shape, outputShape)) {
      throw new ShapeMismatchError(`${this.name}: gradient has shape [${m.dy.shape}] but the forward output was [${outputShape}].`);
    }
    this.check(m.dy, 'gradient', this.outputShape);
    this.pending.get(m.sentinel.id)?.delete(m.batch);
    const staleness = Math.max(m.staleness ?? 0, this.module.params.current.id - state.version.id);
    let dy = m.dy;
    if (this.shards.length > 0) {
      const [own, ...slices] = splitLastAxis(m.dy, this.unitSplit);
      m.dy.dispose();
      this.shards.forEach((shard, i) => shard.ref.tell({ type: 'gate.backward', sentinel: m.sentinel, batch: m.batch, dy: slices[i] as tf.Tensor, staleness }));
      dy = own as tf.Tensor;
    }
    const needDx = this.previous !== undefined || this.primary?.needDx === true;
    const { dx, grads } = this.module.backward(dy, state, needDx);
    dy.dispose();
    if (this.shards.length > 0 && dx) this.startJoin('backward', m.sentinel, m.batch, dx, staleness);
    else this.emitBackward(m.sentinel, m.batch, dx, staleness);
    try {
      this.module.update(this.optimizer, grads, state);
    } finally {
      grads.forEach((g) => g.dispose());
    }
  }

  private emitBackward(sentinel: ActorRef<SentinelReply>, batch: number, dx: tf.Tensor | undefined, staleness: number): void {
    if (this.primary) {
      if (dx) this.primary.ref.tell({ type: 'gate.shardGradient', sentinel, batch, shard: this.primary.index, dx });
    } else if (this.previous && dx) {
      this.previous.tell({ type: 'gate.backward', sentinel, batch, dy: dx, staleness });
    } else {
      dx?.dispose();
      sentinel.tell({ type: 'sentinel.backwardDone', batch, staleness });
    }
  }

  private predict(m: GatePredict): void {
    let y: tf.Tensor;
    try {
      this.check(m.x, 'predict input', this.module.inputShape);
      this.shards.forEach((shard) => shard.ref.tell({ type: 'gate.predict', sentinel: m.sentinel, batch: m.batch, x: tf.clone(m.x) }));
      y = this.module.predict(m.x);
    } catch (error) {
      if (this.primary) this.primary.ref.tell({ type: 'gate.shardFailed', sentinel: m.sentinel, batch: m.batch, predict: true, error: toErrorInfo(error) });
      else m.sentinel.tell({ type: 'sentinel.batchFailed', batch: m.batch, error: toErrorInfo(error) });
      return;
    } finally {
      m.x.dispose();
    }
    if (this.shards.length > 0) this.startJoin('predict', m.sentinel, m.batch, y, 0);
    else this.emitOutput(true, m.sentinel, m.batch, y);
  }

  /** Waits for the shards' slices of a batch; `own` is this gate's slice. */
  private startJoin(kind: JoinKind, sentinel: ActorRef<SentinelReply>, batch: number, own: tf.Tensor, staleness: number): void {
    const key = joinKey(kind, sentinel.id, batch);
    this.joins.get(key)?.parts.forEach((t) => t?.dispose()); // a predict batch number reused before its join finished
    const parts: (tf.Tensor | undefined)[] = [own, ...this.shards.map(() => undefined)];
    this.joins.set(key, { sentinel, batch, kind, parts, remaining: this.shards.length, staleness });
  }

  /** Stores a shard's slice; the last one completes the batch. */
  private addPart(kind: JoinKind, sentinelId: string, batch: number, shard: number, t: tf.Tensor): void {
    const key = joinKey(kind, sentinelId, batch);
    const join = this.joins.get(key);
    if (!join || shard < 0 || shard >= this.shards.length || join.parts[shard + 1] !== undefined) {
      t.dispose(); // the batch failed or was detached meanwhile, or a stray message
      return;
    }
    join.parts[shard + 1] = t;
    if (--join.remaining > 0) return;
    this.joins.delete(key);
    const parts = join.parts as tf.Tensor[];
    let whole: tf.Tensor;
    try {
      whole = kind === 'backward' ? tf.addN(parts) : tf.concat(parts, -1);
    } catch (error) {
      parts.forEach((p) => p.dispose());
      if (kind === 'predict') join.sentinel.tell({ type: 'sentinel.batchFailed', batch, error: toErrorInfo(error) });
      else this.abort(join.sentinel, batch, toErrorInfo(error));
      return;
    }
    parts.forEach((p) => p.dispose());
    if (kind === 'backward') this.emitBackward(join.sentinel, batch, whole, join.staleness);
    else this.emitOutput(kind === 'predict', join.sentinel, batch, whole);
  }

  private onShardOutput(m: GateShardOutput): void {
    this.addPart(m.predict ? 'predict' : 'forward', m.sentinel.id, m.batch, m.shard, m.y);
  }

  private onShardGradient(m: GateShardGradient): void {
    this.addPart('backward', m.sentinel.id, m.batch, m.shard, m.dx);
  }

  private onShardFailed(m: GateShardFailed): void {
    if (m.predict) {
      const key = joinKey('predict', m.sentinel.id, m.batch);
      const join = this.joins.get(key);
      if (!join) return;
      this.joins.delete(key);
      join.parts.forEach((t) => t?.dispose());
      m.sentinel.tell({ type: 'sentinel.batchFailed', batch: m.batch, error: m.error });
      return;
    }
    // A shard failing a batch this gate already finished (no input gradient to wait for) only loses that shard's update.
    const live = this.pending.get(m.sentinel.id)?.has(m.batch) || this.joins.has(joinKey('forward', m.sentinel.id, m.batch)) || this.joins.has(joinKey('backward', m.sentinel.id, m.batch));
    if (live) this.abort(m.sentinel, m.batch, m.error);
  }

  /**
   * Frees what this gate holds for one training batch: its forward state and unfinished joins;
   * nothing when the sentinel's id has batches here from another node (a ref naming another
   * node's sentinel frees none of its batches).
   */
  private releaseBatch(sentinel: ActorRef, batch: number): void {
    const sentinelId = sentinel.id;
    const node = this.nodes.get(sentinelId);
    if (node !== undefined && node !== sentinel.node) return;
    const batches = this.pending.get(sentinelId);
    const state = batches?.get(batch);
    if (state) {
      batches?.delete(batch);
      this.module.release(state);
    }
    for (const kind of ['forward', 'backward'] as const) {
      const key = joinKey(kind, sentinelId, batch);
      this.joins.get(key)?.parts.forEach((t) => t?.dispose());
      this.joins.delete(key);
    }
  }

  private abort(sentinel: ActorRef<SentinelReply>, batch: number, error: ErrorInfo): void {
    this.releaseBatch(sentinel, batch);
    const message: GateAbort = { type: 'gate.abort', sentinel, batch, error };
    this.shards.forEach((shard) => shard.ref.tell(message));
    if (this.previous) this.previous.tell(message);
    else sentinel.tell({ type: 'sentinel.batchFailed', batch, error });
  }

  private detach(which: { sentinelId?: string; node?: string }, replyTo?: ActorRef<GateDetached>): number {
    let dropped = 0;
    // Both given: that sentinel, only if it is on that node (the wire lets other nodes name only themselves).
    const matches = (sentinelId: string) => (which.sentinelId === undefined || sentinelId === which.sentinelId) && (which.node === undefined || this.nodes.get(sentinelId) === which.node) && (which.sentinelId !== undefined || which.node !== undefined);
    for (const [key, join] of this.joins) {
      if (!matches(join.sentinel.id)) continue;
      this.joins.delete(key);
      join.parts.forEach((t) => t?.dispose());
    }
    for (const [key, batches] of this.pending) {
      if (!matches(key)) continue;
      this.pending.delete(key);
      this.nodes.delete(key);
      batches.forEach((state) => this.module.release(state));
      dropped += batches.size;
    }
    replyTo?.tell({ type: 'gate.detached', dropped });
    return dropped;
  }

  /** Detach on a split gate: here, then on every shard; replies once all have freed their state. */
  private async detachSplit(which: { sentinelId?: string; node?: string }, context: ActorContext<GateMessage>, replyTo?: ActorRef<GateDetached>): Promise<void> {
    const dropped = this.detach(which);
    const results = await Promise.allSettled(
      this.shards.map((shard) => context.system.ask<GateDetached, GateMessage>(shard.ref, (r) => ({ type: 'gate.detach', sentinelId: which.sentinelId, node: which.node, replyTo: r }), this.shardAskTimeoutMs)),
    );
    replyTo?.tell({ type: 'gate.detached', dropped });
    // A shard that does not answer is down (its node's failure is reported on its own); the
    // supervisor hears of it too.
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw new TransportError(`${this.name}: a shard did not confirm a detach: ${describeError(failed.reason)}`, { cause: failed.reason });
  }

  /** State of a split gate: every weight and optimizer slot joined along the units axis. */
  private async getStateSplit(replyTo: ActorRef<GateState>, context: ActorContext<GateMessage>): Promise<void> {
    const own = this.state();
    let parts: GateState[] = [];
    try {
      parts = await Promise.all(this.shards.map((shard) => context.system.ask<GateState, GateMessage>(shard.ref, (r) => ({ type: 'gate.getState', replyTo: r }), this.shardAskTimeoutMs)));
      const slicesOf = (list: 'weights' | 'optimizer', name: string) => parts.map((p) => p[list].find((w) => w.name === name)?.tensor);
      for (const list of ['weights', 'optimizer'] as const) {
        const missing = own[list].find(({ name }) => name !== 'iterations' && slicesOf(list, name).includes(undefined));
        if (missing) throw new CheckpointMismatchError(`${this.name}: a shard has no '${missing.name}'.`);
      }
      const join = (list: 'weights' | 'optimizer') =>
        own[list].map(({ name, tensor }) => {
          if (name === 'iterations') return { name, tensor };
          const whole = concatLastAxis([tensor, ...(slicesOf(list, name) as tf.Tensor[])]);
          tensor.dispose();
          return { name, tensor: whole };
        });
      const units = this.outputShape[this.outputShape.length - 1] as number;
      replyTo.tell({
        ...own,
        weights: join('weights'),
        optimizer: join('optimizer'),
        layers: own.layers.map((l) => ({ ...l, config: { ...l.config, units } })),
        outputShape: this.outputShape,
      });
    } catch (error) {
      // No reply: the requester's ask times out; the supervisor hears why.
      [...own.weights, ...own.optimizer].forEach((w) => w.tensor.dispose());
      throw new TransportError(`${this.name}: cannot collect the state of its shards: ${describeError(error)}`, { cause: error });
    } finally {
      parts.forEach((p) => [...p.weights, ...p.optimizer].forEach((w) => w.tensor.dispose()));
    }
  }

  /**
   * Sets the state of a split gate: checks every tensor against the whole gate's shapes, splits
   * them along the units axis, and sets each part here and on the shards.
   */
  private async setStateSplit(m: GateSetState, context: ActorContext<GateMessage>): Promise<void> {
    const split = this.unitSplit;
    const total = split.reduce((a, b) => a + b, 0);
    const all = [...m.weights, ...(m.optimizer ?? [])];
    const free = () => all.forEach((w) => w.tensor.dispose());
    const expected = new Map(this.module.paramNames.map((name, i) => [name, this.module.params.current.tensors[i] as tf.Tensor]));
    const problems: string[] = [];
    for (const [name, t] of expected) {
      const given = m.weights.find((w) => w.name === name);
      const shape = [...t.shape.slice(0, -1), total];
      if (!given) problems.push(`missing '${name}' [${shape}]`);
      else if (!tf.util.arraysEqual(given.tensor.shape, shape)) problems.push(`'${name}' has shape [${given.tensor.shape}], expected [${shape}]`);
    }
    for (const w of m.weights) if (!expected.has(w.name)) problems.push(`unexpected '${w.name}'`);
    for (const s of m.optimizer ?? []) {
      if (s.name !== 'iterations' && s.tensor.shape[s.tensor.rank - 1] !== total) problems.push(`optimizer state '${s.name}' has shape [${s.tensor.shape}], not ${total} units last`);
    }
    if (problems.length > 0) {
      free();
      const error = new CheckpointMismatchError(`Weights do not match this gate's architecture: ${problems.join('; ')}. Load a checkpoint saved from the same network definition.`);
      return m.replyTo.tell({ type: 'gate.stateSet', error: toErrorInfo(error) });
    }
    const parts = (list: { name: string; tensor: tf.Tensor }[]) => {
      const byPart = split.map(() => [] as { name: string; tensor: tf.Tensor }[]);
      for (const { name, tensor } of list) {
        const slices = name === 'iterations' ? split.map(() => tf.clone(tensor)) : splitLastAxis(tensor, split);
        slices.forEach((slice, i) => byPart[i]?.push({ name, tensor: slice }));
      }
      return byPart;
    };
    const weights = parts(m.weights);
    const optimizer = m.optimizer ? parts(m.optimizer) : undefined;
    free();
    const replies = await Promise.allSettled(
      this.shards.map((shard, i) =>
        context.system.ask<GateStateSet, GateMessage>(shard.ref, (r) => ({ type: 'gate.setState', weights: weights[i + 1] ?? [], optimizer: optimizer?.[i + 1], replyTo: r }), this.shardAskTimeoutMs),
      ),
    );
    const own = this.applyState(weights[0] ?? [], optimizer?.[0]);
    const failed = replies.map((r) => (r.status === 'fulfilled' ? r.value.error : toErrorInfo(r.reason))).find((e) => e);
    m.replyTo.tell({ type: 'gate.stateSet', error: own ?? failed });
  }

  private setState(m: GateSetState): void {
    m.replyTo.tell({ type: 'gate.stateSet', error: this.applyState(m.weights, m.optimizer) });
  }

  /**
   * Replaces weights and optimizer state, all or nothing: a failure rolls the optimizer back.
   * Consumes the tensors; returns the error, if any.
   */
  private applyState(weights: GateSetState['weights'], optimizer?: GateSetState['optimizer']): ErrorInfo | undefined {
    const previousState = optimizer ? this.optimizer.getState() : undefined;
    try {
      if (optimizer) this.optimizer.setState(optimizer); // validates before it changes anything
      try {
        this.module.setWeights(weights); // validates before it changes anything
      } catch (error) {
        if (previousState) this.optimizer.setState(previousState);
        throw error;
      }
      return undefined;
    } catch (error) {
      return toErrorInfo(error);
    } finally {
      previousState?.forEach((s) => s.tensor.dispose());
      weights.forEach((w) => w.tensor.dispose());
      optimizer?.forEach((s) => s.tensor.dispose());
    }
  }

  private batchesOf(sentinelId: string): Map<number, ForwardState> {
    let batches = this.pending.get(sentinelId);
    if (!batches) {
      batches = new Map();
      this.pending.set(sentinelId, batches);
    }
    return batches;
  }
}
