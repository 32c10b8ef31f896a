/**
 * A network: a chain of gates in one actor system, plus the sentinels attached to it.
 * Sentinels attach and detach while training runs; detaching frees every tensor the gates held
 * for that sentinel.
 */
import * as tf from '@tensorflow/tfjs';
import { ActorSystem, type ActorRef } from '../actor/index.js';
import { AkkordeonError, fromErrorInfo, InvalidArgumentError } from '../errors.js';
import { Gate } from '../gate/index.js';
import { DCASGD, type NamedTensor, type Optimizer } from '../optim/index.js';
import { disposeMessageTensors, type GateDetached, type GateMessage, type GateState, type GateStateSet, type SentinelReply } from '../protocol.js';
import type { Sentinel, SentinelMessage } from '../sentinel/index.js';

/** One gate of a network: its layers and (optionally) its own optimizer. */
export interface GateSpec {
  name?: string;
  layers: tf.layers.Layer[];
  /** Defaults to `NetworkOptions.optimizer()`. */
  optimizer?: Optimizer;
}

/** Options of a {@link Network}. */
export interface NetworkOptions {
  /** Per-sample input shape of gate 0, e.g. `[784]`. */
  inputShape: number[];
  gates: GateSpec[];
  /** Makes each gate's optimizer; default DC-ASGD (adaptive) with learning rate 0.1. */
  optimizer?: () => Optimizer;
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
}

/** A chain of gates with attach/detach of sentinels, prediction, and state transfer. */
export class Network {
  readonly system: ActorSystem;
  readonly gates: ActorRef<GateMessage>[];
  /** Per-sample shapes at the network's input and output, e.g. `[784]` and `[10]`. */
  readonly inputShape: number[];
  readonly outputShape: number[];
  private readonly attached = new Map<Sentinel, ActorRef<SentinelMessage>>();
  /** Detaches under way, awaited by {@link dispose}. */
  private readonly releases = new Set<Promise<void>>();
  private readonly askTimeoutMs: number;

  /** @throws InvalidArgumentError without gates; ShapeMismatchError when the gates' shapes do not chain. */
  constructor(options: NetworkOptions) {
    if (options.gates.length === 0) throw new InvalidArgumentError('A network needs at least one gate.');
    this.system = options.system ?? new ActorSystem();
    this.askTimeoutMs = options.askTimeoutMs ?? 30_000;
    const makeOptimizer = options.optimizer ?? (() => new DCASGD({ learningRate: 0.1 }));
    let shape = options.inputShape;
    const logic = options.gates.map((spec, i) => {
      const gate = new Gate({
        name: spec.name ?? `gate-${i}`,
        layers: spec.layers,
        inputShape: shape,
        optimizer: spec.optimizer ?? makeOptimizer(),
        seed: (options.seed ?? 0) + i,
        checkFinite: options.checkFinite,
      });
      shape = gate.module.outputShape;
      return gate;
    });
    this.inputShape = options.inputShape;
    this.outputShape = shape;
    this.gates = logic.map((gate) => this.system.spawn(() => gate, { name: gate.name, supervision: 'resume' }));
    this.gates.forEach((ref, i) => ref.tell({ type: 'gate.connect', previous: this.gates[i - 1], next: this.gates[i + 1] }));
    // Outputs still travelling to a sentinel that has gone are freed here.
    this.system.events.on('deadLetter', (_target, message) => disposeMessageTensors(message));
  }

  /**
   * Starts a sentinel on this network and returns its ref. It runs until it finishes (then it
   * is detached automatically) or until {@link detach}.
   */
  attach(sentinel: Sentinel): ActorRef<SentinelMessage> {
    if (this.attached.has(sentinel)) throw new InvalidArgumentError(`Sentinel '${sentinel.name}' is already attached.`);
    const ref = this.system.spawn<SentinelMessage>(() => sentinel, { name: `sentinel-${sentinel.name}` });
    this.attached.set(sentinel, ref);
    const release = () => {
      const pending = this.release(sentinel).catch(() => undefined);
      this.releases.add(pending);
      void pending.finally(() => this.releases.delete(pending));
    };
    sentinel.done.then(release, release);
    ref.tell({ type: 'sentinel.start', first: this.gates[0] as ActorRef<GateMessage>, last: this.gates[this.gates.length - 1] as ActorRef<GateMessage> });
    return ref;
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
   * gates have confirmed. In-flight batches of that sentinel are dropped.
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

  private async detachWhere(which: { sentinelId?: string; node?: string }): Promise<number> {
    let dropped = 0;
    for (const gate of this.gates) {
      const reply = await this.system.ask<GateDetached, GateMessage>(gate, (replyTo) => ({ type: 'gate.detach', ...which, replyTo }), this.askTimeoutMs);
      dropped += reply.dropped;
    }
    return dropped;
  }

  /**
   * Predicts outputs for `x` (`[batch, ...inputShape]`, float32) with dropout off. The caller
   * owns the result (`[batch, ...outputShape]`); `x` is not disposed.
   * @throws the gate's named error (e.g. ShapeMismatchError) when `x` is rejected.
   */
  async predict(x: tf.Tensor): Promise<tf.Tensor> {
    const reply = await this.system.ask<SentinelReply, GateMessage>(
      this.gates[0] as ActorRef<GateMessage>,
      (replyTo) => ({ type: 'gate.predict', sentinel: replyTo, batch: 0, x: tf.clone(x) }),
      this.askTimeoutMs,
    );
    if (reply.type === 'sentinel.predictions') return reply.logits;
    if (reply.type === 'sentinel.batchFailed') throw fromErrorInfo(reply.error);
    throw new AkkordeonError(`Unexpected reply '${reply.type}' to a prediction.`);
  }

  /** Copies of every gate's weights, optimizer state and layer configs; the caller owns them. */
  getState(): Promise<GateState[]> {
    return Promise.all(
      this.gates.map((gate) => this.system.ask<GateState, GateMessage>(gate, (replyTo) => ({ type: 'gate.getState', replyTo }), this.askTimeoutMs)),
    );
  }

  /**
   * Replaces every gate's weights (and optimizer state, if given). Tensors are consumed.
   * @throws the first gate's named error (e.g. CheckpointMismatchError); such a gate is unchanged.
   */
  async setState(states: { weights: NamedTensor[]; optimizer?: NamedTensor[] }[]): Promise<void> {
    if (states.length !== this.gates.length) {
      states.forEach((s) => [...s.weights, ...(s.optimizer ?? [])].forEach((t) => t.tensor.dispose()));
      throw new InvalidArgumentError(`Got state for ${states.length} gates but this network has ${this.gates.length}.`);
    }
    const replies = await Promise.all(
      this.gates.map((gate, i) =>
        this.system.ask<GateStateSet, GateMessage>(
          gate,
          (replyTo) => ({ type: 'gate.setState', weights: states[i]?.weights ?? [], optimizer: states[i]?.optimizer, replyTo }),
          this.askTimeoutMs,
        ),
      ),
    );
    const failed = replies.find((r) => r.error);
    if (failed?.error) throw fromErrorInfo(failed.error);
  }

  /** Stops every sentinel and gate and frees their tensors. */
  async dispose(): Promise<void> {
    await Promise.allSettled([...this.releases]);
    for (const sentinel of [...this.attached.keys()]) await this.release(sentinel);
    this.gates.forEach((gate) => this.system.stop(gate));
  }
}

