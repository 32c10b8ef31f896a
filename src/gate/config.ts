/**
 * Gates as data: a {@link GateConfig} holds the layer configs, input shape and optimizer spec of
 * a gate, so that a gate can be built in a worker thread, a child process or on another machine.
 */
import * as tf from '@tensorflow/tfjs';
import { InvalidArgumentError } from '../errors.js';
import { createOptimizer } from '../optim/index.js';
import type { GateConfig, LayerConfig } from '../protocol/index.js';
import { Gate } from './gate.js';

export type { GateConfig, LayerConfig };

/** The config of a layer (built or not). */
export function layerConfig(layer: tf.layers.Layer): LayerConfig {
  return { className: layer.getClassName(), config: layer.getConfig() as Record<string, unknown> };
}

/**
 * Re-creates a layer from its config through the tfjs class registry.
 * @throws InvalidArgumentError for a class tfjs does not know, or a config it rejects.
 */
export function createLayer({ className, config }: LayerConfig): tf.layers.Layer {
  const classes = tf.serialization.SerializationMap.getMap().classNameMap;
  const entry = typeof className === 'string' && Object.hasOwn(classes, className) ? classes[className] : undefined;
  if (!entry) {
    throw new InvalidArgumentError(`Layer class '${className}' is not registered with tfjs; register it with tf.serialization.registerClass in every process that builds it.`);
  }
  const [cls, fromConfig] = entry;
  try {
    return fromConfig(cls, config as tf.serialization.ConfigDict) as unknown as tf.layers.Layer;
  } catch (error) {
    throw new InvalidArgumentError(`The config of a '${className}' layer does not build: ${(error as Error).message}`, { cause: error });
  }
}

/**
 * Builds a gate from its config.
 * @throws InvalidArgumentError or ShapeMismatchError for a config that does not build.
 */
export function gateFromConfig(config: GateConfig): Gate {
  return new Gate({
    name: config.name,
    layers: config.layers.map(createLayer),
    inputShape: config.inputShape,
    optimizer: createOptimizer(config.optimizer),
    seed: config.seed,
    checkFinite: config.checkFinite,
  });
}
