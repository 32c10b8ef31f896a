/**
 * Competitor 3: akkordeon in one thread. A `Network` of three gates (one dense layer each) and
 * one training `Sentinel` with 4 batches in flight, every gate with its own DC-ASGD optimizer
 * (learning rate 0.02, momentum 0.9), all actors on the main thread.
 */
import * as tf from '@tensorflow/tfjs';
import { Network } from '../src/network/index.js';
import { DCASGD } from '../src/optim/index.js';
import { Sentinel } from '../src/sentinel/index.js';
import { type BenchData, type BenchResult, type Competitor, LAYER_SIZES, stopwatch, testAccuracy, trainProvider } from './common.js';

/** Batches in flight per sentinel. */
export const CONCURRENCY = 4;

function buildNetwork(): Network {
  const [inputs, h1, h2, classes] = LAYER_SIZES;
  return new Network({
    inputShape: [inputs],
    gates: [
      { name: 'dense-512', layers: [tf.layers.dense({ units: h1, activation: 'relu' })] },
      { name: 'dense-256', layers: [tf.layers.dense({ units: h2, activation: 'relu' })] },
      { name: 'logits', layers: [tf.layers.dense({ units: classes })] },
    ],
    optimizer: () => new DCASGD({ learningRate: 0.02, momentum: 0.9 }),
  });
}

/** Runs one training sentinel to completion; returns the samples it trained on. */
async function trainOnce(network: Network, provider: ReturnType<typeof trainProvider>, batchSize: number, epochs: number): Promise<number> {
  const sentinel = new Sentinel({ name: 'train', mode: 'train', data: provider, batchSize, concurrency: CONCURRENCY, epochs });
  network.attach(sentinel);
  const summary = await sentinel.done;
  return summary.epochs.reduce((n, e) => n + e.samples, 0);
}

/** akkordeon: 3 gates, 1 sentinel (concurrency 4), DC-ASGD, one thread. */
export const akkordeonCompetitor: Competitor = {
  name: 'akkordeon (1 thread)',
  key: 'akkordeon',
  async train(data: BenchData, epochs: number): Promise<BenchResult> {
    const before = tf.memory().numTensors;
    const network = buildNetwork();
    if (data.warmupBatches > 0) await trainOnce(network, trainProvider(data, data.warmupBatches * data.batchSize), data.batchSize, 1);
    const provider = trainProvider(data);

    const elapsed = stopwatch();
    const samples = await trainOnce(network, provider, data.batchSize, epochs);
    const { seconds, cpuSeconds } = elapsed();

    const accuracy = await testAccuracy(data, (x) => network.predict(x));
    await network.dispose();
    return { samplesPerSecond: samples / seconds, testAccuracy: accuracy, samples, seconds, cpuSeconds, leakedTensors: tf.memory().numTensors - before };
  },
};
