/**
 * `npm run downpour`: trains the MNIST MLP by Downpour SGD (Dean et al., NIPS 2012): `--replicas`
 * model replicas (worker threads by default), each on its own share of the 60,000 training
 * images, against `--shards` parameter shards on the main thread; then prints the test line as
 * `npm run simple` does, with the staleness of the applied pushes.
 */
import { Command } from 'commander';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../backend.js';
import { ensureMnist, loadMnist, resolveMnistDir } from '../data/index.js';
import { InvalidArgumentError } from '../errors.js';
import { mnistDescription } from '../models/index.js';
import type { OptimizerSpec } from '../optim/index.js';
import { type ReplicaPlacement, trainDistributed } from '../parallel/index.js';
import type { ModelSpec } from '../protocol/index.js';
import { chainModel } from '../ps/index.js';
import { nonNegative, positiveInt } from './flags.js';

interface DownpourArgs {
  replicas: number;
  shards: number;
  placement: ReplicaPlacement;
  epochs: number;
  batchSize: number;
  nFetch: number;
  nPush: number;
  maxDelay?: number;
  lr?: number;
  momentum: number;
  data?: string;
  seed: number;
  backend?: string;
}

/** Runs `npm run downpour` with `argv` (as `process.argv`). @throws InvalidArgumentError for bad flags. */
export async function downpourMain(argv: string[]): Promise<void> {
  const args = new Command('downpour')
    .description('Train the MNIST MLP by Downpour SGD: model replicas against sharded parameter servers.')
    .option('--replicas <n>', 'model replicas', positiveInt('--replicas'), 2)
    .option('--shards <n>', 'parameter shards (on the main thread)', positiveInt('--shards'), 1)
    .option('--placement <where>', 'where replicas run: main, worker or process', 'worker')
    .option('--epochs <n>', "passes over each replica's data", positiveInt('--epochs'), 8)
    .option('--batch-size <n>', 'samples per batch', positiveInt('--batch-size'), 128)
    .option('--n-fetch <n>', 'fetch parameters every this many batches', positiveInt('--n-fetch'), 1)
    .option('--n-push <n>', 'push gradients every this many batches', positiveInt('--n-push'), 1)
    .option('--max-delay <n>', 'bounded delay in pushes (0: synchronous SGD)', nonNegative('--max-delay'))
    .option('--lr <rate>', "the shards' SGD learning rate, decayed along a cosine (default 0.05 / replicas: every replica's push is a step)", Number)
    .option('--momentum <m>', "the shards' momentum (0.9 diverges with the staleness of asynchronous pushes)", Number, 0.5)
    .option('--data <dir>', 'MNIST directory (default: env MNIST_DIR, else data/mnist)')
    .option('--seed <n>', 'seed of the initial weights and shuffling', positiveInt('--seed'), 1)
    .option('--backend <name>', 'tensorflow, wasm or cpu')
    .showHelpAfterError()
    .parse(argv)
    .opts<DownpourArgs>();
  if (!['main', 'worker', 'process'].includes(args.placement)) throw new InvalidArgumentError(`--placement must be main, worker or process, got '${args.placement}'.`);
  console.log(`backend: ${await initBackend(args.backend)}`);
  const dir = resolveMnistDir(args.data);
  await ensureMnist(dir);
  const description = mnistDescription('mlp', args.seed);
  const model: ModelSpec = { kind: 'layers', inputShape: description.inputShape, gates: description.gates, loss: 'softmaxCrossEntropy', seed: args.seed };
  const share = Math.floor(60_000 / args.replicas);
  // The shards' learning rate decays to 0 along a cosine over every push of the run.
  const totalPushes = Math.ceil((args.epochs * Math.ceil(share / args.batchSize) * args.replicas) / args.nPush);
  const optimizer: OptimizerSpec = { type: 'sgd', learningRate: { type: 'cosine', initial: args.lr ?? 0.05 / args.replicas, steps: totalPushes }, momentum: args.momentum };
  const scale = 1 / 0.3081; // as npm run simple: unit standard deviation, background still 0
  let last = 0;
  const result = await trainDistributed({
    model,
    data: (r) => ({ kind: 'mnist', split: 'train', dir, from: r * share, to: (r + 1) * share, scale, seed: args.seed + r }),
    replicas: args.replicas,
    shards: args.shards,
    placement: args.placement,
    optimizer,
    batchSize: args.batchSize,
    epochs: args.epochs,
    nFetch: args.nFetch,
    nPush: args.nPush,
    maxDelay: args.maxDelay,
    onStep: (replica, { epoch, loss }) => {
      if (replica === 'replica-0' && epoch !== last) console.log(`replica-0 epoch ${(last = epoch)}: loss ${loss.toFixed(4)}`);
    },
  });
  const test = await loadMnist(dir, 'test');
  const net = chainModel(model as Extract<ModelSpec, { kind: 'layers' }>);
  const x = tf.tensor2d(test.images.map((v) => v * scale), [10_000, 784]);
  const logits = net.predict?.(result.params, x) as tf.Tensor;
  const predicted = tf.tidy(() => Array.from(tf.argMax(logits, 1).dataSync()));
  const accuracy = predicted.filter((p, i) => p === test.labels[i]).length / 10_000;
  tf.dispose([x, logits]);
  net.dispose?.();
  result.params.forEach((t) => t.dispose());
  const samples = result.replicas.reduce((n, r) => n + ('steps' in r ? r.steps * args.batchSize : 0), 0);
  const pushes = result.staleness.reduce((a, b) => a + b, 0);
  const meanStaleness = result.staleness.reduce((a, n, s) => a + n * s, 0) / Math.max(1, pushes);
  const failed = result.replicas.filter((r) => 'error' in r);
  console.log(`${args.replicas} replica(s) (${args.placement}), ${args.shards} shard(s): ${(samples / result.seconds).toFixed(0)} samples/s over ${result.seconds.toFixed(1)} s, mean staleness ${meanStaleness.toFixed(2)} pushes${failed.length ? `, ${failed.length} replica(s) failed` : ''}`);
  failed.forEach((r) => console.log(`${r.replica} failed: ${"error" in r ? r.error.message : ""}`));
  console.log(`test: accuracy ${(accuracy * 100).toFixed(2)}%`);
}
