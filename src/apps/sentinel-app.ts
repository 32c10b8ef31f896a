/**
 * `npm run sentinel`: finds a network by name over NATS, attaches a sentinel to it, runs it and
 * detaches on exit (done, Ctrl-C/SIGINT or SIGTERM). Data is MNIST, normalised with the MNIST
 * mean and std: `train` uses the first 55,000 images of the training file, `validate` the last
 * 5,000 (held out from `train`), `test` the 10,000 of the test file. `<samples>` keeps the first
 * that many; `--shard k/n` then keeps the k-th of n equal parts (one per training sentinel).
 *
 *   npm run sentinel -- train 30000 --network mnist --nats nats://127.0.0.1:4222 --epochs 2
 *   npm run sentinel -- validate --network mnist --every 10
 *   npm run sentinel -- test --network mnist
 */
import path from 'node:path';
import { Command, InvalidArgumentError as CommanderArgumentError } from 'commander';
import { ActorSystem } from '../actor/index.js';
import { describeError } from '../errors.js';
import { initBackend } from '../backend.js';
import { type DataProvider, type Dataset, datasetProvider, datasetSize, ensureMnist, loadMnist, loadProviderModule, readCsv, readJsonl, resolveMnistDir, shardDataset, sliceDataset } from '../data/index.js';
import { attachRemote, loadNetworkRoles, roleAuthorizer } from '../cluster/index.js';
import { answerInvalid, protocolValidator } from '../protocol/index.js';
import { LOSSES, lossByName, Sentinel, type SentinelSummary } from '../sentinel/index.js';
import { connectNats } from '../transport/index.js';
import { nonNegative, positiveInt } from './flags.js';
import { addNatsFlags, logConnection, type NatsFlags, natsOptions, onStopSignal } from './network-app.js';
import { Reporter } from './report.js';

interface SentinelArgs extends NatsFlags {
  network: string;
  epochs?: number;
  batchSize?: number;
  concurrency?: number;
  data?: string;
  csv?: string;
  jsonl?: string;
  provider?: string;
  target?: string;
  classes?: number;
  loss?: string;
  every?: number;
  shard?: [number, number];
  batchTimeout: number;
  discoveryTimeout: number;
  backend?: string;
  seed: number;
  name?: string;
  roles?: string;
  progress: boolean;
}

const MODES = ['train', 'validate', 'test'] as const;
type Mode = (typeof MODES)[number];

function shard(value: string): [number, number] {
  const match = /^(\d+)\/(\d+)$/.exec(value);
  const [k, n] = match ? [Number(match[1]), Number(match[2])] : [0, 0];
  if (!(k >= 1 && k <= n)) throw new CommanderArgumentError(`--shard must be k/n with 1 <= k <= n, got '${value}'.`);
  return [k, n];
}

/** The first `samples` of a dataset, then the k-th of n shards (`--shard`); and a line saying which. */
function cut(ds: Dataset, args: SentinelArgs, samples?: number): { ds: Dataset; which: string } {
  const total = datasetSize(ds);
  let part = samples !== undefined && samples < total ? sliceDataset(ds, 0, samples) : ds;
  if (args.shard) part = shardDataset(part, ...args.shard);
  return { ds: part, which: `${datasetSize(part)} of ${total}${args.shard ? ` (shard ${args.shard.join('/')})` : ''}` };
}

/** MNIST for a mode (train: images 0-54999, validate: 55000-59999, test: the test file), normalised, cut to `samples` and to a shard. */
async function mnistData(mode: Mode, args: SentinelArgs, log: (line: string) => void, samples?: number): Promise<{ data: DataProvider; what: string }> {
  const dir = resolveMnistDir(args.data);
  await ensureMnist(dir, { log: (line) => !/MD5 ok$/.test(line) && log(line) }); // reports downloads only
  const split = await loadMnist(dir, mode === 'test' ? 'test' : 'train');
  const [start, end, what] = mode === 'train' ? [0, 55_000, 'MNIST train images 0-54999'] : mode === 'validate' ? [55_000, 60_000, 'MNIST train images 55000-59999'] : [0, split.count, 'MNIST test images'];
  const { ds, which } = cut(sliceDataset({ x: split.images, y: split.labels, inputShape: [784], numClasses: 10 }, start, end), args, samples);
  const x = ds.x.map((v) => (v - 0.1307) / 0.3081); // MNIST mean and std
  return { data: datasetProvider({ ...ds, x }, args.seed), what: `${what}, ${which}` };
}

/** Data from a CSV or JSON-lines file on this machine, cut to `samples` and to a shard. */
async function fileData(args: SentinelArgs, samples?: number): Promise<{ data: DataProvider; what: string }> {
  const file = (args.csv ?? args.jsonl) as string;
  const { ds, which } = cut(args.csv !== undefined ? await readCsv(file, { target: args.target, classes: args.classes }) : await readJsonl(file, { classes: args.classes }), args, samples);
  return { data: datasetProvider(ds, args.seed), what: `${file}, ${which}, input [${ds.inputShape}]` };
}

/** The sentinel's data: a provider module, a CSV or JSON-lines file, else MNIST. */
async function loadData(mode: Mode, args: SentinelArgs, log: (line: string) => void, samples?: number): Promise<{ data: DataProvider; what: string }> {
  const sources = [args.csv, args.jsonl, args.provider].filter((v) => v !== undefined);
  if (sources.length > 1) throw new CommanderArgumentError('Give at most one of --csv, --jsonl and --provider.');
  if (args.provider !== undefined) {
    const data = await loadProviderModule(path.resolve(args.provider), 'default', { mode, shard: args.shard, samples, seed: args.seed });
    return { data, what: `${args.provider} (${mode})` };
  }
  if (args.csv !== undefined || args.jsonl !== undefined) return fileData(args, samples);
  return mnistData(mode, args, log, samples);
}

/**
 * Runs the sentinel program with `argv` (as `process.argv`); resolves with the summary once the
 * sentinel is done (or stopped by SIGINT/SIGTERM/`signal`) and detached.
 * @throws TransportError when NATS or the network cannot be reached.
 */
export async function sentinelMain(argv: string[], options: { signal?: AbortSignal; log?: (line: string) => void } = {}): Promise<SentinelSummary> {
  const log = options.log ?? ((line: string) => console.log(line));
  const program = addNatsFlags(
    new Command('sentinel')
      .description('Train, validate or test a network that runs elsewhere, found by name over NATS.')
      .argument('<mode>', MODES.join(', '), (v: string) => {
        if (!(MODES as readonly string[]).includes(v)) throw new CommanderArgumentError(`mode must be one of ${MODES.join(', ')}, got '${v}'.`);
        return v;
      })
      .argument('[samples]', 'use only the first this many samples', positiveInt('samples'))
      .requiredOption('--network <name>', 'name of the network (as given to `npm run network -- --name`)')
      .option('--epochs <n>', 'passes over the data (default 1; unlimited with --every)', positiveInt('--epochs'))
      .option('--batch-size <n>', 'samples per batch (default 128 for train, 500 otherwise)', positiveInt('--batch-size'))
      .option('--concurrency <n>', 'batches in flight (default 2; the batches of all trainers together set the weight staleness)', positiveInt('--concurrency'))
      .option('--every <seconds>', 'validate/test: run a pass every this many seconds until stopped', nonNegative('--every'))
      .option('--shard <k/n>', 'use the k-th of n equal parts of the data (e.g. one per trainer)', shard)
      .option('--batch-timeout <ms>', 'give a batch up (and count it lost) after this long', positiveInt('--batch-timeout'), 10_000)
      .option('--discovery-timeout <ms>', 'how long to look for the network', positiveInt('--discovery-timeout'), 10_000)
      .option('--data <dir>', 'MNIST directory (default: env MNIST_DIR, else data/mnist, downloaded if missing)')
      .option('--csv <file>', 'train/evaluate on a CSV file of numbers instead of MNIST (features: every column but --target)')
      .option('--jsonl <file>', 'train/evaluate on a JSON-lines file instead of MNIST, one {"x": [...], "y": ...} per line')
      .option('--provider <module>', 'a .ts/.js module on this machine whose default export is a DataProvider or a function ({ mode, shard, samples, seed }) returning one')
      .option('--target <column>', 'the CSV target column, by name or 0-based index (default: the last column)')
      .option('--classes <n>', 'the target is an integer class label 0..n-1 (default: a regression target)', positiveInt('--classes'))
      .option('--loss <name>', `loss: ${Object.keys(LOSSES).join(' or ')} (default: softmaxCrossEntropy for class labels, else meanSquaredError)`)
      .option('--backend <name>', 'tensorflow, wasm or cpu (default: first that loads; env AKKORDEON_BACKEND)')
      .option('--seed <n>', 'shuffle seed', positiveInt('--seed'), 1)
      .option('--name <name>', 'sentinel name in logs (default the mode)')
      .option('--roles <file>', "the network's roles (roles.json of npm run nats-config): replies and control messages from nodes that are not hosts or admins are refused")
      .option('--no-progress', 'no progress bars'),
  )
    .showHelpAfterError()
    .parse(argv);
  const [mode, samples] = program.processedArgs as [Mode, number | undefined];
  const args = program.opts<SentinelArgs>();
  const name = args.name ?? mode;
  const backend = await initBackend(args.backend);
  const loss = args.loss === undefined ? undefined : lossByName(args.loss);
  const { data, what } = await loadData(mode, args, log, samples);
  const training = mode === 'train';
  const every = args.every !== undefined && !training ? args.every : undefined;
  const sentinel = new Sentinel({
    name,
    mode,
    data,
    ...(loss ? { loss } : {}),
    epochs: args.epochs ?? (every !== undefined ? Infinity : 1),
    batchSize: args.batchSize ?? (training ? 128 : 500),
    concurrency: args.concurrency ?? 2,
    trigger: every !== undefined ? 'manual' : 'auto',
    batchTimeoutMs: args.batchTimeout,
    onBatchError: 'skip',
  });

  const roles = args.roles === undefined ? undefined : await loadNetworkRoles(args.roles, args.network);
  const system = new ActorSystem({ name: `sentinel-${name}`, validate: protocolValidator(), node: args.nodeId, authorize: roles && roleAuthorizer(roles) });
  answerInvalid(system, log);
  const nats = await connectNats(system, natsOptions(args, args.network, `sentinel ${name}`));
  logConnection(nats, log);
  const reporter = new Reporter({ progress: args.progress });
  let timer: NodeJS.Timeout | undefined;
  try {
    const attachment = await attachRemote(nats, sentinel, { discovery: { timeoutMs: args.discoveryTimeout } });
    const nodes = new Set([...attachment.directory.gates.values()].map((g) => g.node));
    log(`sentinel ${name}: ${data.size} samples (${what}); attached to network ${args.network}: ${attachment.directory.total} gates on ${nodes.size} node(s); node ${system.node}, backend ${backend}`);
    attachment.events.on('held', (node, gates) => log(`sentinel ${name}: node ${node} (gate${gates.length > 1 ? 's' : ''} ${gates.join(', ')} of network ${args.network}) is gone; its batches in flight are lost, and training holds until the network is whole again (Ctrl-C to stop)`));
    attachment.events.on('resumed', (found) => log(`sentinel ${name}: network ${args.network} is whole again (${found.total} gates on ${new Set([...found.gates.values()].map((g) => g.node)).size} node(s)); going on`));
    let searchReported = '';
    attachment.events.on('searchFailed', (error) => {
      if (error.message !== searchReported) log(`sentinel ${name}: still waiting for network ${args.network}: ${describeError(error)}`);
      searchReported = error.message;
    });
    reporter.watch(sentinel);
    if (every !== undefined) {
      const pass = () => attachment.ref.tell({ type: 'sentinel.requestPass' });
      pass();
      timer = setInterval(pass, every * 1000);
    }
    const stop = onStopSignal(options.signal);
    const outcome = await Promise.race([sentinel.done.then((summary) => ({ summary })), stop.stopped.then((signal) => ({ signal }))]).finally(stop.dispose);
    clearInterval(timer);
    const dropped = await attachment.detach();
    const summary = 'summary' in outcome ? outcome.summary : await sentinel.done;
    reporter.stop();
    const last = summary.epochs.at(-1);
    const accuracy = last === undefined ? '' : last.metrics.accuracy === undefined ? `, last loss ${last.loss.toPrecision(4)}` : `, last accuracy ${(last.metrics.accuracy * 100).toFixed(2)}%`;
    log(`sentinel ${name}: ${'signal' in outcome ? `stopped by ${outcome.signal}` : `done (${summary.stoppedBy})`} after ${summary.epochs.length} pass(es)${accuracy}; detached${dropped ? ` (${dropped} batches freed)` : ''}`);
    return summary;
  } catch (error) {
    clearInterval(timer);
    reporter.stop();
    throw error;
  } finally {
    await nats.close();
    system.shutdown();
  }
}
