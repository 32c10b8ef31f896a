/**
 * Per-epoch bookkeeping of a sentinel: loss and metrics weighted by samples, throughput,
 * failed batches and staleness, plus the one-line epoch report.
 */
import type * as tf from '@tensorflow/tfjs';
import type { Batch } from '../data/index.js';
import type { Metric } from './loss.js';

/** The figures of one finished epoch (one pass over the sentinel's data). */
export interface EpochStats {
  sentinel: string;
  mode: string;
  epoch: number;
  /** Samples that completed (failed batches excluded). */
  samples: number;
  /** Mean loss per sample (weighted by batch size); NaN in prediction mode. */
  loss: number;
  /** Metric values, each the mean per sample, e.g. `{ accuracy: 0.981 }`. */
  metrics: Record<string, number>;
  /** Wall time of the epoch, ms. */
  durationMs: number;
  /** Throughput, samples/s. */
  samplesPerSecond: number;
  failedBatches: number;
  /** Batches given up after `batchTimeoutMs` (lost messages, a restarted server). */
  lostBatches: number;
  /** Mean and largest weight-version lag seen by training batches (0 for evaluation). */
  meanStaleness: number;
  maxStaleness: number;
}

/** The figures of one batch, counted when the batch completes. */
export interface BatchFigures {
  size: number;
  meanLoss: number;
  metricSums: number[];
}

/** Accumulates one epoch. */
export class EpochMeter {
  samples = 0;
  private lossSum = 0;
  private readonly metricSums: number[];
  private failures = 0;
  private lost = 0;
  private stalenessSum = 0;
  private stalenessCount = 0;
  private stalenessMax = 0;

  constructor(
    private readonly sentinel: string,
    private readonly mode: string,
    private readonly epoch: number,
    private readonly startedAt: number,
    private readonly metrics: Metric[],
  ) {
    this.metricSums = metrics.map(() => 0);
  }

  /** Measures a batch: its mean loss and, given predictions, its metric sums; add it with {@link add} once it completes. */
  measure(batch: Batch, meanLoss: number, predictions: tf.Tensor | undefined): BatchFigures {
    const metricSums = predictions ? this.metrics.map((m) => m.batchSum(predictions, batch.y, batch.labels)) : this.metrics.map(() => 0);
    return { size: batch.size, meanLoss, metricSums };
  }

  /** Counts a completed batch. */
  add(figures: BatchFigures): void {
    this.samples += figures.size;
    this.lossSum += figures.meanLoss * figures.size;
    figures.metricSums.forEach((v, i) => (this.metricSums[i] = (this.metricSums[i] as number) + v));
  }

  addFailure(): void {
    this.failures++;
  }

  addLost(): void {
    this.lost++;
  }

  addStaleness(staleness: number): void {
    this.stalenessSum += staleness;
    this.stalenessCount++;
    this.stalenessMax = Math.max(this.stalenessMax, staleness);
  }

  /** Closes the epoch at time `now` (ms). */
  close(now: number): EpochStats {
    const durationMs = Math.max(now - this.startedAt, 1e-6);
    const n = Math.max(this.samples, 1);
    return {
      sentinel: this.sentinel,
      mode: this.mode,
      epoch: this.epoch,
      samples: this.samples,
      loss: this.lossSum / n,
      metrics: Object.fromEntries(this.metrics.map((m, i) => [m.name, (this.metricSums[i] as number) / n])),
      durationMs,
      samplesPerSecond: (this.samples * 1000) / durationMs,
      failedBatches: this.failures,
      lostBatches: this.lost,
      meanStaleness: this.stalenessCount ? this.stalenessSum / this.stalenessCount : 0,
      maxStaleness: this.stalenessMax,
    };
  }
}

/** One line per epoch, e.g. `train  epoch 3  loss 0.0712  accuracy 97.91%  4120 ms  14563 samples/s`. */
export function formatEpoch(stats: EpochStats): string {
  const metrics = Object.entries(stats.metrics)
    .map(([name, value]) => `${name} ${name.includes('accuracy') ? `${(value * 100).toFixed(2)}%` : value.toFixed(4)}`)
    .join('  ');
  const parts = [
    stats.sentinel.padEnd(8),
    `epoch ${String(stats.epoch).padStart(3)}`,
    Number.isNaN(stats.loss) ? '' : `loss ${stats.loss.toFixed(4)}`,
    metrics,
    `${Math.round(stats.durationMs)} ms`,
    `${Math.round(stats.samplesPerSecond)} samples/s`,
  ];
  if (stats.failedBatches > 0) parts.push(`${stats.failedBatches} failed batches`);
  if (stats.lostBatches > 0) parts.push(`${stats.lostBatches} lost batches`);
  if (stats.maxStaleness > 0) parts.push(`staleness ${stats.meanStaleness.toFixed(1)} (max ${stats.maxStaleness})`);
  return parts.filter(Boolean).join('  ');
}
