/**
 * Competitor 1: plain tfjs-layers `model.fit` on the whole training set held as one tensor,
 * SGD (learning rate 0.1), shuffled every epoch, softmax cross-entropy on linear logits.
 */
import * as tf from '@tensorflow/tfjs';
import { type BenchData, type BenchResult, type Competitor, LAYER_SIZES, stopwatch, testAccuracy } from './common.js';

function buildModel(): tf.Sequential {
  const [inputs, h1, h2, classes] = LAYER_SIZES;
  const model = tf.sequential({
    layers: [
      tf.layers.dense({ inputShape: [inputs], units: h1, activation: 'relu' }),
      tf.layers.dense({ units: h2, activation: 'relu' }),
      tf.layers.dense({ units: classes }),
    ],
  });
  model.compile({
    optimizer: tf.train.sgd(0.1),
    loss: (yTrue: tf.Tensor, yPred: tf.Tensor) => tf.losses.softmaxCrossEntropy(yTrue, yPred),
  });
  return model;
}

/** `tf.sequential` + `model.fit(x, y, { batchSize, epochs, shuffle: true, verbose: 0 })`. */
export const fitCompetitor: Competitor = {
  name: 'tfjs model.fit',
  key: 'fit',
  async train(data: BenchData, epochs: number): Promise<BenchResult> {
    const before = tf.memory().numTensors;
    const { images, labels, count } = data.train;
    const x = tf.tensor2d(images, [count, 784]);
    const y = tf.tidy(() => tf.oneHot(tf.tensor1d(labels, 'int32'), 10).toFloat());
    const model = buildModel();
    const { batchSize } = data;

    const warm = data.warmupBatches * batchSize;
    if (warm > 0) {
      const [wx, wy] = [x.slice(0, warm), y.slice(0, warm)];
      await model.fit(wx, wy, { batchSize, epochs: 1, shuffle: true, verbose: 0 });
      tf.dispose([wx, wy]);
    }

    const elapsed = stopwatch();
    await model.fit(x, y, { batchSize, epochs, shuffle: true, verbose: 0 });
    const { seconds, cpuSeconds } = elapsed();

    const accuracy = await testAccuracy(data, (t) => model.predict(t) as tf.Tensor);
    tf.dispose([x, y]);
    model.optimizer.dispose();
    model.dispose();
    const samples = count * epochs;
    return { samplesPerSecond: samples / seconds, testAccuracy: accuracy, samples, seconds, cpuSeconds, leakedTensors: tf.memory().numTensors - before };
  },
};
