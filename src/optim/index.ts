/**
 * Optimizers behind one interface ({@link Optimizer}): each gate owns its own instance and calls
 * `update(params, grads, forwardParams)`, which returns new parameter tensors. The default for
 * asynchronous training is {@link DCASGD}; {@link SGD} (with momentum), {@link Adam} and {@link AdaGrad} (Downpour's server rule) too.
 */
export { Optimizer, checkRange, cosineDecay, type LearningRateSchedule, type NamedTensor } from './optimizer.js';
export {
  AdaGrad,
  Adam,
  DCASGD,
  SGD,
  type AdaGradOptions,
  type AdamOptions,
  type DCASGDOptions,
  type SGDOptions,
} from './optimizers.js';
export { createOptimizer, DEFAULT_OPTIMIZER, type CosineScheduleSpec, type LearningRateSpec, type OptimizerSpec } from './spec.js';
