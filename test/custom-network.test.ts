/**
 * Any network, any data, on any node: a regression network (8 → 32 → 16 → 1, three gates, not
 * MNIST) described as data in `test/fixtures/regression-net.ts`, trained
 * - in worker threads: gates placed one per worker, a training sentinel in a worker reading a
 *   CSV file and a test sentinel in a child process reading JSON lines;
 * - over a real nats-server: two `npm run network -- --model <file>` processes (gates 0 and 1-2)
 *   and `npm run sentinel -- train --csv`, then `npm run sentinel -- test --jsonl`.
 * The targets have a variance of about 1; an untrained network's mean squared error is about 1,
 * and training must bring it under 0.05 on held-out samples.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { type NetworkDescription, loadNetworkDescription, networkGates } from '../src/models/index.js';
import { Network } from '../src/network/index.js';
import { type EpochStats } from '../src/sentinel/index.js';
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
    const first = start('network.ts', ['--name', 'reg', '--model', MODEL, '--gates', '0-0']);
    const rest = start('network.ts', ['--name', 'reg', '--model', MODEL, '--gates', '1-2']);
    await Promise.all([first.waitFor(/wired/), rest.waitFor(/wired/)]);
    expect((await first.waitFor(/hosting gates .*/))[0]).toContain('hosting gates 0-0 of 3 (regression, dcasgd lr 0.05, momentum 0.5)');
    const train = start('sentinel.ts', ['train', '--network', 'reg', '--csv', path.join(dir, 'train.csv'), '--target', 'y', '--epochs', '6', '--batch-size', '32', '--concurrency', '2', '--no-progress']);
    expect(await train.exited).toBe(0);
    const trained = Number((await train.waitFor(/done .* last loss ([\d.e+-]+)/))[1]);
    expect(trained).toBeLessThan(0.05);
    const testing = start('sentinel.ts', ['test', '--network', 'reg', '--jsonl', path.join(dir, 'test.jsonl'), '--no-progress']);
    expect(await testing.exited).toBe(0);
    expect(Number((await testing.waitFor(/done .* last loss ([\d.e+-]+)/))[1])).toBeLessThan(0.05);
  });
});
