/**
 * Child-process transport: the conformance suite with frames crossing a real child process
 * (IPC, V8 serialisation), plus SIGKILL handling and the child's exit when its parent dies.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import * as tf from '@tensorflow/tfjs';
import { ActorSystem } from '../../src/actor/index.js';
import type { HostMessage, HostReply } from '../../src/deploy/index.js';
import type { GateMessage, SentinelReply } from '../../src/protocol/messages.js';
import { spawnProcessNode } from '../../src/deploy/index.js';
import { ROOT, setupBackend } from '../helpers.js';
import { relayPair, transportConformance } from './conformance.js';

transportConformance('child process', () => relayPair((a) => spawnProcessNode(a)));

/** Resolves once no process with `pid` exists (polls `kill(pid, 0)`), or rejects after `ms`. */
async function gone(pid: number, ms: number): Promise<void> {
  const deadline = performance.now() + ms;
  for (;;) {
    try {
      process.kill(pid, 0);
    } catch {
      return;
    }
    if (performance.now() > deadline) throw new Error(`process ${pid} still runs after ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe('spawnProcessNode', () => {
  let backend: string;
  beforeAll(async () => {
    backend = await setupBackend();
  });

  test('starts a host in another process on the parent backend', async () => {
    const system = new ActorSystem({ name: 'main' });
    const child = await spawnProcessNode(system, { name: 'ping' });
    const pong = await system.ask<HostReply, HostMessage>(child.host, (replyTo) => ({ type: 'host.ping', replyTo }));
    expect(pong).toEqual({ type: 'host.pong', node: child.node, backend, pid: child.pid });
    expect(child.pid).not.toBe(process.pid);
    await child.close();
    expect(await child.exited).toBe(0);
  });

  test('reports a child that cannot start as a TransportError', async () => {
    await expect(spawnProcessNode(new ActorSystem(), { backend: 'no-such-backend' })).rejects.toThrow(/failed to start: InvalidArgumentError: Unknown backend 'no-such-backend'/);
  });

  test('a child rejects a malformed message with an error reply and keeps serving', async () => {
    const system = new ActorSystem({ name: 'main' });
    const child = await spawnProcessNode(system);
    try {
      const config = { name: 'g', layers: [{ className: 'Dense', config: { units: 3 } }], inputShape: [4], optimizer: { type: 'sgd' as const, learningRate: 0.1 } };
      const spawned = await system.ask<HostReply, HostMessage>(child.host, (replyTo) => ({ type: 'host.spawnGate', config, replyTo }));
      if (spawned.type !== 'host.gateSpawned') throw new Error(`gate not spawned: ${JSON.stringify(spawned)}`);
      // An int32 input where float32 is required: the child's validator rejects it before the gate sees it.
      const reply = await system.ask<SentinelReply, GateMessage>(spawned.gate, (replyTo) => ({ type: 'gate.predict', sentinel: replyTo, batch: 0, x: tf.ones([2, 4], 'int32') }));
      expect(reply).toMatchObject({ type: 'sentinel.batchFailed', batch: 0, error: { code: 'Protocol' } });
      const ok = await system.ask<SentinelReply, GateMessage>(spawned.gate, (replyTo) => ({ type: 'gate.predict', sentinel: replyTo, batch: 1, x: tf.ones([2, 4]) }));
      expect(ok.type === 'sentinel.predictions' && ok.logits.shape).toEqual([2, 3]);
      if (ok.type === 'sentinel.predictions') ok.logits.dispose();
    } finally {
      await child.close();
    }
  });

  test('a child killed with SIGKILL: nodeDown, dead letters, asks reject at once', async () => {
    const system = new ActorSystem({ name: 'main' });
    const child = await spawnProcessNode(system);
    const down = new Promise<string>((resolve) => system.events.once('nodeDown', resolve));
    process.kill(child.pid, 'SIGKILL');
    expect(await down).toBe(child.node);
    expect(await child.exited).toBe(128 + 9);
    const dead: string[] = [];
    system.events.on('deadLetter', (_target, message) => dead.push(message.type));
    expect(() => child.host.tell({ type: 'host.ping', replyTo: child.host as never })).not.toThrow();
    expect(dead).toEqual(['host.ping']);
    await expect(system.ask<HostReply, HostMessage>(child.host, (replyTo) => ({ type: 'host.ping', replyTo }))).rejects.toThrow('stopped');
  });

  test('the child exits when its parent is killed', async () => {
    // A parent process that starts a child node, prints its pid, and waits to be killed.
    const script = [
      "import { ActorSystem } from './src/actor/index.ts';",
      "import { spawnProcessNode } from './src/deploy/index.ts';",
      "const child = await spawnProcessNode(new ActorSystem({ name: 'parent' }), { backend: 'cpu' });",
      'console.log(`child ${child.pid}`);',
    ].join('\n');
    const parent = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
    let output = '';
    parent.stdout.setEncoding('utf8');
    const pid = await new Promise<number>((resolve, reject) => {
      parent.stdout.on('data', (chunk: string) => {
        output += chunk;
        const match = /child (\d+)/.exec(output);
        if (match) resolve(Number(match[1]));
      });
      parent.once('exit', (code) => reject(new Error(`parent exited with ${code} before starting a child: ${output}`)));
    });
    parent.kill('SIGKILL');
    await once(parent, 'exit');
    await gone(pid, 10_000);
  });
});
