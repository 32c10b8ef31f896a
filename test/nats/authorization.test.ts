/**
 * Per-network authorization with nats-server's own permissions, over a real server started with
 * the configuration `natsServerConfig` (`npm run nats-config`) writes: two network processes
 * (host users) and sentinel processes (trainer and evaluator users, each its own node id) train
 * the regression network as on an open server; with a trainer's credentials, reading another
 * node's frames, answering the registry, announcing gates, answering a host's requests, sending
 * a frame or a heartbeat in another node's name and reaching another network are refused by the
 * server, and a goodbye in another node's name on its own subject is ignored by every node;
 * without credentials nothing connects. A second trainer that floods the gates with forwards it
 * never finishes, and forges batches, detaches, state and replies in others' names, is refused
 * (its flood at the gates' caps), while the honest trainer's test loss stays that of a clean run
 * and the host's RSS stays flat.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import * as tf from '@tensorflow/tfjs';
import { ActorSystem } from '../../src/actor/index.js';
import { discoverNetwork, type DiscoveredGate, natsServerConfig } from '../../src/cluster/index.js';
import { type GateDetached, type GateMessage, type GateState, protocolValidator, type SentinelReply } from '../../src/protocol/index.js';
import { connectNats, type NatsNode } from '../../src/transport/index.js';
import { writeRegressionCsv, writeRegressionJsonl } from '../fixtures/regression-data.js';
import { ROOT, setupBackend } from '../helpers.js';
import { type App, freePort, type NatsServer, natsServerBinary, startApp, startNatsServer } from '../nats-server.js';

const MODEL = path.join(ROOT, 'test/fixtures/regression-net.ts');

const maybe = natsServerBinary() ? describe : describe.skip;

maybe('a server configured by natsServerConfig', () => {
  let server: NatsServer;
  let dir: string;
  let url: string;
  const passwords = new Map<string, string>();
  const apps: App[] = [];
  let first: App;
  let rest: App;
  /** The test loss of the network trained with no one attacking it (test 1). */
  let cleanLoss: number;
  const clients: NatsConnection[] = [];
  const start = (script: string, user: string, args: string[]) => {
    const app = startApp(ROOT, script, [...args, '--nats', url, '--user', user, '--pass', passwords.get(user) as string, '--node-id', user, '--backend', 'wasm']);
    apps.push(app);
    return app;
  };
  const client = async (user: string) => {
    const nc = await connect({ servers: url, user, pass: passwords.get(user), inboxPrefix: `_INBOX_${user}` });
    clients.push(nc);
    return nc;
  };
  /** Resolves with the error the server sends for a subscription it refuses. */
  const refusedSubscription = (nc: NatsConnection, subject: string) =>
    new Promise<string>((resolve) => nc.subscribe(subject, { callback: (error) => void (error && resolve(error.message)) }));

  beforeAll(async () => {
    await setupBackend();
    dir = mkdtempSync(path.join(os.tmpdir(), 'akkordeon-auth-'));
    writeRegressionCsv(path.join(dir, 'train.csv'), 2048, 7);
    writeRegressionJsonl(path.join(dir, 'test.jsonl'), 512, 8);
    const port = await freePort();
    const { config, users } = natsServerConfig({
      network: 'sec',
      listen: `127.0.0.1:${port}`,
      users: [
        { user: 'host-0', role: 'host' },
        { user: 'host-1', role: 'host' },
        { user: 'trainer-1', role: 'trainer' },
        { user: 'trainer-2', role: 'trainer' },
        { user: 'tester-1', role: 'evaluator' },
        { user: 'watcher', role: 'admin' },
      ],
    });
    users.forEach((u) => passwords.set(u.user, u.password));
    writeFileSync(path.join(dir, 'roles.json'), JSON.stringify({ network: 'sec', roles: Object.fromEntries(users.map((u) => [u.node, u.role])) }));
    server = await startNatsServer({ port, configText: config });
    url = `nats://127.0.0.1:${port}`;
  });

  afterAll(async () => {
    await Promise.all(clients.map((nc) => nc.close()));
    await Promise.all(apps.map((app) => app.stop()));
    await server?.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  test('hosts and sentinels train with their own credentials; a trainer cannot read, answer or announce for others', async () => {
    const roles = ['--roles', path.join(dir, 'roles.json')];
    first = start('network.ts', 'host-0', ['--name', 'sec', '--model', MODEL, '--gates', '0-0', ...roles]);
    rest = start('network.ts', 'host-1', ['--name', 'sec', '--model', MODEL, '--gates', '1-2', ...roles]);
    await Promise.all([first.waitFor(/gates 0-0 wired/), rest.waitFor(/gates 1-2 wired/)]);

    const train = start('sentinel.ts', 'trainer-1', ['train', '--network', 'sec', '--csv', path.join(dir, 'train.csv'), '--epochs', '6', '--batch-size', '32', '--concurrency', '2', '--no-progress']);
    expect(await train.exited).toBe(0);
    expect(Number((await train.waitFor(/done .* last loss ([\d.e+-]+)/))[1])).toBeLessThan(0.05);

    const trainer = await client('trainer-1');
    // Reading another node's frames, the registry's requests, or another network: refused.
    expect(await refusedSubscription(trainer, 'akk.sec.node.host-0')).toMatch(/permissions violation/i);
    expect(await refusedSubscription(await client('trainer-1'), 'akk.sec.registry')).toMatch(/permissions violation/i);
    expect(await refusedSubscription(await client('trainer-1'), 'akk.other.>')).toMatch(/permissions violation/i);

    // Announcing gates, answering a host's requests, sending a frame or a heartbeat as another
    // node: the server drops them. A host-side observer sees the trainer's allowed heartbeat, sent
    // after them, and nothing before it.
    const observer = await client('host-0');
    const seen: string[] = [];
    let heard!: () => void;
    const heartbeat = new Promise<void>((resolve) => (heard = resolve));
    for (const subject of ['akk.sec.registry.announce', '_INBOX_host-0.>', 'akk.sec.node.host-1.>', 'akk.sec.heartbeat.host-0']) {
      observer.subscribe(subject, { callback: (_e, msg) => void seen.push(msg.subject) });
    }
    observer.subscribe('akk.sec.heartbeat.trainer-1', { callback: (_e, msg) => void (msg.string().includes('"forger"') && heard()) });
    await observer.flush();
    const forger = await client('trainer-1');
    forger.publish('akk.sec.registry.announce', JSON.stringify({ node: 'trainer-1', total: 3, gates: [] }));
    forger.publish('_INBOX_host-0.forged', JSON.stringify({ node: 'trainer-1', total: 3, gates: [] }));
    forger.publish('akk.sec.node.host-1.host-0', new Uint8Array(8)); // a frame in host-0's name
    forger.publish('akk.sec.heartbeat.host-0', JSON.stringify({ node: 'host-0', bye: true }));
    forger.publish('akk.sec.heartbeat.trainer-1', JSON.stringify({ node: 'trainer-1', name: 'forger' }));
    await heartbeat;
    expect(seen).toEqual([]);

    // On its own heartbeat subject, a goodbye in another node's name is ignored by every node.
    const watcher = await connectNats(new ActorSystem({ name: 'watcher', node: 'watcher' }), { servers: url, namespace: 'sec', user: 'watcher', pass: passwords.get('watcher') });
    const down: string[] = [];
    watcher.events.on('peerDown', (node) => down.push(node));
    const trainerUp = new Promise<void>((resolve) => watcher.events.on('peerUp', (node) => node === 'trainer-1' && resolve()));
    const trainerDown = new Promise<void>((resolve) => watcher.events.on('peerDown', (node) => node === 'trainer-1' && resolve()));
    // Heard host-0 already, or wait for its next heartbeat (checked and listened for in one turn, so none is missed).
    await new Promise<void>((resolve) => (watcher.peerNodes.has('host-0') ? resolve() : watcher.events.on('peerUp', (node) => node === 'host-0' && resolve())));
    forger.publish('akk.sec.heartbeat.trainer-1', JSON.stringify({ node: 'trainer-1', name: 'forger-2' }));
    await trainerUp;
    forger.publish('akk.sec.heartbeat.trainer-1', JSON.stringify({ node: 'host-0', bye: true }));
    forger.publish('akk.sec.heartbeat.trainer-1', JSON.stringify({ node: 'trainer-1', bye: true }));
    await trainerDown;
    expect(down).toEqual(['trainer-1']); // its own goodbye counts; the one in host-0's name does not
    expect(watcher.peerNodes.has('host-0')).toBe(true);
    await watcher.close();

    // The network still serves its honest sentinels.
    const test = start('sentinel.ts', 'tester-1', ['test', '--network', 'sec', '--jsonl', path.join(dir, 'test.jsonl'), '--no-progress']);
    expect(await test.exited).toBe(0);
    cleanLoss = Number((await test.waitFor(/done .* last loss ([\d.e+-]+)/))[1]);
    expect(cleanLoss).toBeLessThan(0.05);
  });

  test('without credentials, or with a wrong password, nothing connects', async () => {
    await expect(connect({ servers: url })).rejects.toThrow(/authorization violation/i);
    await expect(connect({ servers: url, user: 'trainer-1', pass: 'wrong' })).rejects.toThrow(/authorization violation/i);
  });

  test("a network process with --roles refuses state and wiring messages from a trainer's node, and serves an admin's", async () => {
    const node = async (user: string) => connectNats(new ActorSystem({ name: user, node: user, validate: protocolValidator() }), { servers: url, namespace: 'sec', user, pass: passwords.get(user) });
    const [trainer, admin] = [await node('trainer-1'), await node('watcher')];
    try {
      const found = await discoverNetwork(trainer, 'sec', { timeoutMs: 10_000 });
      const gate0 = found.gates.get(0) as DiscoveredGate;
      const from = (n: NatsNode) => n.system.ref<GateMessage>(gate0.id, gate0.name, gate0.node);
      const inbox = trainer.system.spawn(() => ({ receive: () => undefined }), { name: 'inbox' });
      from(trainer).tell({ type: 'gate.getState', replyTo: inbox });
      await first.waitFor(/Node trainer-1 may not send 'gate.getState' to network sec: only hosts and admins may \(its role: trainer\)/);
      from(trainer).tell({ type: 'gate.connect', next: inbox as never });
      await first.waitFor(/Node trainer-1 may not send 'gate.connect'/);
      from(trainer).tell({ type: 'gate.detach', node: 'host-1' });
      await first.waitFor(/Node trainer-1 may not send 'gate.detach'/);
      const state = await admin.system.ask<GateState, GateMessage>(from(admin), (replyTo) => ({ type: 'gate.getState', replyTo }), 10_000);
      expect(state.type).toBe('gate.state');
      [...state.weights, ...state.optimizer].forEach((t) => t.tensor.dispose());
    } finally {
      await Promise.all([trainer.close(), admin.close()]);
    }
  });

  test("a trainer that floods the gates and forges batches, detaches, state and replies in others' names changes nothing: the honest trainer's test loss is within noise of a clean run, and the host's memory stays bounded", async () => {
    // Fresh weights (the same seed as the clean run).
    await Promise.all([first.stop(), rest.stop()]);
    const roles = ['--roles', path.join(dir, 'roles.json')];
    first = start('network.ts', 'host-0', ['--name', 'sec', '--model', MODEL, '--gates', '0-0', ...roles]);
    rest = start('network.ts', 'host-1', ['--name', 'sec', '--model', MODEL, '--gates', '1-2', ...roles]);
    await Promise.all([first.waitFor(/gates 0-0 wired/), rest.waitFor(/gates 1-2 wired/)]);
    const rss = () => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${first.child.pid}/status`, 'utf8'))?.[1]) / 1024; // MiB

    const attacker = await connectNats(new ActorSystem({ name: 'attacker', node: 'trainer-2', validate: protocolValidator() }), { servers: url, namespace: 'sec', user: 'trainer-2', pass: passwords.get('trainer-2') });
    try {
      const found = await discoverNetwork(attacker, 'sec', { timeoutMs: 10_000 });
      const gate0 = found.gates.get(0) as DiscoveredGate;
      const g0 = attacker.system.ref<GateMessage>(gate0.id, gate0.name, gate0.node);
      const train = start('sentinel.ts', 'trainer-1', ['train', '--network', 'sec', '--csv', path.join(dir, 'train.csv'), '--epochs', '6', '--batch-size', '32', '--concurrency', '2', '--no-progress', ...roles]);
      await train.waitFor(/attached to network sec/);

      // Forged in the honest trainer's name, or privileged: refused by the hosts and the trainer's process.
      const x = () => tf.ones([32, 8]);
      const victim = attacker.system.ref<SentinelReply>('sentinel-train', 'train', 'trainer-1');
      g0.tell({ type: 'gate.forward', sentinel: victim, batch: 1, x: x() });
      g0.tell({ type: 'gate.backward', sentinel: victim, batch: 1, dy: tf.ones([32, 32]) });
      g0.tell({ type: 'gate.detach', node: 'trainer-1' });
      g0.tell({ type: 'gate.setState', weights: [], replyTo: victim as never });
      victim.tell({ type: 'sentinel.logits', batch: 0, logits: tf.ones([32, 1]) });
      await first.waitFor(/Node trainer-2 may not send 'gate.forward' to network sec: it is for a sentinel on another node/);
      await first.waitFor(/Node trainer-2 may not send 'gate.backward'/);
      await first.waitFor(/Node trainer-2 may not send 'gate.detach' to network sec: it may detach only its own sentinels/);
      await first.waitFor(/Node trainer-2 may not send 'gate.setState'/);
      await train.waitFor(/Node trainer-2 may not send 'sentinel.logits' to network sec: only hosts and admins may/);

      // A flood of forwards that are never finished, from four sentinels of its own, in two waves
      // of 4 × 1100: the gates keep 1024 per sentinel and 4096 for the node, and refuse the rest.
      const replies = { logits: 0, overload: 0, other: 0 };
      let expected = 0;
      let answered: () => void = () => undefined;
      const sentinels = [0, 1, 2, 3].map((i) =>
        attacker.system.spawn<SentinelReply>(() => ({
          receive: (m) => {
            if (m.type === 'sentinel.logits') {
              m.logits.dispose();
              replies.logits++;
            } else if (m.type === 'sentinel.batchFailed' && m.error.code === 'Overload') replies.overload++;
            else replies.other++;
            if (replies.logits + replies.overload + replies.other === expected) answered();
          },
        }), { name: `flood-${i}` }),
      );
      const flood = async (from: number) => {
        expected += 4400;
        const done = new Promise<void>((resolve) => (answered = resolve));
        for (let batch = from; batch < from + 1100; batch++) for (const ref of sentinels) g0.tell({ type: 'gate.forward', sentinel: ref, batch, x: tf.ones([128, 8]) });
        await done;
      };
      await flood(0);
      const afterFirst = rss();
      expect(replies).toEqual({ logits: 4096, overload: 304, other: 0 });
      await flood(1100);
      expect(replies).toEqual({ logits: 4096, overload: 4704, other: 0 });
      const afterSecond = rss();
      const training = !train.lines.some((line) => / done /.test(line));
      console.log(`host-0 RSS: ${afterFirst.toFixed(0)} MiB after the first wave, ${afterSecond.toFixed(0)} MiB after the second; the honest trainer ${training ? 'was still training' : 'had finished'}`);
      expect(afterSecond - afterFirst).toBeLessThan(48);

      expect(await train.exited).toBe(0);
      // Its own node's batches it may free.
      const freed = await attacker.system.ask<GateDetached, GateMessage>(g0, (replyTo) => ({ type: 'gate.detach', node: 'trainer-2', replyTo }), 10_000);
      expect(freed.dropped).toBe(4096);
      const test = start('sentinel.ts', 'tester-1', ['test', '--network', 'sec', '--jsonl', path.join(dir, 'test.jsonl'), '--no-progress']);
      expect(await test.exited).toBe(0);
      const attackedLoss = Number((await test.waitFor(/done .* last loss ([\d.e+-]+)/))[1]);
      console.log(`test loss: clean ${cleanLoss}, attacked ${attackedLoss}`);
      expect(attackedLoss).toBeLessThan(Math.max(2 * cleanLoss, cleanLoss + 0.01));
    } finally {
      await attacker.close();
    }
  });
});
