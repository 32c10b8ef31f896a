/**
 * The sentinel actor: owns a data provider, a loss and metrics, and drives training,
 * validation, test or prediction passes through the gates with a bounded window of batches in
 * flight. An epoch closes when all its batches are back; its loss and metrics are weighted by
 * samples. Events: `batch`, `epoch`, `batchError`, `done`.
 */
import * as tf from '@tensorflow/tfjs';
import { EventEmitter } from 'eventemitter3';
import type { Actor, ActorContext, ActorRef } from '../actor/index.js';
import type { Batch, DataProvider } from '../data/index.js';
import { fromErrorInfo, InvalidArgumentError, toErrorInfo } from '../errors.js';
import type { ErrorInfo, GateMessage, SentinelControl, SentinelMessage, SentinelReply } from '../protocol/index.js';

export type { SentinelControl, SentinelMessage };
import { accuracy, type Loss, lossByName, meanSquaredError, type Metric, softmaxCrossEntropy } from './loss.js';
import { type BatchFigures, EpochMeter, type EpochStats } from './stats.js';

/** What a sentinel does with its data. */
export type SentinelMode = 'train' | 'validate' | 'test' | 'predict';

/** Options of a {@link Sentinel}. */
export interface SentinelOptions {
  /** Name in logs and epoch lines, e.g. `'train'`. */
  name: string;
  mode: SentinelMode;
  data: DataProvider;
  /** Samples per batch (default 128). */
  batchSize?: number;
  /** Batches in flight at once (default 1 for evaluation, 4 for training). */
  concurrency?: number;
  /** A loss, or its name in `LOSSES`; default softmax cross-entropy for class labels (`data.numClasses` set), else mean squared error. */
  loss?: Loss | 'softmaxCrossEntropy' | 'meanSquaredError';
  /** Default `[accuracy]` for classification data, else none. */
  metrics?: Metric[];
  /** Passes over the data (epochs) before the sentinel finishes. Default 1. */
  epochs?: number;
  /**
   * Finish once an epoch reaches a target: a metric at least a value
   * (`{ metric: 'accuracy', atLeast: 0.98 }`) or the loss at most a value (`{ metric: 'loss', atMost: 0.01 }`).
   */
  target?: { metric: string; atLeast?: number; atMost?: number };
  /** Finish after this many ms of running (in-flight batches still complete). */
  timeLimitMs?: number;
  /**
   * `'auto'` runs the passes back to back; `'manual'` runs one pass per `requestPass()` (a
   * validation sentinel triggered after each training epoch). Default `'auto'`.
   */
  trigger?: 'auto' | 'manual';
  /** Reshuffle every epoch (default: true when training). */
  shuffle?: boolean;
  /** `'stop'` (default): the first failed batch ends the sentinel with that error; `'skip'`: count it and go on. */
  onBatchError?: 'stop' | 'skip';
  /** Clock in ms, injectable for tests. Default `performance.now`. */
  now?: () => number;
  /**
   * A batch not back within this many ms (a lost message, a restarted server, a dead node) is
   * aborted: the gates free it, it counts as lost in the epoch figures, and training goes on.
   * Default: no timeout.
   */
  batchTimeoutMs?: number;
}

/** Why a sentinel finished. */
export type StopReason = 'epochs' | 'target' | 'time' | 'stopped' | 'error';

/** The result of a finished sentinel. */
export interface SentinelSummary {
  name: string;
  mode: SentinelMode;
  epochs: EpochStats[];
  stoppedBy: StopReason;
  /** Prediction mode only: outputs `[samples, ...outputShape]` in dataset order; caller owns. */
  predictions?: tf.Tensor;
}

/** Events a sentinel emits. */
export interface SentinelEvents {
  batch: (info: { epoch: number; batch: number; size: number; loss: number; done: number; total: number }) => void;
  epoch: (stats: EpochStats) => void;
  /**
   * A batch ended without training: `lost` when it timed out or its node went down (counted
   * in `lostBatches`, never stops the sentinel), else failed (counted in `failedBatches`).
   */
  batchError: (error: ErrorInfo, batch: number, lost: boolean) => void;
  done: (summary: SentinelSummary) => void;
}

interface InFlight {
  batch: Batch;
  timer?: NodeJS.Timeout;
  /** Loss and metrics, measured when the outputs arrive and counted when the batch completes. */
  figures?: BatchFigures;
}

function reached(stats: EpochStats, target: NonNullable<SentinelOptions['target']>): boolean {
  const value = target.metric === 'loss' ? stats.loss : stats.metrics[target.metric];
  if (value === undefined || Number.isNaN(value)) return false;
  return (target.atLeast === undefined || value >= target.atLeast) && (target.atMost === undefined || value <= target.atMost);
}

/** Sentinel actor logic; attach it to a network with `network.attach(sentinel)`. */
export class Sentinel implements Actor<SentinelMessage> {
  readonly events = new EventEmitter<SentinelEvents>();
  /** Resolves with the summary when the sentinel finishes; rejects on a batch error (mode `stop`). */
  readonly done: Promise<SentinelSummary>;
  readonly options: Required<Omit<SentinelOptions, 'target' | 'timeLimitMs' | 'batchTimeoutMs' | 'loss'>> &
    Pick<SentinelOptions, 'target' | 'timeLimitMs' | 'batchTimeoutMs'> & { loss: Loss };
  private resolve!: (summary: SentinelSummary) => void;
  private reject!: (error: Error) => void;
  private first?: ActorRef<GateMessage>;
  private last?: ActorRef<GateMessage>;
  private self?: ActorRef<SentinelMessage>;
  private iterator?: Iterator<Batch>;
  private readonly inFlight = new Map<number, InFlight>();
  private readonly history: EpochStats[] = [];
  private meter?: EpochMeter;
  private nextBatch = 0;
  private epoch = 0;
  private passesRequested = 0;
  private startedAt = 0;
  private finished = false;
  private draining = false;
  /** Sends nothing between `sentinel.hold` and `sentinel.connect`. */
  private held = false;
  /** Finish once the running pass and the passes already requested are done. */
  private finishing = false;
  private failure?: Error;
  private outputs: { indices: Int32Array; logits: tf.Tensor }[] = [];

  /** @throws InvalidArgumentError for a bad batch size, concurrency, epoch count or time limit. */
  constructor(options: SentinelOptions) {
    const training = options.mode === 'train';
    this.options = {
      batchSize: 128,
      concurrency: training ? 4 : 1,
      metrics: options.data.numClasses !== undefined ? [accuracy] : [],
      epochs: 1,
      trigger: 'auto',
      shuffle: training,
      onBatchError: 'stop',
      now: () => performance.now(),
      ...options,
      loss: typeof options.loss === 'string' ? lossByName(options.loss) : (options.loss ?? (options.data.numClasses !== undefined ? softmaxCrossEntropy : meanSquaredError)),
    };
    const { batchSize, concurrency, epochs } = this.options;
    if (!Number.isInteger(batchSize) || batchSize < 1) throw new InvalidArgumentError(`Invalid batch size: ${batchSize}. Use a positive integer.`);
    if (!Number.isInteger(concurrency) || concurrency < 1) throw new InvalidArgumentError(`Invalid concurrency: ${concurrency}. Use a positive integer.`);
    if (!(epochs >= 1)) throw new InvalidArgumentError(`Invalid epochs: ${epochs}. Use at least 1.`);
    if (options.target && options.target.atLeast === undefined && options.target.atMost === undefined) {
      throw new InvalidArgumentError(`Target '${options.target.metric}' needs atLeast or atMost.`);
    }
    const measured = ['loss', ...this.options.metrics.map((m) => m.name)];
    if (options.target && !measured.includes(options.target.metric)) {
      throw new InvalidArgumentError(`Target metric '${options.target.metric}' is not measured by this sentinel (it measures ${measured.join(', ')}); accuracy needs class labels (numClasses on the data).`);
    }
    if (options.timeLimitMs !== undefined && !(options.timeLimitMs > 0)) throw new InvalidArgumentError(`Invalid time limit: ${options.timeLimitMs} ms.`);
    if (options.batchTimeoutMs !== undefined && !(options.batchTimeoutMs > 0)) throw new InvalidArgumentError(`Invalid batch timeout: ${options.batchTimeoutMs} ms.`);
    this.done = new Promise((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
    this.done.catch(() => undefined); // rejections are for whoever awaits `done`
  }

  get name(): string {
    return this.options.name;
  }

  receive(message: SentinelMessage, context: ActorContext<SentinelMessage>): void {
    if (this.finished) return this.disposeMessage(message);
    switch (message.type) {
      case 'sentinel.start':
        this.first = message.first;
        this.last = message.last;
        this.self = context.self;
        this.startedAt = this.options.now();
        if (this.options.trigger === 'auto') this.beginEpoch();
        return;
      case 'sentinel.requestPass':
        this.passesRequested++;
        if (!this.meter) this.beginEpoch();
        return;
      case 'sentinel.finish':
        this.finishing = true;
        if (!this.meter && this.passesRequested === 0) this.finish('stopped');
        return;
      case 'sentinel.logits':
        return this.onLogits(message.batch, message.logits);
      case 'sentinel.predictions':
        return this.onPredictions(message.batch, message.logits);
      case 'sentinel.backwardDone':
        if (!this.inFlight.has(message.batch)) return;
        this.meter?.addStaleness(message.staleness);
        return this.complete(message.batch, true);
      case 'sentinel.batchFailed':
        return this.onFailed(message.batch, message.error);
      case 'sentinel.batchTimeout':
        return this.onTimeout(message.batch);
      case 'sentinel.failInFlight':
        for (const id of [...this.inFlight.keys()]) this.onFailed(id, message.error);
        return;
      case 'sentinel.hold':
        this.held = true;
        for (const id of [...this.inFlight.keys()]) this.lose(id, message.error);
        return;
      case 'sentinel.connect':
        this.first = message.first;
        this.last = message.last;
        this.held = false;
        if (this.meter) this.fill();
        return;
    }
  }

  private beginEpoch(): void {
    if (this.options.trigger === 'manual') {
      if (this.passesRequested === 0) return;
      this.passesRequested--;
    }
    this.epoch++;
    this.iterator = this.options.data.batches(this.epoch, this.options.batchSize, this.options.shuffle);
    this.meter = new EpochMeter(this.options.name, this.options.mode, this.epoch, this.options.now(), this.options.metrics);
    this.fill();
  }

  private fill(): void {
    const { concurrency, timeLimitMs } = this.options;
    if (timeLimitMs !== undefined && this.options.now() - this.startedAt >= timeLimitMs) this.draining = true;
    while (!this.draining && !this.held && this.iterator && this.inFlight.size < concurrency) {
      const next = this.iterator.next();
      if (next.done) {
        this.iterator = undefined;
        break;
      }
      const id = this.nextBatch++;
      const batch = next.value;
      const entry: InFlight = { batch };
      const { batchTimeoutMs } = this.options;
      if (batchTimeoutMs !== undefined) {
        const self = this.self;
        entry.timer = setTimeout(() => self?.tell({ type: 'sentinel.batchTimeout', batch: id }), batchTimeoutMs);
      }
      this.inFlight.set(id, entry);
      const x = batch.x;
      const message = this.options.mode === 'train' ? 'gate.forward' : 'gate.predict';
      this.first?.tell({ type: message, sentinel: this.self as ActorRef<SentinelReply>, batch: id, x });
    }
    if (this.inFlight.size === 0 && (!this.held || this.draining || !this.iterator)) this.endEpoch();
  }

  private onLogits(id: number, logits: tf.Tensor): void {
    const entry = this.inFlight.get(id);
    if (!entry) return void logits.dispose();
    try {
      const { value, gradient } = this.options.loss.compute(logits, entry.batch.y, true);
      entry.figures = this.meter?.measure(entry.batch, value, logits);
      this.last?.tell({ type: 'gate.backward', sentinel: this.self as ActorRef<SentinelReply>, batch: id, dy: gradient as tf.Tensor });
      this.emitBatch(id, entry.batch.size, value);
    } catch (error) {
      this.last?.tell({ type: 'gate.abort', sentinel: this.self as ActorRef<SentinelReply>, batch: id, error: toErrorInfo(error) });
    } finally {
      logits.dispose();
    }
  }

  private onPredictions(id: number, logits: tf.Tensor): void {
    const entry = this.inFlight.get(id);
    if (!entry) return void logits.dispose();
    try {
      if (this.options.mode === 'predict') {
        this.outputs.push({ indices: entry.batch.indices, logits });
        entry.figures = this.meter?.measure(entry.batch, NaN, undefined);
      } else {
        const { value } = this.options.loss.compute(logits, entry.batch.y, false);
        entry.figures = this.meter?.measure(entry.batch, value, logits);
        this.emitBatch(id, entry.batch.size, value);
        logits.dispose();
      }
      this.complete(id, true);
    } catch (error) {
      logits.dispose();
      this.onFailed(id, toErrorInfo(error));
    }
  }

  private emitBatch(batch: number, size: number, loss: number): void {
    const meter = this.meter as EpochMeter;
    this.events.emit('batch', { epoch: this.epoch, batch, size, loss, done: meter.samples, total: this.options.data.size });
  }

  private onFailed(id: number, error: ErrorInfo): void {
    if (!this.inFlight.has(id)) return; // already given up (timeout) or detached
    this.meter?.addFailure();
    this.events.emit('batchError', error, id, false);
    if (this.options.onBatchError === 'stop' && !this.draining) {
      this.draining = true;
      this.failure = fromErrorInfo(error);
    }
    this.complete(id);
  }

  /** A batch that did not come back in time: free it on the gates, count it lost, go on. */
  private onTimeout(id: number): void {
    if (!this.inFlight.has(id)) return;
    const error = { code: 'BatchTimeout', message: `batch ${id} did not come back within ${this.options.batchTimeoutMs} ms` };
    this.last?.tell({ type: 'gate.abort', sentinel: this.self as ActorRef<SentinelReply>, batch: id, error });
    this.lose(id, error);
  }

  /** Counts a batch in flight as lost (not a failure: `onBatchError` does not apply) and ends it. */
  private lose(id: number, error: ErrorInfo): void {
    this.meter?.addLost();
    this.events.emit('batchError', error, id, true);
    this.complete(id);
  }

  /** Ends a batch; only a batch that `succeeded` counts in the epoch's samples, loss and metrics. */
  private complete(id: number, succeeded = false): void {
    const entry = this.inFlight.get(id);
    if (!entry) return;
    clearTimeout(entry.timer);
    this.inFlight.delete(id);
    if (succeeded && entry.figures) this.meter?.add(entry.figures);
    entry.batch.y.dispose();
    this.fill();
  }

  private endEpoch(): void {
    if (!this.meter) return;
    const stats = this.meter.close(this.options.now());
    this.meter = undefined;
    if (stats.samples > 0) {
      this.history.push(stats);
      this.events.emit('epoch', stats);
    }
    if (this.failure) return this.finish('error');
    if (this.draining) return this.finish(this.options.timeLimitMs !== undefined ? 'time' : 'stopped');
    const { target, epochs } = this.options;
    if (target && reached(stats, target)) return this.finish('target');
    if (this.epoch >= epochs) return this.finish('epochs');
    if (this.finishing && (this.options.trigger === 'auto' || this.passesRequested === 0)) return this.finish('stopped');
    this.beginEpoch();
  }

  private finish(reason: StopReason): void {
    if (this.finished) return;
    this.finished = true;
    this.iterator = undefined;
    const summary: SentinelSummary = { name: this.options.name, mode: this.options.mode, epochs: this.history, stoppedBy: reason };
    if (this.options.mode === 'predict') summary.predictions = this.collectPredictions();
    this.events.emit('done', summary);
    if (this.failure) this.reject(this.failure);
    else this.resolve(summary);
  }

  /** Concatenates the prediction batches and restores dataset order. */
  private collectPredictions(): tf.Tensor | undefined {
    const outputs = this.outputs;
    this.outputs = [];
    if (outputs.length === 0) return undefined;
    const samples = outputs.flatMap((o) => Array.from(o.indices));
    const positions = samples.map((_, i) => i).sort((a, b) => (samples[a] as number) - (samples[b] as number));
    const result = tf.tidy(() => tf.gather(tf.concat(outputs.map((o) => o.logits)), positions));
    outputs.forEach((o) => o.logits.dispose());
    return result;
  }

  private disposeMessage(message: SentinelMessage): void {
    if (message.type === 'sentinel.logits' || message.type === 'sentinel.predictions') message.logits.dispose();
  }

  postStop(): void {
    this.inFlight.forEach((entry) => {
      clearTimeout(entry.timer);
      entry.batch.y.dispose();
    });
    this.inFlight.clear();
    this.outputs.forEach((o) => o.logits.dispose());
    this.outputs = [];
    if (!this.finished) {
      this.draining = true;
      this.finish('stopped');
    }
  }
}
