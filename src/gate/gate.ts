/**
 * The gate actor: owns a group of layers and its own optimizer, and serves forward, backward and
 * predict messages for the batches of any number of sentinels. It never waits on a round trip:
 * a forward is answered at once and its state kept under (sentinel, batch) until the backward
 * arrives, so batch k+1 runs while batch k is still downstream.
 */
import * as tf from '@tensorflow/tfjs';
import type { Actor, ActorContext, ActorRef } from '../actor/index.js';
import {
  InvalidArgumentError,
  NonFiniteError,
  ShapeMismatchError,
  UnknownBatchError,
  UnknownMessageError,
  toErrorInfo,
} from '../errors.js';
import type { Optimizer } from '../optim/index.js';
import type {
  ErrorInfo,
  GateAbort,
  GateBackward,
  GateForward,
  GateMessage,
  GatePredict,
  GateSetState,
  SentinelReply,
} from '../protocol.js';
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
}

/** Gate actor logic; spawn it with `system.spawn(() => new Gate(options))`. */
export class Gate implements Actor<GateMessage> {
  readonly name: string;
  readonly module: GateModule;
  readonly optimizer: Optimizer;
  private readonly checkFinite: boolean;
  private previous?: ActorRef<GateMessage>;
  private next?: ActorRef<GateMessage>;
  /** Forward state of in-flight training batches, by sentinel id, then batch number. */
  private readonly pending = new Map<string, Map<number, ForwardState>>();
  /** The node of each sentinel with pending batches. */
  private readonly nodes = new Map<string, string>();

  /** @throws ShapeMismatchError when the layers do not fit `inputShape`. */
  constructor(options: GateOptions) {
    if (options.layers.length === 0) throw new InvalidArgumentError('A gate needs at least one layer.');
    this.name = options.name ?? 'gate';
    this.module = new GateModule(options.layers, options.inputShape, options.seed ?? 0);
    this.optimizer = options.optimizer;
    this.checkFinite = options.checkFinite ?? true;
  }

  /** Number of batches whose backward pass has not arrived yet, over all sentinels. */
  get inFlight(): number {
    let n = 0;
    this.pending.forEach((batches) => (n += batches.size));
    return n;
  }

  receive(message: GateMessage, context: ActorContext<GateMessage>): void {
    switch (message.type) {
      case 'gate.forward':
        return this.guard(message, () => this.forward(message));
      case 'gate.backward':
        return this.guard(message, () => this.backward(message));
      case 'gate.predict':
        return this.predict(message);
      case 'gate.abort':
        return this.abort(message.sentinel, message.batch, message.error);
      case 'gate.detach':
        return this.detach(message, message.replyTo);
      case 'gate.connect':
        this.previous = message.previous;
        this.next = message.next;
        return;
      case 'gate.getState':
        return message.replyTo.tell({
          type: 'gate.state',
          gate: this.name,
          weights: this.module.getWeights(),
          optimizer: this.optimizer.getState(),
          optimizerName: this.optimizer.name,
          layers: this.module.layers.map((l) => ({ className: l.getClassName(), config: l.getConfig() as Record<string, unknown> })),
          inputShape: this.module.inputShape,
          outputShape: this.module.outputShape,
        });
      case 'gate.setState':
        return this.setState(message);
      default:
        throw new UnknownMessageError(
          `${context.self.name} got a message of unknown type '${(message as { type: string }).type}'.`,
        );
    }
  }

  postStop(): void {
    for (const sentinelId of [...this.pending.keys()]) this.detach({ sentinelId });
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
      (message.type === 'gate.forward' ? message.x : message.dy).dispose();
      this.abort(message.sentinel, message.batch, toErrorInfo(error));
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
    if (this.checkFinite && !tf.tidy(() => tf.all(tf.isFinite(t)).dataSync()[0] as number)) {
      throw new NonFiniteError(`${this.name}: ${what} contains NaN or Infinity; clean the data or lower the learning rate.`);
    }
  }

  private forward(m: GateForward): void {
    this.check(m.x, 'forward input', this.module.inputShape);
    const batches = this.batchesOf(m.sentinel.id);
    this.nodes.set(m.sentinel.id, m.sentinel.node);
    if (batches.has(m.batch)) {
      throw new InvalidArgumentError(`${this.name}: batch ${m.batch} of sentinel ${m.sentinel.name} is already in flight; batch numbers must be unique.`);
    }
    const { y, state } = this.module.forward(m.x);
    m.x.dispose();
    batches.set(m.batch, state);
    if (this.next) this.next.tell({ type: 'gate.forward', sentinel: m.sentinel, batch: m.batch, x: y });
    else m.sentinel.tell({ type: 'sentinel.logits', batch: m.batch, logits: y });
  }

  private backward(m: GateBackward): void {
    const state = this.pending.get(m.sentinel.id)?.get(m.batch);
    if (!state) {
      m.dy.dispose();
      throw new UnknownBatchError(`${this.name}: no forward state for batch ${m.batch} of sentinel ${m.sentinel.name}; it was never sent, already finished, or detached.`);
    }
    if (!tf.util.arraysEqual(m.dy.shape, state.outputShape)) {
      throw new ShapeMismatchError(`${this.name}: gradient has shape [${m.dy.shape}] but the forward output was [${state.outputShape}].`);
    }
    this.check(m.dy, 'gradient', this.module.outputShape);
    this.pending.get(m.sentinel.id)?.delete(m.batch);
    const staleness = Math.max(m.staleness ?? 0, this.module.params.current.id - state.version.id);
    const { dx, grads } = this.module.backward(m.dy, state, this.previous !== undefined);
    m.dy.dispose();
    if (this.previous && dx) {
      this.previous.tell({ type: 'gate.backward', sentinel: m.sentinel, batch: m.batch, dy: dx, staleness });
    } else {
      m.sentinel.tell({ type: 'sentinel.backwardDone', batch: m.batch, staleness });
    }
    try {
      this.module.update(this.optimizer, grads, state);
    } finally {
      grads.forEach((g) => g.dispose());
    }
  }

  private predict(m: GatePredict): void {
    let y: tf.Tensor;
    try {
      this.check(m.x, 'predict input', this.module.inputShape);
      y = this.module.predict(m.x);
    } catch (error) {
      m.sentinel.tell({ type: 'sentinel.batchFailed', batch: m.batch, error: toErrorInfo(error) });
      return;
    } finally {
      m.x.dispose();
    }
    if (this.next) this.next.tell({ type: 'gate.predict', sentinel: m.sentinel, batch: m.batch, x: y });
    else m.sentinel.tell({ type: 'sentinel.predictions', batch: m.batch, logits: y });
  }

  private abort(sentinel: ActorRef<SentinelReply>, batch: number, error: ErrorInfo): void {
    const batches = this.pending.get(sentinel.id);
    const state = batches?.get(batch);
    if (state) {
      batches?.delete(batch);
      this.module.release(state);
    }
    const message: GateAbort = { type: 'gate.abort', sentinel, batch, error };
    if (this.previous) this.previous.tell(message);
    else sentinel.tell({ type: 'sentinel.batchFailed', batch, error });
  }

  private detach(which: { sentinelId?: string; node?: string }, replyTo?: ActorRef<{ type: 'gate.detached'; dropped: number }>): void {
    let dropped = 0;
    for (const [key, batches] of this.pending) {
      if (key !== which.sentinelId && (which.node === undefined || this.nodes.get(key) !== which.node)) continue;
      this.pending.delete(key);
      this.nodes.delete(key);
      batches.forEach((state) => this.module.release(state));
      dropped += batches.size;
    }
    replyTo?.tell({ type: 'gate.detached', dropped });
  }

  /** Replaces weights and optimizer state, all or nothing: a failure rolls the optimizer back. */
  private setState(m: GateSetState): void {
    const previousState = m.optimizer ? this.optimizer.getState() : undefined;
    try {
      if (m.optimizer) this.optimizer.setState(m.optimizer); // validates before it changes anything
      try {
        this.module.setWeights(m.weights); // validates before it changes anything
      } catch (error) {
        if (previousState) this.optimizer.setState(previousState);
        throw error;
      }
      m.replyTo.tell({ type: 'gate.stateSet' });
    } catch (error) {
      m.replyTo.tell({ type: 'gate.stateSet', error: toErrorInfo(error) });
    } finally {
      previousState?.forEach((s) => s.tensor.dispose());
      m.weights.forEach((w) => w.tensor.dispose());
      m.optimizer?.forEach((s) => s.tensor.dispose());
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
