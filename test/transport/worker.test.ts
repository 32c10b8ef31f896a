/**
 * Worker-thread transport: the conformance suite with frames crossing a real worker thread, plus
 * the worker node's own duties (host, backend choice, transfer without copies, exit handling).
 */
import * as tf from '@tensorflow/tfjs';
import { ActorSystem } from '../../src/actor/index.js';
import { InvalidArgumentError } from '../../src/errors.js';
import type { HostMessage, HostReply } from '../../src/deploy/index.js';
import { childNodeId } from '../../src/transport/channel.js';
import { encodeMessage } from '../../src/wire/index.js';
import { spawnWorkerNode } from '../../src/deploy/index.js';
import { setupBackend } from '../helpers.js';
import { relayPair, transportConformance } from './conformance.js';

transportConformance('worker thread', () => relayPair((a) => spawnWorkerNode(a)));

describe('spawnWorkerNode', () => {
  let backend: string;
  beforeAll(async () => {
    backend = await setupBackend();
  });

  test('starts a host on the parent backend (wasm in place of tensorflow) in this process', async () => {
    const system = new ActorSystem({ name: 'main' });
    const worker = await spawnWorkerNode(system, { name: 'ping' });
    const pong = await system.ask<HostReply, HostMessage>(worker.host, (replyTo) => ({ type: 'host.ping', replyTo }));
    expect(pong).toEqual({ type: 'host.pong', node: worker.node, backend: backend === 'tensorflow' ? 'wasm' : backend, pid: process.pid });
    expect(worker.node.startsWith(system.node)).toBe(true);
    await worker.close();
    expect(await worker.exited).toBe(0);
  });

  test('child node ids are NATS subject tokens under their parent, whatever the name and however deep', () => {
    const token = /^[A-Za-z0-9_-]{1,128}$/;
    const id = childNodeId('parent-node', 'auto:0 / gate');
    expect(id).toMatch(/^parent-node_auto-0---gate-[A-Za-z0-9_-]{6}$/);
    let deep = 'root';
    for (let level = 0; level < 10; level++) deep = childNodeId(deep, `worker-${level}-with-a-long-name`);
    expect(deep).toMatch(token);
    expect(childNodeId('p', 'n')).not.toBe(childNodeId('p', 'n')); // a fresh suffix each time
  });

  test('refuses the tensorflow backend with a named error', async () => {
    await expect(spawnWorkerNode(new ActorSystem(), { backend: 'tensorflow' })).rejects.toBeInstanceOf(InvalidArgumentError);
  });

  test('reports a worker that cannot start (unknown backend) as a TransportError', async () => {
    await expect(spawnWorkerNode(new ActorSystem(), { backend: 'no-such-backend' })).rejects.toThrow(/failed to start: InvalidArgumentError: Unknown backend 'no-such-backend'/);
  });

  test('transfers tensor buffers to the worker instead of copying them', async () => {
    const system = new ActorSystem({ name: 'main' });
    const worker = await spawnWorkerNode(system);
    const x = tf.ones([128, 784]);
    const { frame } = encodeMessage({ type: 'nothing', x } as never, worker.host);
    x.dispose();
    expect(frame.buffers[0]?.byteLength).toBe(128 * 784 * 4);
    worker.link.send(frame);
    expect(frame.buffers[0]?.byteLength).toBe(0); // detached: moved to the worker
    await worker.close();
  });

  test('a worker that dies takes its route with it: nodeDown, then dead letters', async () => {
    const system = new ActorSystem({ name: 'main' });
    const worker = await spawnWorkerNode(system);
    const down = new Promise<string>((resolve) => system.events.once('nodeDown', resolve));
    worker.kill();
    expect(await down).toBe(worker.node);
    const dead: string[] = [];
    system.events.on('deadLetter', (_target, message) => dead.push(message.type));
    worker.host.tell({ type: 'host.ping', replyTo: worker.host as never });
    expect(dead).toEqual(['host.ping']);
    await expect(system.ask<HostReply, HostMessage>(worker.host, (replyTo) => ({ type: 'host.ping', replyTo }))).rejects.toThrow('stopped');
    await worker.close(); // idempotent after exit
  });
});
