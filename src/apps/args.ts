/**
 * Command-line flags shared by the MNIST programs (`npm run simple`, the bench), parsed with
 * commander. Each flag has an `AKKORDEON_*` environment variable only where documented.
 */
import { Command, Option } from 'commander';
import { MNIST_MODELS, type MnistModelName } from '../models/index.js';
import { mnistModelName, nonNegative, positiveInt } from './flags.js';

/** Parsed flags of a training program. */
export interface TrainingArgs {
  epochs: number;
  batchSize: number;
  concurrency: number;
  /** Peak learning rate; undefined: the model's default. */
  lr?: number;
  momentum: number;
  backend?: string;
  data?: string;
  save?: string;
  export?: string;
  model: MnistModelName;
  seed: number;
  /** Where the gates run (`Network.create`'s placement): `auto` (default), `main`, `worker` or `process`. */
  placement: 'auto' | 'main' | 'worker' | 'process';
  progress: boolean;
}

/** Parses `argv` (as `process.argv`); prints usage and exits on `--help` or a bad flag. */
export function parseTrainingArgs(argv: string[], name: string, description: string, defaults: Partial<TrainingArgs> = {}): TrainingArgs {
  const program = new Command(name)
    .description(description)
    .option('--epochs <n>', 'training epochs', positiveInt('--epochs'), defaults.epochs ?? 5)
    .option('--batch-size <n>', 'samples per batch', positiveInt('--batch-size'), defaults.batchSize ?? 128)
    .option('--concurrency <n>', 'training batches in flight', positiveInt('--concurrency'), defaults.concurrency ?? 4)
    .option('--lr <rate>', 'peak learning rate, after a one-epoch warm-up, cosine-decayed to 0 (default 0.03)', nonNegative('--lr'))
    .option('--momentum <m>', 'momentum of DC-ASGD', nonNegative('--momentum', 0.999), defaults.momentum ?? 0.9)
    .option('--model <name>', `network: ${MNIST_MODELS.join(' or ')}`, mnistModelName('--model'), defaults.model ?? 'mlp')
    .option('--backend <name>', 'tensorflow, wasm or cpu (default: first that loads; env AKKORDEON_BACKEND)')
    .option('--data <dir>', 'MNIST directory (default: env MNIST_DIR, else data/mnist, downloaded if missing)')
    .option('--save <dir>', 'write a checkpoint (weights + optimizer state) here at the end')
    .option('--export <dir>', 'write the trained network as a tfjs LayersModel (model.json + weights.bin)')
    .option('--seed <n>', 'seed of weights, shuffling and dropout', positiveInt('--seed'), defaults.seed ?? 1)
    .addOption(
      new Option('--placement <where>', 'where the gates run: auto (worker threads when cores are free and the backend is wasm or cpu), main, worker or process')
        .choices(['auto', 'main', 'worker', 'process'])
        .default(defaults.placement ?? 'auto'),
    )
    .option('--no-progress', 'no progress bars')
    .showHelpAfterError();
  program.parse(argv);
  return program.opts<TrainingArgs>();
}
