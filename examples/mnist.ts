/**
 * MNIST on one screen: the MLP 784-512-256-10 as three gates, a training sentinel with 4 batches
 * in flight, then a test sentinel. `npx tsx examples/mnist.ts` (MNIST from data/mnist or MNIST_DIR).
 */
import * as tf from '@tensorflow/tfjs';
import { ArrayProvider, Network, Sentinel, ensureMnist, initBackend, loadMnist, resolveMnistDir } from 'akkordeon';

console.log(`backend: ${await initBackend()}`);
const dir = resolveMnistDir();
await ensureMnist(dir);
const [train, test] = await Promise.all([loadMnist(dir, 'train'), loadMnist(dir, 'test')]);
// Pixels scaled to unit standard deviation; images are [n, 784] float32, labels [n] int32.
const data = (split: typeof train) => new ArrayProvider({ x: split.images.map((v) => v / 0.3081), y: split.labels, inputShape: [784], numClasses: 10, seed: 1 });

// Each gate owns its layers and its own optimizer: DC-ASGD, warmed up over the first of 5 epochs, then cosine decay.
const dense = (units: number, seed: number, activation?: 'relu') => tf.layers.dense({ units, activation, kernelInitializer: tf.initializers.heNormal({ seed }) });
const steps = Math.ceil(60_000 / 128);
const network = await Network.create({
  inputShape: [784],
  gates: [
    { name: 'dense-512', layers: [dense(512, 1, 'relu')] },
    { name: 'dense-256', layers: [dense(256, 2, 'relu')] },
    { name: 'logits', layers: [dense(10, 3)] },
  ],
  optimizer: { type: 'dcasgd', learningRate: { type: 'cosine', initial: 0.03, steps: 5 * steps, warmup: steps }, momentum: 0.9 },
});

// A sentinel owns data, loss and metrics, and keeps 4 batches in flight through the gates.
const trainer = new Sentinel({ name: 'train', mode: 'train', data: data(train), epochs: 5, batchSize: 128, concurrency: 4 });
trainer.events.on('epoch', (s) => console.log(`epoch ${s.epoch}: loss ${s.loss.toFixed(4)}, accuracy ${(100 * (s.metrics.accuracy ?? 0)).toFixed(2)}%, staleness ${s.meanStaleness.toFixed(1)}`));
network.attach(trainer);
await trainer.done;

const tester = new Sentinel({ name: 'test', mode: 'test', data: data(test), batchSize: 1000 });
network.attach(tester);
const { epochs } = await tester.done;
console.log(`test accuracy: ${(100 * (epochs[0]?.metrics.accuracy ?? 0)).toFixed(2)}%`);
await network.dispose();
