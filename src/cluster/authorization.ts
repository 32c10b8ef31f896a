/**
 * Per-network authorization with nats-server's own machinery: {@link natsServerConfig} writes a
 * server configuration whose users have publish/subscribe permissions by role, on the subjects
 * of one network (`akk.<network>.…`, see `natsSubject`):
 *
 * - **host** (network processes) and **admin** (checkpoints, state, spawning): every subject of
 *   the network, their own inbox, and answers to requests they received (the registry).
 * - **trainer** / **evaluator** (sentinel processes): publish frames to any node of the network
 *   as itself (`…node.<to>.<its node>`), its own heartbeat and registry requests; subscribe only
 *   to its own node's subjects, heartbeats, registry announcements and its own inbox
 *   (`_INBOX_<node>`). It can neither read another node's frames, send frames or heartbeats as
 *   another node, answer the registry, announce gates, nor reach another network.
 *
 * Each process's node id is fixed per user (`--node-id`, by default its user name), so that its
 * permissions can name its subjects. A receiver takes a frame's sender from its subject, and
 * a heartbeat counts only for its sender's own node (or one it serves). Which message types a
 * frame may carry the subjects cannot express.
 */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import type { Message } from '../actor/index.js';
import { InvalidArgumentError, UnauthorizedError } from '../errors.js';
import { inboxPrefixOf, natsSubject, SUBJECT_TOKEN } from '../transport/index.js';
import { announceSubject, registrySubject } from './discovery.js';

/** What a NATS user of a network may do. */
export type NatsRole = 'host' | 'admin' | 'trainer' | 'evaluator';

/** One user of {@link natsServerConfig}. */
export interface NatsUser {
  user: string;
  /** Default: 24 random bytes, base64url. */
  password?: string;
  role: NatsRole;
  /** The node id the user's process runs as (`--node-id`, a subject token); default `user`. One user per process. */
  node?: string;
}

/** Options of {@link natsServerConfig}. */
export interface NatsServerConfigOptions {
  network: string;
  users: NatsUser[];
  /** `host:port` the server listens on. Default `127.0.0.1:4222`. */
  listen?: string;
  /** TLS files (PEM) of the server; with `ca`, clients must present certificates signed by it. */
  tls?: { cert: string; key: string; ca?: string };
}

/** NATS permissions of one user (nats-server's `permissions` block). */
export interface NatsPermissions {
  publish: { allow: string[] };
  subscribe: { allow: string[] };
  /** Whether the user may answer requests it received (a host answers registry requests). */
  allow_responses?: boolean;
}

/** The publish/subscribe permissions of a role on `network`, for the node id `node`. */
export function rolePermissions(network: string, role: NatsRole, node: string): NatsPermissions {
  const inbox = `${inboxPrefixOf(node)}.>`;
  if (role === 'host' || role === 'admin') return { publish: { allow: [natsSubject(network, '>')] }, subscribe: { allow: [natsSubject(network, '>'), inbox] }, allow_responses: true };
  return {
    // Frames to any node, but only as itself (the last token of a frame's subject is its sender); its own heartbeat.
    publish: { allow: [natsSubject(network, 'node', '*', node), natsSubject(network, 'heartbeat', node), registrySubject(network)] },
    subscribe: { allow: [natsSubject(network, 'node', node, '*'), natsSubject(network, 'heartbeat', '*'), announceSubject(network), inbox] },
  };
}

/**
 * A nats-server configuration (its text) with one user per entry and the permissions of its
 * role; passwords that were not given are generated and returned with the users.
 * @throws InvalidArgumentError for a network or node id that is not a subject token, a user
 *   named twice, or no users.
 */
export function natsServerConfig(options: NatsServerConfigOptions): { config: string; users: Required<NatsUser>[] } {
  if (!SUBJECT_TOKEN.test(options.network)) throw new InvalidArgumentError(`Network '${options.network}' must be 1-128 letters, digits, '_' or '-'.`);
  if (options.users.length === 0) throw new InvalidArgumentError('Give at least one user (--host, --trainer, --evaluator or --admin).');
  const users = options.users.map((u) => ({ ...u, password: u.password ?? randomBytes(24).toString('base64url'), node: u.node ?? u.user }));
  const names = users.map((u) => u.user);
  const twice = names.find((n, i) => names.indexOf(n) !== i);
  if (twice) throw new InvalidArgumentError(`User '${twice}' is named twice; give each user one role.`);
  for (const u of users) {
    if (!SUBJECT_TOKEN.test(u.node)) throw new InvalidArgumentError(`Node id '${u.node}' of user '${u.user}' must be 1-128 letters, digits, '_' or '-'.`);
  }
  const lines = [`# nats-server configuration for akkordeon network '${options.network}' (npm run nats-config)`, `listen: ${JSON.stringify(options.listen ?? '127.0.0.1:4222')}`];
  if (options.tls) {
    const tls = [`cert_file: ${JSON.stringify(options.tls.cert)}`, `key_file: ${JSON.stringify(options.tls.key)}`, ...(options.tls.ca ? [`ca_file: ${JSON.stringify(options.tls.ca)}`, 'verify: true'] : [])];
    lines.push(`tls {\n  ${tls.join('\n  ')}\n}`);
  }
  const entries = users.map((u) => `    { user: ${JSON.stringify(u.user)}, password: ${JSON.stringify(u.password)}, permissions: ${JSON.stringify(rolePermissions(options.network, u.role, u.node))} } # ${u.role}`);
  lines.push(`authorization {\n  users: [\n${entries.join('\n')}\n  ]\n}`);
  return { config: `${lines.join('\n')}\n`, users };
}

/**
 * Messages only a host or an admin may send a node: they read or change its gates' state, rewire
 * them, run things there, pass a batch between a gate and its shards, or answer a sentinel (its
 * logits, gradients' completion, failures and control come from the gates and hosts).
 */
export const PRIVILEGED_MESSAGES: ReadonlySet<string> = new Set([
  'gate.getState',
  'gate.setState',
  'gate.connect',
  'gate.shardOutput',
  'gate.shardGradient',
  'gate.shardFailed',
  'host.spawnGate',
  'host.stopGate',
  'host.spawnSentinel',
  'sentinel.logits',
  'sentinel.predictions',
  'sentinel.backwardDone',
  'sentinel.batchFailed',
  'sentinel.start',
  'sentinel.requestPass',
  'sentinel.finish',
  'sentinel.failInFlight',
]);

/** Batch messages, which name the sentinel they are for (`sentinel`, a ref). */
const BATCH_MESSAGES: ReadonlySet<string> = new Set(['gate.forward', 'gate.backward', 'gate.predict', 'gate.abort']);

/**
 * The roles of a network's nodes, by node id, as `npm run nats-config` writes them
 * (`roles.json`); read by network and sentinel processes (`--roles FILE`) to check who may send what.
 */
export interface NetworkRoles {
  network: string;
  roles: Record<string, NatsRole>;
}

/**
 * An `ActorSystemOptions.authorize` for a network or sentinel process (defence in depth beside
 * the server's permissions). From a node that is neither a host nor an admin (nor a node one of
 * them serves, `<node>_…`), it refuses:
 * - {@link PRIVILEGED_MESSAGES};
 * - a batch message (forward, backward, predict, abort) whose `sentinel` is on another node: a
 *   trainer sends batches only for its own sentinels;
 * - a `gate.detach` that does not name the sender's own node (`node`, with or without
 *   `sentinelId`): it may free its own sentinels' batches, never another node's.
 *
 * Messages whose sender no transport vouches for (from this process's own threads) pass.
 * @throws UnauthorizedError from the returned function.
 */
export function roleAuthorizer(roles: NetworkRoles): (message: Message, sender: string | undefined) => void {
  const roleOf = (node: string) => (Object.hasOwn(roles.roles, node) ? roles.roles[node] : Object.entries(roles.roles).find(([parent]) => node.startsWith(`${parent}_`))?.[1]);
  const own = (sender: string, node: unknown) => typeof node === 'string' && (node === sender || node.startsWith(`${sender}_`));
  return (message, sender) => {
    if (sender === undefined) return;
    const role = roleOf(sender);
    if (role === 'host' || role === 'admin') return;
    const m = message as { type: string; node?: unknown; sentinel?: { node?: unknown } };
    const refused = PRIVILEGED_MESSAGES.has(m.type) ? 'only hosts and admins may' : BATCH_MESSAGES.has(m.type) && !own(sender, m.sentinel?.node) ? 'it is for a sentinel on another node' : m.type === 'gate.detach' && !own(sender, m.node) ? 'it may detach only its own sentinels (give node: its own node id)' : undefined;
    if (refused) {
      throw new UnauthorizedError(`Node ${sender.slice(0, 64)} may not send '${m.type}' to network ${roles.network}: ${refused} (its role: ${role ?? 'none'}).`);
    }
  };
}

const rolesSchema = z.object({ network: z.string().regex(SUBJECT_TOKEN), roles: z.record(z.string().regex(SUBJECT_TOKEN), z.enum(['host', 'admin', 'trainer', 'evaluator'])) });

/**
 * Reads a roles file written by `npm run nats-config` (`roles.json`).
 * @throws InvalidArgumentError when it cannot be read, is not JSON, or is not a roles file of `network`.
 */
export async function loadNetworkRoles(file: string, network: string): Promise<NetworkRoles> {
  let value: unknown;
  try {
    value = JSON.parse(await readFile(file, 'utf8'));
  } catch (error) {
    throw new InvalidArgumentError(`Cannot read the roles file ${file}: ${(error as Error).message}. Write it with npm run nats-config.`, { cause: error });
  }
  const parsed = rolesSchema.safeParse(value);
  if (!parsed.success) throw new InvalidArgumentError(`${file} is not a roles file: ${parsed.error.issues[0]?.path.join('.')}: ${parsed.error.issues[0]?.message}.`);
  if (parsed.data.network !== network) throw new InvalidArgumentError(`${file} holds the roles of network '${parsed.data.network}', not '${network}'.`);
  return parsed.data as NetworkRoles;
}
