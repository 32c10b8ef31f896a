/**
 * Export: a trained network written as one standard tfjs layers model predicts like the network
 * (evaluation mode: dropout off, BatchNormalization on its moving statistics).
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { DataFormatError } from '../src/errors.js';
import { exportModel, loadExportedModel, type ExportedModelJSON } from '../src/persist/export.js';
import { Network } from '../src/network/index.js';
import { SGD } from '../src/optim/index.js';
import { Sentinel } from '../src/sentinel/index.js';
import { blobs, setupBackend, useTempDir } from './helpers.js';

beforeAll(setupBackend);

const temp = useTempDir('akkordeon-export-');
let baseline: number;
beforeEach(() => {
  baseline = tf.memory().numTensors;
});


/** Three gates; the first holds Dense, BatchNormalization and Dropout. */
function makeNetwork(): Network {
  return new Network({
    inputShape: [10],
    gates: [
      {
        layers: [
          tf.layers.dense({ units: 16, activation: 'relu' }),
          tf.layers.batchNormalization({ momentum: 0.5 }),
          tf.layers.dropout({ rate: 0.3 }),
        ],
      },
      { layers: [tf.layers.dense({ units: 12, activation: 'tanh' })] },
      { layers: [tf.layers.dense({ units: 4 })] },
    ],
    optimizer: () => new SGD({ learningRate: 0.05, momentum: 0.9 }),
  });
}

async function train(network: Network): Promise<void> {
  const sentinel = new Sentinel({ name: 'train', mode: 'train', data: blobs(128, 10, 4, 3), batchSize: 16, concurrency: 2, epochs: 2 });
  network.attach(sentinel);
  const summary = await sentinel.done;
  expect(Number.isFinite(summary.epochs[1]?.loss)).toBe(true);
}

test('an exported model predicts like the network within 1e-5, BatchNormalization statistics included', async () => {
  const network = makeNetwork();
  await train(network);
  const states = await network.getState();
  const movingMean = states[0]?.weights.find((w) => w.name === 'layer1/moving_mean')?.tensor as tf.Tensor;
  expect(tf.tidy(() => tf.max(tf.abs(movingMean)).dataSync()[0])).toBeGreaterThan(1e-3); // the stats moved
  states.forEach((s) => [...s.weights, ...s.optimizer].forEach((t) => t.tensor.dispose()));

  const dir = path.join(temp.path, 'model');
  await exportModel(network, dir);
  expect(await fs.readdir(temp.path)).toEqual(['model']);
  const json = JSON.parse(await fs.readFile(path.join(dir, 'model.json'), 'utf8')) as ExportedModelJSON;
  expect(json.format).toBe('layers-model');
  expect(json.convertedBy).toBeNull();
  expect(json.weightsManifest[0]?.paths).toEqual(['weights.bin']);
  expect(json.weightsManifest[0]?.weights).toHaveLength(2 + 4 + 2 + 2); // dense, BN (γ, β, mean, var), dense, dense

  const model = await loadExportedModel(dir);
  expect(model.layers.map((l) => l.getClassName())).toEqual(['Dense', 'BatchNormalization', 'Dropout', 'Dense', 'Dense']);
  const batch = blobs(32, 10, 4, 9).batches(0, 32, false).next().value as { x: tf.Tensor; y: tf.Tensor };
  const expected = await network.predict(batch.x);
  const actual = model.predict(batch.x) as tf.Tensor;
  expect(actual.shape).toEqual([32, 4]);
  expect(tf.tidy(() => tf.max(tf.abs(tf.sub(actual, expected))).dataSync()[0])).toBeLessThan(1e-5);

  // A second export over the first replaces it, leaving no temp directories.
  await exportModel(network, dir);
  expect(await fs.readdir(temp.path)).toEqual(['model']);

  tf.dispose([batch.x, batch.y, expected, actual]);
  model.dispose();
  await network.dispose();
  expect(tf.memory().numTensors).toBe(baseline);
});

test('loading a missing, corrupt or truncated export gives DataFormatError', async () => {
  const network = makeNetwork();
  const dir = path.join(temp.path, 'model');
  await exportModel(network, dir);
  await network.dispose();

  await expect(loadExportedModel(path.join(temp.path, 'nowhere'))).rejects.toThrow(DataFormatError);
  const bin = path.join(dir, 'weights.bin');
  const full = await fs.readFile(bin);
  await fs.writeFile(bin, full.subarray(0, full.length - 4));
  await expect(loadExportedModel(dir)).rejects.toThrow(/truncated/);
  await fs.writeFile(bin, full);
  await fs.writeFile(path.join(dir, 'model.json'), '{"modelTopology": ');
  await expect(loadExportedModel(dir)).rejects.toThrow(DataFormatError);
  expect(tf.memory().numTensors).toBe(baseline);
});
