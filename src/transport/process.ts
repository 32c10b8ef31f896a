/**
 * Child-process transport: {@link startProcessNode} forks a Node process that runs an entry module
 * (`deploy/node-main.ts`: its own actor system with a `Host` actor), linked to the caller's system over the IPC channel with V8
 * ("advanced") serialisation, so that frames travel as structured clones with their tensor
 * buffers as binary. Unlike worker threads, a child process may use tfjs-node.
 */
import { nanoid } from 'nanoid';
import { fork } from 'node:child_process';
import { constants } from 'node:os';
import * as tf from '@tensorflow/tfjs';
import type { ActorSystem } from '../actor/index.js';
import { type Channel, childNodeId, connectNode, type NodeConfig, type NodeOptions, type RemoteNode } from './channel.js';
import { nodeScript, resolveModules } from './worker.js';

/** A child process started by {@link startProcessNode}. */
export type ProcessNode = RemoteNode;


/**
 * Forks a child process running `entry` (deploy's node entry hosts a `Host` actor at id `'host'`) and links it to `system`; the
 * child routes everything it does not host back to `system`. When the child exits (closed,
 * crashed, killed with SIGKILL), its route is removed: `nodeDown` fires on `system` and later
 * sends to it become dead letters. The child exits when this process disconnects.
 *
 * @param options.backend the child's backend; default the parent's (tfjs-node is allowed).
 * @throws TransportError when the child fails to start.
 */
export async function startProcessNode(system: ActorSystem, entry: URL, options: NodeOptions = {}): Promise<ProcessNode> {
  const backend = options.backend ?? tf.getBackend();
  const name = options.name ?? `process-${nanoid(8)}`; // unique without a module-level counter
  const node = childNodeId(system.node, name);
  const config: NodeConfig = { node, parent: system.node, name, backend, modules: resolveModules(options.modules), validate: options.validate, dataAccess: options.dataAccess };
  const child = fork(nodeScript(entry), [], {
    execArgv: [],
    serialization: 'advanced',
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    env: { ...process.env, AKKORDEON_NODE_CONFIG: JSON.stringify(config), AKKORDEON_NODE_ENTRY: entry.href },
  });
  const channel: Channel = {
    description: `child process ${name}`,
    post: (message) => {
      if (child.connected) child.send(message);
    },
    onMessage: (handler) => child.on('message', handler),
    onExit: (handler) => child.once('exit', (code, signal) => handler(code ?? 128 + (signal ? (constants.signals[signal] ?? 0) : 0))),
    kill: () => void child.kill('SIGKILL'),
  };
  child.on('error', (error) => console.error(`[${name}] child process error: ${error.message}`));
  return connectNode(system, node, 'process', channel, options.startTimeoutMs);
}
