/**
 * Connecting an actor system to NATS ({@link connectNats}): the client connection with its
 * credentials, TLS, per-node inbox and reconnect backoff, then the {@link NatsNode} that serves it.
 */
import { connect, type NatsConnection } from '@nats-io/transport-node';
import type { ActorSystem } from '../actor/index.js';
import { describeError, InvalidArgumentError, TransportError } from '../errors.js';
import { inboxPrefixOf, NatsNode, type NatsOptions, SUBJECT_TOKEN } from './nats.js';

/**
 * Connects `system` to NATS: subscribes to its node subject, starts heartbeats, and makes the
 * connection the system's default route.
 * @throws InvalidArgumentError for a namespace or node id that is not a subject token;
 *   TransportError when the server cannot be reached or refuses the credentials.
 */
export async function connectNats(system: ActorSystem, options: NatsOptions): Promise<NatsNode> {
  if (!SUBJECT_TOKEN.test(options.namespace)) throw new InvalidArgumentError(`Namespace '${options.namespace}' must be 1-128 letters, digits, '_' or '-'.`);
  if (!SUBJECT_TOKEN.test(system.node)) throw new InvalidArgumentError(`Node id '${system.node}' must be 1-128 letters, digits, '_' or '-' to serve as a NATS subject.`);
  if (options.token !== undefined && options.user !== undefined) throw new InvalidArgumentError('Give a NATS token or a user and password, not both.');
  const servers = ([] as string[]).concat(options.servers);
  const { initialMs = 100, maxMs = 2000 } = options.reconnect ?? {};
  let downSince: number | undefined;
  let nc: NatsConnection;
  try {
    nc = await connect({
      servers,
      name: options.name,
      token: options.token,
      user: options.user,
      pass: options.pass,
      tls: options.tls && (options.tls.caFile || options.tls.certFile || options.tls.keyFile) ? { ...options.tls } : undefined,
      timeout: options.connectTimeoutMs ?? 5000,
      inboxPrefix: inboxPrefixOf(system.node),
      maxReconnectAttempts: -1,
      reconnectDelayHandler: () => {
        downSince ??= Date.now();
        return Math.min(maxMs, Math.max(initialMs, (Date.now() - downSince) / 2)) + Math.random() * initialMs;
      },
    });
  } catch (error) {
    throw new TransportError(
      `Cannot connect to NATS at ${servers.join(', ')}: ${describeError(error)}. Is nats-server running there (e.g. \`nats-server -a 127.0.0.1 -p 4222\`), and are the URL, credentials and TLS files right?`,
      { cause: error },
    );
  }
  const node = new NatsNode(system, nc, options.namespace, options);
  node.events.on('reconnect', () => (downSince = undefined));
  try {
    await node.start();
  } catch (error) {
    await node.abort();
    throw new TransportError(`NATS at ${servers.join(', ')} accepted the connection but not the subscriptions: ${describeError(error)}`, { cause: error });
  }
  return node;
}
