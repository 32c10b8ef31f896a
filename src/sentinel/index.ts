/**
 * Sentinels: actors that own a data provider, a loss and metrics, and drive training,
 * validation, test or prediction passes through a network of gates, with a bounded window of
 * batches in flight.
 */
export {
  Sentinel,
  type SentinelControl,
  type SentinelEvents,
  type SentinelMessage,
  type SentinelMode,
  type SentinelOptions,
  type SentinelSummary,
  type StopReason,
} from './sentinel.js';
export { accuracy, LOSSES, lossByName, meanSquaredError, softmaxCrossEntropy, type Loss, type Metric } from './loss.js';
export { EpochMeter, formatEpoch, type EpochStats } from './stats.js';
export { sentinelFromSpec, specTensors, type SentinelDataSpec, type SentinelSpec } from './spec.js';
