/**
 * A parameter shard (DistBelief's parameter server, Dean et al., NIPS 2012, §4.1): an actor that
 * owns a slice of a model's parameters and applies the gradients replicas push as they arrive,
 * with a server-side rule: SGD (with momentum), AdaGrad (the paper's choice for Downpour), Adam,
 * DC-ASGD (Zheng et al., ICML 2017; the shard keeps, per replica, the weights that replica last
 * fetched as `w_bak`), or the model's own `descent` (DeepDist). Optionally it bounds the delay
 * between replicas: a fetch is answered only once its replica is at most `maxDelay` pushes ahead
 * of the slowest (stale synchronous parallel; `maxDelay: 0` is synchronous SGD).
 */
import * as tf from '@tensorflow/tfjs';
import type { Actor, ActorContext } from '../actor/index.js';
import { CheckpointMismatchError, InvalidArgumentError, NonFiniteError, ShapeMismatchError, toErrorInfo } from '../errors.js';
import { allFinite } from '../kernels/index.js';
import { createOptimizer, type NamedTensor, type Optimizer, type OptimizerSpec } from '../optim/index.js';
import type { PsFetch, PsMessage, PsPush, PsSetState, PsStats } from '../protocol/index.js';
import type { Descent } from './model.js';

/** Staleness histogram buckets: 0 … STALENESS_BUCKETS − 2, and one for everything above. */
export const STALENESS_BUCKETS = 64;

/** Options of a {@link ParameterShard}. */
export interface ParameterShardOptions {
  /** This shard's index (in replies and errors). */
  index: number;
  /** Its parts' initial values, by part name; the shard takes ownership. */
  params: NamedTensor[];
  /** The server-side update rule; default SGD with learning rate 0.01. Ignored with `descent`. */
  optimizer?: OptimizerSpec | Optimizer;
  /** The model's own update (DeepDist's `descent(model, update)`), instead of `optimizer`. */
  descent?: Descent;
  /** Bounded delay in pushes (see the module); default none (asynchronous). */
  maxDelay?: number;
}

/** A parameter shard; spawn with `system.spawn(() => new ParameterShard(options))`. */
export class ParameterShard implements Actor<PsMessage> {
  readonly index: number;
  private readonly names: string[];
  private params: tf.Tensor[];
  private readonly optimizer?: Optimizer;
  private readonly descent?: Descent;
  private readonly maxDelay?: number;
  /** Updates applied. */
  version = 0;
  private pushes = 0;
  private refused = 0;
  private readonly staleness = new Array<number>(STALENESS_BUCKETS).fill(0);
  /** Pushes made by each replica that takes part (joined, not left). */
  private readonly clocks = new Map<string, number>();
  private readonly nodes = new Map<string, string>();
  /** DC-ASGD's `w_bak`: the weights each replica last fetched. */
  private readonly fetched = new Map<string, tf.Tensor[]>();
  private readonly waiting: PsFetch[] = [];
  private unsubscribe?: () => void;

  /** @throws InvalidArgumentError for a maxDelay that is not a whole number ≥ 0, or parts named twice. */
  constructor(options: ParameterShardOptions) {
    this.index = options.index;
    this.names = options.params.map((p) => p.name);
    if (new Set(this.names).size !== this.names.length) throw new InvalidArgumentError(`Shard ${this.index}: a part is named twice.`);
    this.params = options.params.map((p) => p.tensor);
    this.descent = options.descent;
    if (!this.descent) {
      const optimizer = options.optimizer ?? { type: 'sgd', learningRate: 0.01 };
      this.optimizer = 'update' in optimizer ? optimizer : createOptimizer(optimizer);
    }
    if (options.maxDelay !== undefined && (!Number.isInteger(options.maxDelay) || options.maxDelay < 0)) {
      throw new InvalidArgumentError(`maxDelay must be a whole number of pushes >= 0, got ${options.maxDelay}.`);
    }
    this.maxDelay = options.maxDelay;
  }

  preStart(context: ActorContext<PsMessage>): void {
    // A replica whose node went down leaves, so that the bounded delay never waits for it.
    const onDown = (node: string) => {
      for (const [replica, at] of this.nodes) if (at === node) context.self.tell({ type: 'ps.leave', replica });
    };
    context.system.events.on('nodeDown', onDown);
    this.unsubscribe = () => context.system.events.off('nodeDown', onDown);
  }

  receive(message: PsMessage): void {
    switch (message.type) {
      case 'ps.fetch':
        this.waiting.push(message);
        return this.answerFetches();
      case 'ps.push':
        return this.push(message);
      case 'ps.join':
        this.clocks.set(message.replica, Math.max(this.clocks.get(message.replica) ?? 0, message.clock));
        if (message.node !== undefined) this.nodes.set(message.replica, message.node);
        return this.answerFetches();
      case 'ps.leave':
        this.clocks.delete(message.replica);
        this.nodes.delete(message.replica);
        this.fetched.get(message.replica)?.forEach((t) => t.dispose());
        this.fetched.delete(message.replica);
        return this.answerFetches();
      case 'ps.getState':
        return message.replyTo.tell({
          type: 'ps.state',
          shard: this.index,
          version: this.version,
          params: this.names.map((name, i) => ({ name, tensor: tf.clone(this.params[i] as tf.Tensor) })),
          optimizer: this.optimizer?.getState() ?? [],
          optimizerName: this.optimizer?.name ?? 'descent',
        });
      case 'ps.setState':
        return this.setState(message);
      case 'ps.getStats':
        return message.replyTo.tell(this.stats());
    }
  }

  /** This shard's statistics. */
  stats(): PsStats {
    return {
      type: 'ps.stats',
      shard: this.index,
      version: this.version,
      pushes: this.pushes,
      staleness: [...this.staleness],
      refused: this.refused,
      replicas: [...this.clocks].map(([replica, clock]) => ({ replica, clock })),
    };
  }

  /** Answers the fetches the bounded delay lets through (all of them without one). */
  private answerFetches(): void {
    const slowest = this.clocks.size === 0 ? Infinity : Math.min(...this.clocks.values());
    for (let i = 0; i < this.waiting.length; ) {
      const fetch = this.waiting[i] as PsFetch;
      if (this.maxDelay !== undefined && fetch.clock - slowest > this.maxDelay) {
        i++;
        continue;
      }
      this.waiting.splice(i, 1);
      const params = this.names.map((name, j) => ({ name, tensor: tf.clone(this.params[j] as tf.Tensor) }));
      if (this.optimizer?.name === 'dcasgd') {
        this.fetched.get(fetch.replica)?.forEach((t) => t.dispose());
        this.fetched.set(fetch.replica, this.params.map((t) => tf.clone(t)));
      }
      fetch.replyTo.tell({ type: 'ps.params', shard: this.index, version: this.version, params });
    }
  }

  private push(m: PsPush): void {
    try {
      const grads = this.check(m.grads, 'gradient');
      const staleness = Math.max(0, this.version - m.version);
      let next: tf.Tensor[];
      if (this.descent) {
        const current = new Map(this.names.map((name, i) => [name, this.params[i] as tf.Tensor]));
        const update = new Map(this.names.map((name, i) => [name, grads[i] as tf.Tensor]));
        const out = new Map(this.descent(current, update, { replica: m.replica, staleness }).map((p) => [p.name, p.tensor]));
        next = this.check(this.names.map((name) => ({ name, tensor: out.get(name) as tf.Tensor })), 'descent result');
      } else {
        const optimizer = this.optimizer as Optimizer;
        next = optimizer.update(this.params, grads, this.fetched.get(m.replica) ?? this.params);
      }
      this.params.forEach((t) => t.dispose());
      this.params = next;
      this.version++;
      this.pushes++;
      const bucket = this.staleness;
      bucket[Math.min(staleness, STALENESS_BUCKETS - 1)]!++;
      if (this.clocks.has(m.replica) || this.maxDelay === undefined) this.clocks.set(m.replica, Math.max(this.clocks.get(m.replica) ?? 0, m.clock));
      m.replyTo?.tell({ type: 'ps.pushed', shard: this.index, version: this.version, staleness });
      this.answerFetches();
    } catch (error) {
      this.refused++;
      m.replyTo?.tell({ type: 'ps.failed', error: toErrorInfo(error) });
    } finally {
      m.grads.forEach((g) => g.tensor.dispose());
    }
  }

  /**
   * The tensors of `named` in this shard's part order, after checking names, shapes, dtype and
   * finiteness (nothing is applied otherwise).
   */
  private check(named: readonly NamedTensor[], what: string): tf.Tensor[] {
    const byName = new Map(named.map((n) => [n.name, n.tensor]));
    if (byName.size !== named.length || named.length !== this.names.length) {
      throw new ShapeMismatchError(`Shard ${this.index}: a ${what} must name each of its ${this.names.length} parts once; got ${named.length} (${named.slice(0, 4).map((n) => n.name).join(', ')}…).`);
    }
    return this.names.map((name, i) => {
      const t = byName.get(name);
      const own = this.params[i] as tf.Tensor;
      if (!t) throw new ShapeMismatchError(`Shard ${this.index}: the ${what} lacks part '${name}'.`);
      if (t.dtype !== 'float32' || !tf.util.arraysEqual(t.shape, own.shape)) throw new ShapeMismatchError(`Shard ${this.index}: ${what} '${name}' is ${t.dtype} [${t.shape}], the part is float32 [${own.shape}].`);
      if (!allFinite(t)) throw new NonFiniteError(`Shard ${this.index}: ${what} '${name}' contains NaN or Infinity; it was not applied. Lower the learning rate.`);
      return t;
    });
  }

  private setState(m: PsSetState): void {
    try {
      const params = this.check(m.params, 'checkpointed parameter').map((t) => tf.clone(t));
      try {
        this.optimizer?.setState(m.optimizer);
      } catch (error) {
        params.forEach((t) => t.dispose());
        throw error;
      }
      if (!this.optimizer && m.optimizer.length > 0) throw new CheckpointMismatchError(`Shard ${this.index} applies the model's descent and keeps no optimizer state.`);
      this.params.forEach((t) => t.dispose());
      this.params = params;
      this.version = m.version;
      m.replyTo.tell({ type: 'ps.stateSet' });
    } catch (error) {
      m.replyTo.tell({ type: 'ps.stateSet', error: toErrorInfo(error) });
    } finally {
      [...m.params, ...m.optimizer].forEach((n) => n.tensor.dispose());
    }
  }

  postStop(): void {
    this.unsubscribe?.();
    this.params.forEach((t) => t.dispose());
    this.fetched.forEach((ts) => ts.forEach((t) => t.dispose()));
    this.fetched.clear();
    this.optimizer?.dispose();
  }
}
