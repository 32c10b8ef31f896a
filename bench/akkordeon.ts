/**
 * Competitor 3: akkordeon in one thread. A `Network` of three gates (the MNIST MLP of
 * `mnistMlp`, one dense layer each) and one training `Sentinel` with 4 batches in flight, every
 * gate with its own DC-ASGD optimizer (learning rate 0.02, momentum 0.9), all actors on the
 * main thread.
 */
import * as tf from '@tensorflow/tfjs';
import { mnistMlp } from '../src/models/index.js';
import { Network } from '../src/network/index.js';
import { createOptimizer } from '../src/optim/index.js';
import { type BenchData, type BenchResult, type Competitor, describeThreadCpu, OPTIMIZER, samplesOf, stopwatch, testAccuracy, threadCpuSeconds, trainProvider, trainSentinel } from './common.js';

/** Runs one training sentinel on `network` to completion; returns the samples it trained on. */
export async function trainOnce(network: Network, provider: ReturnType<typeof trainProvider>, batchSize: number, epochs = 1): Promise<number> {
  const sentinel = trainSentinel(provider, batchSize, epochs);
  network.attach(sentinel);
  return samplesOf(await sentinel.done);
}

/** akkordeon: 3 gates, 1 sentinel (concurrency 4), DC-ASGD, one thread. */
export const akkordeonCompetitor: Competitor = {
  name: 'akkordeon (1 thread)',
  key: 'akkordeon',
  async train(data: BenchData, epochs: number): Promise<BenchResult> {
    const before = tf.memory().numTensors;
    const network = new Network({ inputShape: [784], gates: mnistMlp(), optimizer: () => createOptimizer(OPTIMIZER) });
    if (data.warmupBatches > 0) await trainOnce(network, trainProvider(data, data.warmupBatches * data.batchSize), data.batchSize);
    const provider = trainProvider(data);

    const [elapsed, threads] = [stopwatch(), threadCpuSeconds()];
    const samples = await trainOnce(network, provider, data.batchSize, epochs);
    const { seconds, cpuSeconds } = elapsed();
    const cpuSplit = describeThreadCpu(threads, threadCpuSeconds());

    const accuracy = await testAccuracy(data, (x) => network.predict(x));
    await network.dispose();
    return { samplesPerSecond: samples / seconds, testAccuracy: accuracy, samples, seconds, cpuSeconds, cpuSplit, leakedTensors: tf.memory().numTensors - before };
  },
};
