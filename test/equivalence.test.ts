/**
 * One sentinel with concurrency 1 must train exactly like a synchronous tfjs loop: same
 * network, same initial weights, same data order, plain SGD.
 */
import * as tf from '@tensorflow/tfjs';
import { Network } from '../src/network/index.js';
import { SGD } from '../src/optim/index.js';
import { Sentinel } from '../src/sentinel/index.js';
import { blobs, maxAbsDiff, setupBackend } from './helpers.js';

beforeAll(setupBackend);

function layers(): tf.layers.Layer[][] {
  return [
    [tf.layers.dense({ units: 32, activation: 'relu' }), tf.layers.dense({ units: 16, activation: 'tanh' })],
    [tf.layers.dense({ units: 12, activation: 'sigmoid' })],
    [tf.layers.dense({ units: 4 })],
  ];
}

test('concurrency 1 matches a synchronous tfjs training loop within 1e-5 after 20 steps', async () => {
  const lr = 0.1;
  const batchSize = 16;
  const data = blobs(20 * batchSize, 10, 4, 7);
  const network = new Network({
    inputShape: [10],
    gates: layers().map((l) => ({ layers: l })),
    optimizer: () => new SGD({ learningRate: lr }),
  });
  const initial = (await network.getState()).flatMap((s) => s.weights.map((w) => w.tensor));

  // Reference: the same layers in one tfjs model, trained with tf.train.sgd.
  const model = tf.sequential({ layers: [tf.layers.inputLayer({ inputShape: [10] }), ...layers().flat()] });
  model.setWeights(initial);
  const optimizer = tf.train.sgd(lr);
  const batches = data.batches(1, batchSize, true);
  for (let step = 0; step < 20; step++) {
    const batch = batches.next().value as { x: tf.Tensor; y: tf.Tensor };
    optimizer.minimize(() => tf.losses.softmaxCrossEntropy(tf.oneHot(batch.y as tf.Tensor1D, 4), model.apply(batch.x) as tf.Tensor) as tf.Scalar);
    tf.dispose([batch.x, batch.y]);
  }

  const sentinel = new Sentinel({ name: 'train', mode: 'train', data, batchSize, concurrency: 1, epochs: 1 });
  network.attach(sentinel);
  const summary = await sentinel.done;
  expect(summary.epochs[0]?.maxStaleness).toBe(0);

  const trained = (await network.getState()).flatMap((s) => s.weights.map((w) => w.tensor));
  const moved = maxAbsDiff(trained, initial);
  expect(moved).toBeGreaterThan(1e-3); // training did change the weights
  expect(maxAbsDiff(trained, model.getWeights())).toBeLessThan(1e-5);
  tf.dispose([...initial, ...trained]);
  optimizer.dispose();
  model.dispose();
  await network.dispose();
});
