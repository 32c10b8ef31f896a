/**
 * `npm run bench`: trains the same MLP (784-512-256-10, relu, relu, linear logits, softmax
 * cross-entropy) on the same 60000 MNIST images, in one run on one backend, with
 * (1) tfjs `model.fit`, (2) a hand-written synchronous loop (the single-thread limit),
 * (3) akkordeon in one thread, (4) akkordeon with gates in worker threads and (5) akkordeon
 * with gates in child processes over a loopback nats-server, and prints throughput, ratios,
 * test accuracy and the target checks side by side. A reference row, two copies of (3) training
 * at once in two worker threads that share nothing, shows what the machine's two cores give at
 * best (`ceiling.ts`), and the last line reads the worker row against it.
 *
 * Every competitor runs `--rounds` times, the rounds interleaved (fit, hand, …, nats, then again),
 * so that a slow spell of this shared machine hits every row alike; a row shows its median round,
 * and a ratio is the median of the per-round ratios. Each round warms up first with `--warmup`
 * untimed batches on its fresh network, enough for V8 to finish compiling the hot JavaScript
 * (with 5, the compiler threads still take a tenth of a core through the timed epoch).
 *
 *   npm run bench -- [--backend wasm] [--data DIR] [--epochs 1] [--only fit,hand,akkordeon,workers,ceiling,nats]
 *                    [--batch-size 128] [--warmup 200] [--rounds 3] [--json]
 */
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { Command, InvalidArgumentError as CommanderArgumentError } from 'commander';
import { initBackend } from '../src/backend.js';
import { describeError } from '../src/errors.js';
import { akkordeonCompetitor } from './akkordeon.js';
import { ceilingCompetitor } from './ceiling.js';
import { type BenchResult, type Competitor, findMnistDir, loadBenchData, now } from './common.js';
import { fitCompetitor } from './fit.js';
import { handwrittenCompetitor } from './handwritten.js';
import { natsCompetitor } from './nats.js';
import { ceilingLine, checks, formatChecks, formatTable, medianRow, type Row, writeJson } from './report.js';
import { workersCompetitor } from './workers.js';
import { positiveInt } from '../src/apps/flags.js';

const COMPETITORS: Competitor[] = [fitCompetitor, handwrittenCompetitor, akkordeonCompetitor, workersCompetitor, ceilingCompetitor, natsCompetitor];
const RESULTS_FILE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), 'results', 'latest.json');

function competitorList(value: string): string[] {
  const keys = value.split(',').map((s) => s.trim()).filter(Boolean);
  const known = COMPETITORS.map((c) => c.key);
  const unknown = keys.filter((k) => !known.includes(k));
  if (keys.length === 0 || unknown.length > 0) {
    throw new CommanderArgumentError(`unknown competitor '${unknown.join(',')}'; use a comma-separated subset of ${known.join(',')}.`);
  }
  return keys;
}

interface Flags {
  backend?: string;
  data?: string;
  epochs: number;
  only: string[];
  batchSize: number;
  warmup: number;
  rounds: number;
  json: boolean;
}

const program = new Command()
  .name('bench')
  .description('Throughput and test accuracy on MNIST of model.fit, a hand-written loop and akkordeon in one thread, in worker threads and over NATS; plus two one-thread trainings at once, the 2-core ceiling.')
  .option('--backend <name>', 'tfjs backend: auto, tensorflow, wasm or cpu (default: $AKKORDEON_BACKEND, else auto)')
  .option('--data <DIR>', 'MNIST directory (default: $MNIST_DIR, data/mnist, then ../shared/data/mnist)')
  .option('--epochs <n>', 'timed epochs per competitor', positiveInt('--epochs'), 1)
  .option('--only <list>', `competitors to run, comma-separated: ${COMPETITORS.map((c) => c.key).join(',')}`, competitorList, COMPETITORS.map((c) => c.key))
  .option('--batch-size <n>', 'samples per batch', positiveInt('--batch-size'), 128)
  .option('--warmup <n>', 'untimed warm-up batches per competitor and round', positiveInt('--warmup', true), 200)
  .option('--rounds <n>', 'rounds of every competitor, interleaved; rows show the median', positiveInt('--rounds'), 3)
  .option('--json', `also write the figures to ${path.relative(process.cwd(), RESULTS_FILE)}`, false)
  .parse();

async function main(flags: Flags): Promise<void> {
  const backend = await initBackend(flags.backend);
  const dir = await findMnistDir(flags.data);
  const loadStart = now();
  const data = await loadBenchData(dir, flags.batchSize, flags.warmup);
  console.log(
    `backend ${backend} · tfjs ${tf.version.tfjs} · node ${process.version} · ${os.cpus().length} cores · ` +
      `MNIST ${data.train.count} train / ${data.test.count} test from ${dir} (loaded in ${((now() - loadStart) / 1000).toFixed(1)} s)`,
  );
  const load = os.loadavg()[0] ?? 0;
  if (load > 0.5) console.log(`note: load average ${load.toFixed(2)} before the run; other processes distort wall-clock figures (compare samples/CPU-s)`);
  console.log(`batch size ${flags.batchSize} · ${flags.epochs} epoch(s) · ${flags.warmup} warm-up batches each (not timed) · ${flags.rounds} round(s), interleaved\n`);

  const chosen = COMPETITORS.filter((c) => flags.only.includes(c.key));
  const rounds = new Map<string, (BenchResult | undefined)[]>(chosen.map((c) => [c.key, []]));
  for (let round = 1; round <= flags.rounds; round++) {
    for (const competitor of chosen) {
      process.stdout.write(`${flags.rounds > 1 ? `[round ${round}] ` : ''}${competitor.name} ... `);
      const skip = competitor.skipReason?.();
      if (skip) {
        console.log(`skipped: ${skip}`);
        continue;
      }
      const result = await competitor.train(data, flags.epochs).catch((error: unknown) => {
        console.log(`FAILED: ${describeError(error)}`);
        process.exitCode = 1; // the other rows still run and print
        return undefined;
      });
      rounds.get(competitor.key)?.push(result);
      if (!result) continue;
      const leak = result.leakedTensors !== 0 ? `  (WARNING: ${result.leakedTensors} tensors not freed)` : '';
      const cpuShare = (100 * result.cpuSeconds) / result.seconds;
      console.log(
        `${Math.round(result.samplesPerSecond)} samples/s, test accuracy ${(result.testAccuracy * 100).toFixed(2)}%, ` +
          `CPU ${cpuShare.toFixed(0)}% of wall time, load average ${os.loadavg()[0]?.toFixed(2)}${leak}`,
      );
      if (result.note && round === 1) console.log(`  ${result.note}`);
      if (result.cpuSplit) console.log(`  ${result.cpuSplit}`);
    }
  }
  const rows: Row[] = chosen.flatMap((c) => {
    const row = medianRow(c.key, c.name, rounds.get(c.key) ?? []);
    return row ? [row] : [];
  });

  console.log(`\n${formatTable(rows)}\n\n${[formatChecks(checks(rows)), ceilingLine(rows)].filter(Boolean).join('\n')}`);
  if (flags.json) {
    const meta = { date: new Date().toISOString(), backend, tfjs: tf.version.tfjs, node: process.version, cores: os.cpus().length, batchSize: flags.batchSize, epochs: flags.epochs, warmupBatches: flags.warmup, rounds: flags.rounds };
    await writeJson(RESULTS_FILE, meta, rows);
    console.log(`\nwrote ${path.relative(process.cwd(), RESULTS_FILE)}`);
  }
}

try {
  await main(program.opts<Flags>());
} catch (error) {
  console.error(describeError(error));
  process.exitCode = 1;
}
