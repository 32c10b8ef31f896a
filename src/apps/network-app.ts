/**
 * `npm run network`: hosts the gates of a named network (all of them, or a slice such as
 * `--gates 0-1`, so that one network can be split over several processes) and serves any number
 * of sentinels over NATS until stopped with Ctrl-C (SIGINT) or SIGTERM. Also the NATS flags
 * shared with `npm run sentinel`.
 *
 *   npm run network -- --name mnist --model mlp --gates 0-2 --nats nats://127.0.0.1:4222
 *     [--token T | --user U --pass P] [--tls-ca F --tls-cert F --tls-key F] [--backend wasm]
 *     [--lr 0.02] [--momentum 0.9] [--decay-steps N [--warmup N]] [--seed 1] [--threads 1|N|auto]
 *     [--checkpoint DIR [--save-every 60]]
 *
 * Environment: `AKKORDEON_NATS` (URL), `AKKORDEON_NATS_TOKEN`, `AKKORDEON_NATS_USER`,
 * `AKKORDEON_NATS_PASS` stand in for the flags (keeps secrets off the process list).
 */
import { availableParallelism } from 'node:os';
import { Command, InvalidArgumentError as CommanderArgumentError } from 'commander';
import { ActorSystem } from '../actor/index.js';
import { initBackend } from '../backend.js';
import { describeError } from '../errors.js';
import { descriptionOptimizer, loadNetworkDescription, MNIST_MODELS, type MnistModelName } from '../models/index.js';
import { Host, HOST_ID } from '../deploy/index.js';
import { periodicCheckpoints } from '../persist/index.js';
import { hostGates, loadNetworkRoles, roleAuthorizer } from '../cluster/index.js';
import type { OptimizerSpec } from '../optim/index.js';
import { answerInvalid, protocolValidator } from '../protocol/index.js';
import { connectNats, type NatsNode, type NatsOptions } from '../transport/index.js';
import { nonNegative, positiveInt } from './flags.js';

/** Flags shared by the NATS programs. */
export interface NatsFlags {
  nats: string;
  token?: string;
  user?: string;
  pass?: string;
  tlsCa?: string;
  tlsCert?: string;
  tlsKey?: string;
  heartbeatTimeout: number;
  nodeId?: string;
}

/** Adds the NATS flags (`--nats`, credentials, TLS files, `--heartbeat-timeout`) to a command. */
export function addNatsFlags(command: Command): Command {
  const env = process.env;
  return command
    .option('--nats <urls>', 'NATS server URL(s), comma-separated (env AKKORDEON_NATS)', env.AKKORDEON_NATS ?? 'nats://127.0.0.1:4222')
    .option('--token <token>', 'NATS authentication token (env AKKORDEON_NATS_TOKEN)', env.AKKORDEON_NATS_TOKEN)
    .option('--user <user>', 'NATS user (env AKKORDEON_NATS_USER)', env.AKKORDEON_NATS_USER)
    .option('--pass <password>', 'NATS password (env AKKORDEON_NATS_PASS)', env.AKKORDEON_NATS_PASS)
    .option('--tls-ca <file>', 'CA certificate (PEM) to verify the NATS server; enables TLS')
    .option('--tls-cert <file>', 'client certificate (PEM) for TLS')
    .option('--tls-key <file>', 'client key (PEM) for TLS')
    .option('--heartbeat-timeout <ms>', 'a node silent this long is down', positiveInt('--heartbeat-timeout'), 5000)
    .option('--node-id <id>', "this process's node id on NATS (env AKKORDEON_NODE_ID; default: random). A server configured by `npm run nats-config` gives each user's permissions to one node id, by default the user name", env.AKKORDEON_NODE_ID);
}

/** Connection options from parsed NATS flags. */
export function natsOptions(flags: NatsFlags, namespace: string, name: string): NatsOptions {
  const tls = flags.tlsCa || flags.tlsCert || flags.tlsKey ? { caFile: flags.tlsCa, certFile: flags.tlsCert, keyFile: flags.tlsKey } : undefined;
  return {
    servers: flags.nats.split(',').map((s) => s.trim()).filter(Boolean),
    namespace,
    name,
    token: flags.token,
    user: flags.user,
    pass: flags.pass,
    tls,
    peerTimeoutMs: flags.heartbeatTimeout,
    heartbeatMs: Math.min(1000, Math.max(50, flags.heartbeatTimeout / 4)),
  };
}

/** Logs connection losses and recoveries of a NATS node. */
export function logConnection(nats: NatsNode, log: (line: string) => void): void {
  nats.events.on('disconnect', (server) => log(`NATS: lost the connection to ${server}; reconnecting`));
  nats.events.on('reconnect', (server) => log(`NATS: reconnected to ${server}`));
  nats.events.on('error', (error) => log(`NATS: ${describeError(error)}`));
}

/**
 * Waits for the first SIGINT or SIGTERM (or for `signal` to abort): `stopped` resolves with the
 * signal's name; `dispose` removes the handlers.
 */
export function onStopSignal(signal?: AbortSignal): { stopped: Promise<string>; dispose(): void } {
  let resolve!: (name: string) => void;
  const stopped = new Promise<string>((r) => (resolve = r));
  const onInt = () => done('SIGINT');
  const onTerm = () => done('SIGTERM');
  const onAbort = () => done('abort');
  const dispose = () => {
    process.off('SIGINT', onInt);
    process.off('SIGTERM', onTerm);
    signal?.removeEventListener('abort', onAbort);
  };
  const done = (name: string) => {
    dispose();
    resolve(name);
  };
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);
  if (signal?.aborted) done('abort');
  else signal?.addEventListener('abort', onAbort);
  return { stopped, dispose };
}

interface NetworkArgs extends NatsFlags {
  name: string;
  model: string;
  gates?: string;
  backend?: string;
  lr?: number;
  momentum?: number;
  dataRoot: string[];
  dataModules?: boolean;
  roles?: string;
  decaySteps?: number;
  warmup?: number;
  seed: number;
  threads: number;
  checkpoint?: string;
  saveEvery: number;
}

/** One line on an optimizer spec, e.g. `DC-ASGD lr 0.03 (cosine over 860 updates), momentum 0.9`. */
function describeOptimizer(spec: OptimizerSpec): string {
  const lr = spec.learningRate;
  const rate = typeof lr === 'object' && lr ? `${lr.initial} (cosine over ${lr.steps} updates)` : `${lr ?? 'default'}`;
  const name = { dcasgd: 'DC-ASGD', sgd: 'SGD', adam: 'Adam', adagrad: 'AdaGrad' }[spec.type];
  return `${name} lr ${rate}${'momentum' in spec && spec.momentum !== undefined ? `, momentum ${spec.momentum}` : ''}`;
}

/** Parses `--threads N` or `--threads auto` (one per core). */
function threadCount(value: string): number {
  if (value === 'auto') return availableParallelism();
  return positiveInt('--threads')(value);
}

/** Parses `--gates a-b` (or `a`) into a range. */
function range(value: string): [number, number] {
  const match = /^(\d+)(?:-(\d+))?$/.exec(value);
  if (!match) throw new CommanderArgumentError(`--gates must look like 0-2 or 1, got '${value}'.`);
  return [Number(match[1]), Number(match[2] ?? match[1])];
}

/**
 * Runs the network program with `argv` (as `process.argv`) until SIGINT/SIGTERM or `signal`.
 * @throws TransportError when NATS cannot be reached; InvalidArgumentError for bad flags.
 */
export async function networkMain(argv: string[], options: { signal?: AbortSignal; log?: (line: string) => void } = {}): Promise<void> {
  const log = options.log ?? ((line: string) => console.log(line));
  const program = addNatsFlags(
    new Command('network')
      .description('Host the gates of a network (or a slice of them) for sentinels that connect over NATS.')
      .requiredOption('--name <network>', 'network name (the NATS subject namespace)')
      .option('--model <name|file>', `the network: ${MNIST_MODELS.join(' or ')} (MNIST, input [784]), or a file on this machine: a .json network description, or a .ts/.js module whose default export is describeNetwork({ name, inputShape, gates, optimizer }); every process of the network needs the same file`, 'mlp')
      .option('--gates <from-to>', 'gates hosted by this process, e.g. 0-1 (default all)')
      .option('--backend <name>', 'tensorflow, wasm or cpu (default: first that loads; env AKKORDEON_BACKEND)')
      .option('--lr <rate>', "learning rate (default: the description's optimizer, else DC-ASGD at 0.03)", nonNegative('--lr'))
      .option('--momentum <m>', "momentum (default: the description's, else 0.9)", nonNegative('--momentum'))
      .option('--decay-steps <n>', 'decay the learning rate to 0 along a cosine over this many updates per gate', positiveInt('--decay-steps'))
      .option('--warmup <n>', 'warm the learning rate up over this many updates (with --decay-steps)', positiveInt('--warmup'))
      .option('--seed <n>', 'seed of the initial weights and dropout', positiveInt('--seed'), 1)
      .option('--threads <n|auto>', 'threads for the hosted gates: whole gates or shards of Dense gates in worker threads, as placement auto balances them (auto: one per core)', threadCount, 1)
      .option('--checkpoint <dir>', "the hosted gates' checkpoint: loaded at start when it exists, saved (atomically) every --save-every seconds and on stop")
      .option('--save-every <seconds>', 'seconds between checkpoints (with --checkpoint)', positiveInt('--save-every'), 60)
      .option('--data-root <dir>', 'a directory whose files sentinels that other nodes start here (host.spawnSentinel) may read as their data (repeatable; default none)', (dir: string, dirs: string[]) => [...dirs, dir], [])
      .option('--data-modules', 'also let such sentinels use data modules (code) under the --data-root directories')
      .option('--roles <file>', "the network's roles (roles.json of npm run nats-config): state, wiring and spawn messages from nodes that are not hosts or admins, and batches or detaches in another node's name, are refused"),
  )
    .showHelpAfterError()
    .parse(argv);
  const args = program.opts<NetworkArgs>();
  const [from, to] = args.gates ? range(args.gates) : [undefined, undefined];
  const description = await loadNetworkDescription(args.model, args.seed);
  const builtIn = (MNIST_MODELS as readonly string[]).includes(args.model); // registered under its name, as before descriptions
  if (args.momentum !== undefined && description.optimizer?.type === 'adam') throw new CommanderArgumentError('--momentum does not apply to the Adam optimizer of this description.');
  const base = descriptionOptimizer(description);
  const lr0 = args.lr ?? (typeof base.learningRate === 'number' ? base.learningRate : undefined);
  if (args.decaySteps && lr0 === undefined) throw new CommanderArgumentError('--decay-steps needs --lr when the description has a learning-rate schedule.');
  const learningRate = args.decaySteps ? { type: 'cosine' as const, initial: lr0 as number, steps: args.decaySteps, warmup: args.warmup } : (args.lr ?? base.learningRate);
  const optimizer = { ...base, ...(learningRate === undefined ? {} : { learningRate }), ...(args.momentum === undefined ? {} : { momentum: args.momentum }) } as OptimizerSpec;

  const backend = await initBackend(args.backend);
  const roles = args.roles === undefined ? undefined : await loadNetworkRoles(args.roles, args.name);
  const system = new ActorSystem({ name: `network-${args.name}`, validate: protocolValidator(), node: args.nodeId, authorize: roles && roleAuthorizer(roles) });
  answerInvalid(system, log);
  system.events.on('failure', (f) => log(`network ${args.name}: ${f.actor.name} failed on ${f.messageType}: ${describeError(f.error)}`));
  const label = `network ${args.name} gates ${args.gates ?? 'all'}`;
  const nats = await connectNats(system, natsOptions(args, args.name, label));
  logConnection(nats, log);
  const dataAccess = { roots: args.dataRoot, modules: args.dataModules === true };
  system.spawn(() => new Host(backend, undefined, dataAccess), { id: HOST_ID, name: 'host' });
  let hosted;
  try {
    hosted = await hostGates(nats, { model: builtIn ? (args.model as MnistModelName) : description, dataAccess, from, to, optimizer, seed: args.seed, threads: args.threads, checkpoint: args.checkpoint, log });
  } catch (error) {
    await nats.close();
    throw error;
  }
  const first = hosted.gates[0]?.index;
  const last = hosted.gates.at(-1)?.index;
  log(`network ${args.name}: hosting gates ${first}-${last} of ${hosted.total} (${description.name}, ${describeOptimizer(optimizer)}) on node ${system.node}, backend ${backend}, NATS ${nats.servers.join(',')}`);
  for (const { index, ref, gate, inputShape, outputShape, shards } of hosted.gates) {
    const split = shards.length > 0 ? `, ${shards.map((s) => `${s.units} units in worker thread ${s.ref.node}`).join(', ')}` : '';
    const where = gate ? '' : `, in worker thread ${ref.node}`;
    log(`  gate ${index} ${ref.name}: [${inputShape}] -> [${outputShape}] (${ref.id}${where}${split})`);
  }
  const saver = args.checkpoint === undefined ? undefined : await periodicCheckpoints(hosted, args.checkpoint, args.saveEvery * 1000, (line) => log(`network ${args.name}: ${line}`));
  const stop = await onStopSignal(options.signal).stopped;
  log(`network ${args.name}: stopping (${stop})`);
  if ((await saver?.stop()) === 'unchanged') log(`network ${args.name}: checkpoint in ${args.checkpoint} is current (no update since it was saved or loaded)`);
  await hosted.close();
  await nats.close();
  system.shutdown();
}
