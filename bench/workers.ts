/**
 * Competitor 4: akkordeon with gates in worker threads. `Network.create` with placement
 * `'auto'` (on 2 cores: gate 0 whole in a worker thread, gates 1-2 on the main thread, next to
 * the sentinel), the same gates, optimizer and training sentinel as the one-thread row; the test
 * set runs through a test sentinel on the same network.
 */
import * as tf from '@tensorflow/tfjs';
import { mnistMlp } from '../src/models/index.js';
import { describePlacement } from '../src/deploy/index.js';
import { Network } from '../src/network/index.js';
import { trainOnce } from './akkordeon.js';
import { accuracyOf, type BenchData, type BenchResult, type Competitor, describeThreadCpu, OPTIMIZER, stopwatch, testSentinel, threadCpuSeconds, trainProvider } from './common.js';

/** akkordeon: 3 gates placed by `'auto'` over worker threads and the main thread, 1 sentinel (concurrency 4). */
export const workersCompetitor: Competitor = {
  name: 'gates in worker threads',
  key: 'workers',
  async train(data: BenchData, epochs: number): Promise<BenchResult> {
    const before = tf.memory().numTensors;
    const gates = mnistMlp();
    const network = await Network.create({ inputShape: [784], gates, optimizer: OPTIMIZER, placement: 'auto' });
    let figures: Omit<BenchResult, 'leakedTensors'>;
    try {
      if (data.warmupBatches > 0) await trainOnce(network, trainProvider(data, data.warmupBatches * data.batchSize), data.batchSize);
      const provider = trainProvider(data);

      const [elapsed, threads] = [stopwatch(), threadCpuSeconds()];
      const samples = await trainOnce(network, provider, data.batchSize, epochs);
      const { seconds, cpuSeconds } = elapsed();
      const cpuSplit = describeThreadCpu(threads, threadCpuSeconds());

      const tester = testSentinel(data);
      network.attach(tester);
      const testAccuracy = accuracyOf(await tester.done);
      const note = `placement 'auto': ${describePlacement(network.placement, gates.map((g) => g.name))}`;
      figures = { samplesPerSecond: samples / seconds, testAccuracy, samples, seconds, cpuSeconds, cpuSplit, note };
    } finally {
      await network.dispose();
    }
    return { ...figures, leakedTensors: tf.memory().numTensors - before };
  },
};
