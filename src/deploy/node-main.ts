/**
 * The program a worker thread or child process runs (started by `spawnWorkerNode` or
 * `spawnProcessNode`): it starts a backend, creates an actor system with the node id its parent
 * chose, spawns a `Host` at id `'host'`, routes everything it does not host to the parent, and
 * reports `ready`. It ends on the parent's `shutdown`, and a child process also when the parent
 * disconnects (exits or is killed).
 */
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { ActorSystem } from '../actor/index.js';
import { initBackend } from '../backend.js';
import { describeError, toErrorInfo } from '../errors.js';
import { Host, HOST_ID } from './host.js';
import { answerInvalid, protocolValidator } from '../protocol/index.js';
import { asFrame, ChannelLink, type ControlMessage, type NodeConfig } from '../transport/channel.js';
import { type Frame, transferList, wireCodec } from '../wire/index.js';

/** Posts to the parent; `sent` runs once the message has left (a child's IPC is asynchronous). */
type Post = (message: Frame | ControlMessage, transfer?: ArrayBuffer[], sent?: () => void) => void;

function channel(): { config: NodeConfig; post: Post; listen: (handler: (message: unknown) => void) => void } {
  if (!isMainThread && parentPort) {
    const port = parentPort;
    return {
      config: (workerData as { config: NodeConfig }).config,
      post: (message, transfer, sent) => {
        port.postMessage(message, transfer ?? []);
        sent?.();
      },
      listen: (handler) => port.on('message', handler),
    };
  }
  if (!process.send || !process.env.AKKORDEON_NODE_CONFIG) {
    throw new Error('node-main runs in a worker thread or a forked child process started by akkordeon; it was started on its own.');
  }
  const send = process.send.bind(process);
  return {
    config: JSON.parse(process.env.AKKORDEON_NODE_CONFIG) as NodeConfig,
    post: (message, _transfer, sent) => (process.connected ? void send(message, undefined, undefined, () => sent?.()) : sent?.()),
    listen: (handler) => process.on('message', handler),
  };
}

const { config, post, listen } = channel();
// A child process checks every message from its parent; a worker thread shares its parent's
// process, unless its parent relays frames from outside the process to it.
const system = new ActorSystem({ node: config.node, name: config.name, codec: wireCodec(), validate: (config.validate ?? isMainThread) ? protocolValidator() : undefined });
const link = new ChannelLink(`parent ${config.parent}`, (frame) => post(frame, transferList(frame)), undefined, !isMainThread);
let closing = false;

function shutdown(code: number): void {
  if (closing) return;
  closing = true;
  system.shutdown();
  process.exit(code);
}

system.addRoute(config.parent, link);
system.setDefaultRoute(link);
answerInvalid(system, (line) => console.error(line));
system.events.on('failure', (failure) => console.error(`[${config.name}] ${failure.actor.name} failed on ${failure.messageType}: ${describeError(failure.error)}`));

listen((message) => {
  const frame = asFrame(message);
  if (frame) return void system.receiveFrame(frame, link);
  const control = message as ControlMessage;
  if (control?.control === 'alias') system.addRoute(control.node, link);
  else if (control?.control === 'shutdown') shutdown(0);
});
if (isMainThread) process.on('disconnect', () => shutdown(0));

try {
  const backend = await initBackend(config.backend);
  for (const module of config.modules) await import(module);
  system.spawn(() => new Host(backend, undefined, config.dataAccess), { id: HOST_ID, name: `host@${config.name}` });
  post({ control: 'ready', backend, pid: process.pid });
} catch (error) {
  console.error(`[${config.name}] failed to start: ${describeError(error)}`);
  post({ control: 'failed', error: toErrorInfo(error) }, [], () => shutdown(1));
}
