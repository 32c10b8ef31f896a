/**
 * Optimizer specifications: plain data that says which optimizer a gate gets, so that the gate
 * can be built in another thread, process or machine. {@link createOptimizer} builds one.
 */
import { InvalidArgumentError } from '../errors.js';
import { cosineDecay, type LearningRateSchedule, type Optimizer } from './optimizer.js';
import { AdaGrad, Adam, DCASGD, type DCASGDOptions, SGD } from './optimizers.js';

/** A learning-rate schedule as data: cosine decay with optional warm-up (see `cosineDecay`). */
export interface CosineScheduleSpec {
  type: 'cosine';
  initial: number;
  steps: number;
  final?: number;
  warmup?: number;
}

/** A learning rate: a constant, or a schedule spec. */
export type LearningRateSpec = number | CosineScheduleSpec;

/** An optimizer as data. */
export type OptimizerSpec =
  | { type: 'sgd'; learningRate: LearningRateSpec; momentum?: number; nesterov?: boolean; weightDecay?: number }
  | { type: 'adam'; learningRate?: LearningRateSpec; beta1?: number; beta2?: number; epsilon?: number }
  | { type: 'adagrad'; learningRate: LearningRateSpec; initialAccumulatorValue?: number }
  | ({ type: 'dcasgd'; learningRate: LearningRateSpec } & Omit<DCASGDOptions, 'learningRate'>);

/**
 * The optimizer every gate gets when none is given, in one process or many: DC-ASGD (adaptive
 * variant; Zheng et al., ICML 2017) with learning rate 0.03 and momentum 0.9, the settings of
 * `npm run simple` (which adds a warm-up and cosine decay).
 */
export const DEFAULT_OPTIMIZER: OptimizerSpec = Object.freeze({ type: 'dcasgd', learningRate: 0.03, momentum: 0.9 });

function learningRate(spec: LearningRateSpec): number | LearningRateSchedule {
  if (typeof spec === 'number') return spec;
  if (spec?.type === 'cosine') return cosineDecay(spec);
  throw new InvalidArgumentError(`Unknown learning-rate spec ${JSON.stringify(spec)}; use a number or { type: 'cosine', initial, steps }.`);
}

/**
 * Builds a fresh optimizer from its spec.
 * @throws InvalidArgumentError for an unknown type or an invalid hyper-parameter.
 */
export function createOptimizer(spec: OptimizerSpec): Optimizer {
  switch (spec?.type) {
    case 'sgd':
      return new SGD({ ...spec, learningRate: learningRate(spec.learningRate) });
    case 'adam':
      return new Adam({ ...spec, learningRate: spec.learningRate === undefined ? undefined : learningRate(spec.learningRate) });
    case 'dcasgd':
      return new DCASGD({ ...spec, learningRate: learningRate(spec.learningRate) });
    case 'adagrad':
      return new AdaGrad({ ...spec, learningRate: learningRate(spec.learningRate) });
    default:
      throw new InvalidArgumentError(`Unknown optimizer type '${(spec as { type?: unknown })?.type}'; use 'sgd', 'adam', 'adagrad' or 'dcasgd'.`);
  }
}
