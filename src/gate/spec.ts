/**
 * The description of one gate of a network, as a network and the models build it.
 */
import type * as tf from '@tensorflow/tfjs';
import type { Optimizer, OptimizerSpec } from '../optim/index.js';

/** One gate of a network: its layers and (optionally) its own optimizer or optimizer spec. */
export interface GateSpec {
  name?: string;
  layers: tf.layers.Layer[];
  /** Defaults to `NetworkOptions.optimizer`. Off the main thread only a spec can be used. */
  optimizer?: Optimizer | OptimizerSpec;
}
