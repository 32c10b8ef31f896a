/**
 * `npm run nats-config`: writes a nats-server configuration for one network, with a user per
 * process and the permissions of its role (`natsServerConfig`), and one `<user>.env` file per
 * user holding its credentials and node id for `npm run network` / `npm run sentinel`, and
 * `roles.json` (node id → role) for the network processes' `--roles`.
 *
 *   npm run nats-config -- --network mnist --out nats/ --host net-a --host net-b --trainer t1 --evaluator v1
 *     [--admin ops] [--listen 127.0.0.1:4222] [--tls-cert F --tls-key F [--tls-ca F]]
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { Command } from 'commander';
import { natsServerConfig, type NatsRole, type NatsUser } from '../cluster/index.js';

const collect = (value: string, all: string[]) => [...all, value];

interface ConfigArgs {
  network: string;
  out: string;
  host: string[];
  admin: string[];
  trainer: string[];
  evaluator: string[];
  listen: string;
  tlsCert?: string;
  tlsKey?: string;
  tlsCa?: string;
}

/**
 * Runs the configuration writer with `argv` (as `process.argv`); resolves with the files written.
 * @throws InvalidArgumentError for a bad network or user name, a user named twice, or no users.
 */
export async function natsConfigMain(argv: string[], log: (line: string) => void = (line) => console.log(line)): Promise<string[]> {
  const program = new Command('nats-config')
    .description('Write a nats-server configuration with per-role users and permissions for one network, and an env file per user.')
    .requiredOption('--network <name>', 'the network name (as given to npm run network -- --name)')
    .requiredOption('--out <dir>', 'directory for nats-server.conf and the <user>.env files (created; files are written readable by the owner only)')
    .option('--host <user>', 'a network process (repeatable): every subject of the network', collect, [])
    .option('--admin <user>', 'an operator (repeatable): as a host, for checkpoints, state and spawning', collect, [])
    .option('--trainer <user>', 'a training sentinel (repeatable): its own node subject only', collect, [])
    .option('--evaluator <user>', 'a validation or test sentinel (repeatable): as a trainer', collect, [])
    .option('--listen <host:port>', 'where the server listens', '127.0.0.1:4222')
    .option('--tls-cert <file>', "the server's certificate (PEM); with --tls-key, TLS is required")
    .option('--tls-key <file>', "the server's key (PEM)")
    .option('--tls-ca <file>', 'a CA (PEM): clients must then present certificates it signed')
    .showHelpAfterError()
    .parse(argv);
  const args = program.opts<ConfigArgs>();
  const roles: [NatsRole, string[]][] = [['host', args.host], ['admin', args.admin], ['trainer', args.trainer], ['evaluator', args.evaluator]];
  const users: NatsUser[] = roles.flatMap(([role, names]) => names.map((user) => ({ user, role })));
  const tls = args.tlsCert && args.tlsKey ? { cert: path.resolve(args.tlsCert), key: path.resolve(args.tlsKey), ca: args.tlsCa && path.resolve(args.tlsCa) } : undefined;
  const { config, users: written } = natsServerConfig({ network: args.network, users, listen: args.listen, tls });
  await fs.mkdir(args.out, { recursive: true });
  const files = [path.join(args.out, 'nats-server.conf')];
  await fs.writeFile(files[0] as string, config, { mode: 0o600 });
  const rolesFile = path.join(args.out, 'roles.json');
  await fs.writeFile(rolesFile, `${JSON.stringify({ network: args.network, roles: Object.fromEntries(written.map((u) => [u.node, u.role])) }, null, 1)}\n`);
  files.push(rolesFile);
  for (const u of written) {
    const file = path.join(args.out, `${u.user}.env`);
    const url = `${tls ? 'tls' : 'nats'}://${args.listen}`;
    await fs.writeFile(file, `# ${u.role} of network ${args.network}\nAKKORDEON_NATS=${url}\nAKKORDEON_NATS_USER=${u.user}\nAKKORDEON_NATS_PASS=${u.password}\nAKKORDEON_NODE_ID=${u.node}\n`, { mode: 0o600 });
    files.push(file);
  }
  log(`wrote ${files.join(', ')}`);
  log(`start the server with: nats-server -c ${files[0]}; then each process with its env file, e.g. (set -a; . ${path.join(args.out, `${written[0]?.user}.env`)}; npm run network -- ... --roles ${rolesFile})`);
  return files;
}
