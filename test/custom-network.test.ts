/**
 * Any network, any data, on any node: a regression network (8 → 32 → 16 → 1, three gates, not
 * MNIST) described as data in `test/fixtures/regression-net.ts`, trained
 * - in worker threads: gates placed one per worker, a training sentinel in a worker reading a
 *   CSV file and a test sentinel in a child process reading JSON lines;
 * - over a real nats-server: two `npm run network -- --model <file>` processes (gates 0 and 1-2)
 *   and `npm run sentinel -- train --csv`, then `npm run sentinel -- test --jsonl` and
 *   `npm run sentinel -- validate --provider <module>`.
 * The targets have a variance of about 1; an untrained network's mean squared error is about 1,
 * and training must bring it under 0.05 on held-out samples.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { type NetworkDescription, loadNetworkDescription, networkGates } from '../src/models/index.js';
import { Network } from '../src/network/index.js';
import { ActorSystem } from '../src/actor/index.js';
import { discoverNetwork, type DiscoveredGate } from '../src/cluster/index.js';
import { hostRef } from '../src/deploy/index.js';
import { type GateMessage, type HostMessage, type HostReply, protocolValidator, type SentinelReport } from '../src/protocol/index.js';
import { type EpochStats } from '../src/sentinel/index.js';
import { connectNats } from '../src/transport/index.js';
import { writeRegressionCsv, writeRegressionJsonl } from './fixtures/regression-data.js';
import { ROOT, setupBackend } from './helpers.js';
import { type App, type NatsServer, natsServerBinary, startApp, startNatsServer } from './nats-server.js';

const MODEL = path.join(ROOT, 'test/fixtures/regression-net.ts');
let dir: string;
let description: NetworkDescription;

beforeAll(async () => {
  await setupBackend();
  dir = mkdtempSync(path.join(os.tmpdir(), 'akkordeon-custom-'));
  writeRegressionCsv(path.join(dir, 'train.csv'), 2048, 7);
  writeRegressionJsonl(path.join(dir, 'test.jsonl'), 512, 8);
  description = await loadNetworkDescription(MODEL);
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

test('the description is plain JSON and rebuilds the same initial weights in every process', async () => {
  const again = JSON.parse(JSON.stringify(description)) as NetworkDescription;
  expect(again).toEqual(description);
  const build = (d: NetworkDescription) => networkGates(d).map((g) => g.layers[0] as tf.layers.Layer);
  const [a, b] = [build(description), build(again)];
  let shape = [null, ...description.inputShape];
  for (const [i, layer] of a.entries()) {
    layer.build(shape);
    b[i]?.build(shape);
    shape = layer.computeOutputShape(shape) as (number | null)[];
    const [wa, wb] = [layer.getWeights()[0] as tf.Tensor, b[i]?.getWeights()[0] as tf.Tensor];
    expect(tf.max(tf.abs(tf.sub(wa, wb))).dataSync()[0]).toBe(0);
    expect(tf.moments(wa).variance.dataSync()[0]).toBeGreaterThan(0); // seeded, not zeros
  }
});

test('in worker threads: gates in workers, a CSV trainer in a worker and a JSON-lines tester in a child process', async () => {
  const before = tf.memory().numTensors;
  const network = await Network.create({ inputShape: description.inputShape, gates: networkGates(description), optimizer: description.optimizer, placement: 'worker' });
  try {
    expect(network.placement.map((p) => p.kind)).toEqual(['worker', 'worker', 'worker']);
    const trainer = await network.attachPlaced({ name: 'train', mode: 'train', data: { kind: 'csv', path: path.join(dir, 'train.csv'), target: 'y', seed: 3 }, epochs: 6, batchSize: 32, concurrency: 2 }, { kind: 'worker' });
    const epochs: EpochStats[] = [];
    trainer.events.on('epoch', (stats) => epochs.push(stats));
    await trainer.done;
    expect(epochs).toHaveLength(6);
    expect(epochs[0]?.metrics.accuracy).toBeUndefined(); // regression: no accuracy metric
    const tester = await network.attachPlaced({ name: 'test', mode: 'test', data: { kind: 'jsonl', path: path.join(dir, 'test.jsonl') }, batchSize: 128 }, { kind: 'process' });
    const tested: EpochStats[] = [];
    tester.events.on('epoch', (stats) => tested.push(stats));
    await tester.done;
    expect(tested[0]?.samples).toBe(512);
    expect(tested[0]?.loss).toBeLessThan(0.05);
  } finally {
    await network.dispose();
  }
  expect(tf.memory().numTensors).toBe(before);
});

describe('over NATS', () => {
  const binary = natsServerBinary();
  const maybe = binary ? test : test.skip;
  let server: NatsServer;
  const apps: App[] = [];
  const start = (script: string, args: string[]) => {
    const app = startApp(ROOT, script, [...args, '--nats', server.url, '--backend', 'wasm']);
    apps.push(app);
    return app;
  };

  beforeAll(async () => {
    if (binary) server = await startNatsServer();
  });
  afterAll(async () => {
    await Promise.all(apps.map((app) => app.stop()));
    await server?.dispose();
  });

  maybe('two network processes with --model <file> and sentinel processes with --csv and --jsonl', async () => {
    const first = start('network.ts', ['--name', 'reg', '--model', MODEL, '--gates', '0-0', '--data-root', dir]);
    const rest = start('network.ts', ['--name', 'reg', '--model', MODEL, '--gates', '1-2']);
    await Promise.all([first.waitFor(/wired/), rest.waitFor(/wired/)]);
    expect((await first.waitFor(/hosting gates .*/))[0]).toContain('hosting gates 0-0 of 3 (regression, DC-ASGD lr 0.05, momentum 0.5)');
    const train = start('sentinel.ts', ['train', '--network', 'reg', '--csv', path.join(dir, 'train.csv'), '--target', 'y', '--epochs', '6', '--batch-size', '32', '--concurrency', '2', '--no-progress']);
    expect(await train.exited).toBe(0);
    const trained = Number((await train.waitFor(/done .* last loss ([\d.e+-]+)/))[1]);
    expect(trained).toBeLessThan(0.05);
    const testing = start('sentinel.ts', ['test', '--network', 'reg', '--jsonl', path.join(dir, 'test.jsonl'), '--no-progress']);
    expect(await testing.exited).toBe(0);
    expect(Number((await testing.waitFor(/done .* last loss ([\d.e+-]+)/))[1])).toBeLessThan(0.05);
    // A provider module on the sentinel's disk (the default export of regression-data.ts: 1,024 samples).
    const provided = start('sentinel.ts', ['validate', '--network', 'reg', '--provider', path.join(ROOT, 'test/fixtures/regression-data.ts'), '--no-progress']);
    expect(await provided.exited).toBe(0);
    expect((await provided.waitFor(/sentinel validate: (\d+) samples/))[1]).toBe('1024');
    expect(Number((await provided.waitFor(/done .* last loss ([\d.e+-]+)/))[1])).toBeLessThan(0.05);
  });

  maybe("a host builds a sentinel from another node's spec, reading only files under its --data-root", async () => {
    const nats = await connectNats(new ActorSystem({ name: 'client', validate: protocolValidator() }), { servers: server.url, namespace: 'reg', name: 'client' });
    try {
      const found = await discoverNetwork(nats, 'reg', { timeoutMs: 10_000 });
      const gate = (i: number) => {
        const g = found.gates.get(i) as DiscoveredGate;
        return nats.system.ref<GateMessage>(g.id, g.name, g.node);
      };
      let finished!: (report: SentinelReport) => void;
      const outcome = new Promise<SentinelReport>((resolve) => (finished = resolve));
      const reporter = nats.system.spawn<SentinelReport>(() => ({ receive: (m: SentinelReport) => (m.event === 'done' || m.event === 'failed' ? finished(m) : undefined) }), { name: 'reporter' });
      const spawn = (node: string, file: string) =>
        nats.system.ask<HostReply, HostMessage>(hostRef(nats.system, node), (replyTo) => ({
          type: 'host.spawnSentinel', spec: { name: 'remote-test', mode: 'test', data: { kind: 'jsonl', path: file }, batchSize: 128 }, first: gate(0), last: gate(2), reporter, replyTo,
        }), 30_000);
      const withRoot = found.gates.get(0)?.node as string; // started with --data-root <dir>
      const withoutRoot = found.gates.get(1)?.node as string;
      const refused = await spawn(withoutRoot, path.join(dir, 'test.jsonl'));
      expect(refused.type).toBe('host.failed');
      expect(refused.type === 'host.failed' && refused.error.message).toMatch(/allows no data files from other nodes/);
      const outside = await spawn(withRoot, path.join(ROOT, 'package.json'));
      expect(outside.type === 'host.failed' && outside.error.message).toMatch(/this node reads data only under/);
      expect((await spawn(withRoot, path.join(dir, 'test.jsonl'))).type).toBe('host.sentinelSpawned');
      const report = await outcome;
      expect(report.event).toBe('done');
      expect((report.payload as { epochs: EpochStats[] }).epochs[0]?.loss).toBeLessThan(0.05);
    } finally {
      await nats.close();
    }
  });
});
