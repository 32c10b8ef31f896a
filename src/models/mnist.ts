/**
 * Ready-made MNIST networks, split into gates. Inputs are `[batch, 784]` float32 pixels in
 * [0, 1]; outputs are logits `[batch, 10]`.
 */
import * as tf from '@tensorflow/tfjs';
import type { GateSpec } from '../gate/index.js';

/** Model names accepted by {@link mnistModel} and the `--model` flag. */
export const MNIST_MODELS = ['mlp', 'cnn'] as const;
/** `'mlp'` or `'cnn'`. */
export type MnistModelName = (typeof MNIST_MODELS)[number];

/**
 * The MLP 784-512-256-10 (ReLU) over 3 gates, one dense layer each; He-normal initial weights
 * (He et al., ICCV 2015) from `seed`.
 */
export function mnistMlp(seed = 1): GateSpec[] {
  const init = (i: number) => tf.initializers.heNormal({ seed: seed + i });
  return [
    { name: 'dense-512', layers: [tf.layers.dense({ units: 512, activation: 'relu', kernelInitializer: init(0) })] },
    { name: 'dense-256', layers: [tf.layers.dense({ units: 256, activation: 'relu', kernelInitializer: init(1) })] },
    { name: 'logits', layers: [tf.layers.dense({ units: 10, kernelInitializer: tf.initializers.glorotUniform({ seed: seed + 2 }) })] },
  ];
}

/**
 * A small CNN over 3 gates: conv 32@3x3 → max-pool → conv 64@3x3 → max-pool → dense 128 →
 * dropout 0.3 → dense 10 (logits).
 */
export function mnistCnn(seed = 1): GateSpec[] {
  const init = (i: number) => tf.initializers.heNormal({ seed: seed + i });
  return [
    {
      name: 'conv-32',
      layers: [
        tf.layers.reshape({ targetShape: [28, 28, 1] }),
        tf.layers.conv2d({ filters: 32, kernelSize: 3, activation: 'relu', kernelInitializer: init(0) }),
        tf.layers.maxPooling2d({ poolSize: 2 }),
      ],
    },
    {
      name: 'conv-64',
      layers: [
        tf.layers.conv2d({ filters: 64, kernelSize: 3, activation: 'relu', kernelInitializer: init(1) }),
        tf.layers.maxPooling2d({ poolSize: 2 }),
        tf.layers.flatten(),
      ],
    },
    {
      name: 'classifier',
      layers: [
        tf.layers.dense({ units: 128, activation: 'relu', kernelInitializer: init(2) }),
        tf.layers.dropout({ rate: 0.3 }),
        tf.layers.dense({ units: 10, kernelInitializer: tf.initializers.glorotUniform({ seed: seed + 3 }) }),
      ],
    },
  ];
}

/** The gates of an MNIST model by name. */
export function mnistModel(name: MnistModelName, seed = 1): GateSpec[] {
  return name === 'cnn' ? mnistCnn(seed) : mnistMlp(seed);
}
