/**
 * Checkpoints: exact round trip of weights and optimizer state, atomic replacement, rejection of
 * other architectures without side effects, and named errors for corrupt files.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { CheckpointMismatchError, DataFormatError, InvalidArgumentError } from '../src/errors.js';
import { loadCheckpoint, periodicCheckpoints, saveCheckpoint, writeDirectoryAtomically } from '../src/persist/checkpoint.js';
import { Network } from '../src/network/index.js';
import type { NamedTensor } from '../src/optim/index.js';
import { DCASGD } from '../src/optim/index.js';
import { Sentinel } from '../src/sentinel/index.js';
import { blobs, setupBackend, useTempDir } from './helpers.js';

beforeAll(setupBackend);

const temp = useTempDir('akkordeon-ckpt-');
let baseline: number;
beforeEach(() => {
  baseline = tf.memory().numTensors;
});


function makeNetwork(hidden: number): Network {
  return new Network({
    inputShape: [6],
    gates: [
      { layers: [tf.layers.dense({ units: hidden, activation: 'relu' })] },
      { layers: [tf.layers.dense({ units: 8, activation: 'tanh' }), tf.layers.dense({ units: 3 })] },
    ],
    optimizer: () => new DCASGD({ learningRate: 0.05, momentum: 0.9 }),
  });
}

async function train(network: Network, seed: number): Promise<number> {
  const sentinel = new Sentinel({ name: `train-${seed}`, mode: 'train', data: blobs(64, 6, 3, seed), batchSize: 16, concurrency: 2 });
  network.attach(sentinel);
  const summary = await sentinel.done;
  return summary.epochs[0]?.loss ?? NaN;
}

/** Every gate's weights and optimizer state as plain arrays, keyed `gate/kind/name`. */
async function snapshot(network: Network): Promise<Map<string, number[]>> {
  const states = await network.getState();
  const values = new Map<string, number[]>();
  const add = (gate: string, kind: string, list: NamedTensor[]) =>
    list.forEach(({ name, tensor }) => values.set(`${gate}/${kind}/${name}`, Array.from(tensor.dataSync())));
  states.forEach((s) => {
    add(s.gate, 'w', s.weights);
    add(s.gate, 'opt', s.optimizer);
    [...s.weights, ...s.optimizer].forEach((t) => t.tensor.dispose());
  });
  return values;
}

test('a checkpoint restores weights and optimizer state exactly, and a second save replaces it atomically', async () => {
  const network = makeNetwork(16);
  await train(network, 1);
  const dir = path.join(temp.path, 'ckpt');
  const saved = await snapshot(network);
  expect([...saved.keys()].some((k) => k.includes('/opt/slot/'))).toBe(true); // momentum exists
  await saveCheckpoint(network, dir);

  await train(network, 2);
  expect(await snapshot(network)).not.toEqual(saved);
  await loadCheckpoint(network, dir);
  expect(await snapshot(network)).toEqual(saved);

  await train(network, 3);
  const second = await snapshot(network);
  await saveCheckpoint(network, dir);
  expect(await fs.readdir(temp.path)).toEqual(['ckpt']); // no temp or aside directories left
  expect((await fs.readdir(dir)).sort()).toEqual(['manifest.json', 'weights.bin']);
  await train(network, 4);
  await loadCheckpoint(network, dir);
  expect(await snapshot(network)).toEqual(second);

  await network.dispose();
  expect(tf.memory().numTensors).toBe(baseline);
});

test('loading with { optimizer: false } takes the weights and keeps the current optimizer state', async () => {
  const network = makeNetwork(16);
  await train(network, 1);
  const dir = path.join(temp.path, 'ckpt');
  const saved = await snapshot(network);
  await saveCheckpoint(network, dir);
  await train(network, 2);
  const trained = await snapshot(network);
  await loadCheckpoint(network, dir, { optimizer: false });
  const loaded = await snapshot(network);
  for (const [key, value] of loaded) expect(value).toEqual(key.includes('/opt/') ? trained.get(key) : saved.get(key));
  await network.dispose();
  expect(tf.memory().numTensors).toBe(baseline);
});

test('a checkpoint of another architecture is rejected whole, names each weight, and changes nothing', async () => {
  const other = makeNetwork(16);
  await train(other, 1);
  const dir = path.join(temp.path, 'other');
  await saveCheckpoint(other, dir);
  await other.dispose();

  const network = makeNetwork(12);
  await train(network, 2);
  const before = await snapshot(network);
  const error = await loadCheckpoint(network, dir).catch((e: unknown) => e);
  expect(error).toBeInstanceOf(CheckpointMismatchError);
  const message = (error as Error).message;
  expect(message).toContain("gate-0: 'layer0/kernel' has shape [6,12], checkpoint has [6,16]");
  expect(message).toContain("gate-0: 'layer0/bias' has shape [12], checkpoint has [16]");
  expect(message).toContain("gate-1: 'layer0/kernel' has shape [12,8], checkpoint has [16,8]");
  expect(await snapshot(network)).toEqual(before);

  const loss = await train(network, 3); // the network still trains
  expect(Number.isFinite(loss)).toBe(true);
  expect(await snapshot(network)).not.toEqual(before);
  await network.dispose();
  expect(tf.memory().numTensors).toBe(baseline);
});

test('missing, truncated and corrupt checkpoints give named errors and leave the network unchanged', async () => {
  const network = makeNetwork(16);
  await train(network, 1);
  const dir = path.join(temp.path, 'ckpt');
  await saveCheckpoint(network, dir);
  const before = await snapshot(network);

  await expect(loadCheckpoint(network, path.join(temp.path, 'nowhere'))).rejects.toThrow(CheckpointMismatchError);

  const bin = path.join(dir, 'weights.bin');
  const full = await fs.readFile(bin);
  await fs.writeFile(bin, full.subarray(0, full.length - 8));
  await expect(loadCheckpoint(network, dir)).rejects.toThrow(/weights\.bin has \d+ bytes but the manifest expects/);
  await expect(loadCheckpoint(network, dir)).rejects.toThrow(DataFormatError);
  await fs.writeFile(bin, full);

  const manifestFile = path.join(dir, 'manifest.json');
  const manifest = JSON.parse(await fs.readFile(manifestFile, 'utf8')) as { version: number };
  await fs.writeFile(manifestFile, '{"format": "akkordeon-checkpoint", ');
  await expect(loadCheckpoint(network, dir)).rejects.toThrow(/not valid JSON/);
  await fs.writeFile(manifestFile, JSON.stringify({ ...manifest, version: 99 }));
  await expect(loadCheckpoint(network, dir)).rejects.toThrow(/version 99/);
  await fs.rm(manifestFile);
  await expect(loadCheckpoint(network, dir)).rejects.toThrow(CheckpointMismatchError);

  expect(await snapshot(network)).toEqual(before);
  await network.dispose();
  expect(tf.memory().numTensors).toBe(baseline);
});

test('a write that fails midway keeps the previous directory and leaves no temp directory', async () => {
  const dir = path.join(temp.path, 'ckpt');
  await writeDirectoryAtomically(dir, { 'manifest.json': '{"v":1}', 'weights.bin': new Uint8Array([1, 2, 3]) });
  // The second file cannot be created (its folder does not exist), after the first was written.
  await expect(writeDirectoryAtomically(dir, { 'manifest.json': '{"v":2}', 'sub/weights.bin': new Uint8Array(4) })).rejects.toThrow();
  expect(await fs.readdir(temp.path)).toEqual(['ckpt']);
  expect(await fs.readFile(path.join(dir, 'manifest.json'), 'utf8')).toBe('{"v":1}');

  // A directory with files of its own is never replaced.
  const foreign = path.join(temp.path, 'foreign');
  await fs.mkdir(foreign);
  await fs.writeFile(path.join(foreign, 'notes.txt'), 'keep me');
  await expect(writeDirectoryAtomically(foreign, { 'manifest.json': '{}' })).rejects.toThrow(InvalidArgumentError);
  expect(await fs.readFile(path.join(foreign, 'notes.txt'), 'utf8')).toBe('keep me');
});

test('periodic checkpoints skip saves while no gate has updated, and save again after training', async () => {
  const network = makeNetwork(16);
  const dir = path.join(temp.path, 'periodic');
  const lines: string[] = [];
  const saver = await periodicCheckpoints(network, dir, 0, (line) => lines.push(line));

  expect(await saver.save('first')).toBe('saved'); // nothing on disk yet: the initial weights are written
  const manifest = path.join(dir, 'manifest.json');
  const written = (await fs.stat(manifest)).mtimeMs;
  expect(await saver.save('idle')).toBe('unchanged');
  expect((await fs.stat(manifest)).mtimeMs).toBe(written);

  await train(network, 1);
  const [saved, again] = await Promise.all([saver.save('after training'), saver.save('at once')]); // one after the other, never both at once
  expect([saved, again]).toEqual(['saved', 'unchanged']);
  expect(await saver.stop()).toBe('unchanged');
  expect(lines.filter((l) => l.startsWith('checkpoint saved'))).toHaveLength(2);

  // A restarted process that loaded this checkpoint counts it as current: nothing to rewrite until it trains.
  const restarted = makeNetwork(16);
  await loadCheckpoint(restarted, dir);
  const resumed = await periodicCheckpoints(restarted, dir, 0);
  expect(await resumed.save('idle')).toBe('unchanged');
  await train(restarted, 2);
  expect(await resumed.stop()).toBe('saved');
  const reloaded = makeNetwork(16);
  await loadCheckpoint(reloaded, dir);
  expect(await snapshot(reloaded)).toEqual(await snapshot(restarted));

  // A failed write is reported, not thrown, and the checkpoint in place stays whole.
  const blocked = path.join(temp.path, 'blocked');
  await fs.mkdir(blocked);
  await fs.writeFile(path.join(blocked, 'notes.txt'), 'not a checkpoint');
  const failing = await periodicCheckpoints(network, blocked, 0, (line) => lines.push(line));
  expect(await failing.save('periodic')).toBe('failed');
  expect(lines.at(-1)).toMatch(/checkpoint NOT saved to .*blocked \(periodic\): .*notes\.txt.*the previous one is intact/);
  await expect(periodicCheckpoints(network, dir, -1)).rejects.toThrow(InvalidArgumentError);

  await Promise.all([network, restarted, reloaded].map((n) => n.dispose()));
  expect(tf.memory().numTensors).toBe(baseline);
});

test('loading refuses NaN or Infinity in a checkpoint, and gates matched by name, leaving the network unchanged', async () => {
  const network = makeNetwork(16);
  await train(network, 1);
  const dir = path.join(temp.path, 'nan');
  await saveCheckpoint(network, dir);
  const manifest = JSON.parse(await fs.readFile(path.join(dir, 'manifest.json'), 'utf8'));
  const entry = manifest.gates[1].weights[0];
  const bytes = await fs.readFile(path.join(dir, 'weights.bin'));
  new DataView(bytes.buffer, bytes.byteOffset).setFloat32(entry.offset + 4, NaN, true);
  await fs.writeFile(path.join(dir, 'weights.bin'), bytes);
  const target = makeNetwork(16);
  const before = await snapshot(target);
  await expect(loadCheckpoint(target, dir)).rejects.toThrow(new RegExp(`NaN or Infinity in gate-1: '${entry.name}'`));
  expect(await snapshot(target)).toEqual(before);
  // A gate of another name at the same position does not take the saved one's weights.
  await saveCheckpoint(network, path.join(temp.path, 'named'));
  const renamed = new Network({ inputShape: [6], gates: [{ name: 'encoder', layers: [tf.layers.dense({ units: 16, activation: 'relu' })] }, { layers: [tf.layers.dense({ units: 8, activation: 'tanh' }), tf.layers.dense({ units: 3 })] }], optimizer: () => new DCASGD({ learningRate: 0.05, momentum: 0.9 }) });
  await expect(loadCheckpoint(renamed, path.join(temp.path, 'named'))).rejects.toThrow(/gate 0 is 'encoder', the checkpoint's gate 0 is 'gate-0'/);
  await Promise.all([network, target, renamed].map((n) => n.dispose()));
  expect(tf.memory().numTensors).toBe(baseline);
});

test('a save cut off between its two renames is recovered at the next load (the previous checkpoint, logged), and cleaned up by the next save', async () => {
  const network = makeNetwork(16);
  await train(network, 1);
  const dir = path.join(temp.path, 'crash');
  await saveCheckpoint(network, dir);
  const saved = await snapshot(network);
  // The state a crash leaves: the checkpoint moved aside, the new one still in its temp directory.
  await fs.rename(dir, `${dir}.old-abc123`);
  await fs.mkdir(`${dir}.tmp-abc123`);
  await fs.writeFile(path.join(`${dir}.tmp-abc123`, 'manifest.json'), '{"trunc');
  const target = makeNetwork(16);
  const lines: string[] = [];
  await loadCheckpoint(target, dir, { log: (line) => lines.push(line) });
  expect(await snapshot(target)).toEqual(saved);
  expect(lines.join('\n')).toMatch(/a save was cut off after moving it aside: loading the previous complete checkpoint from .*crash\.old-abc123/);
  await saveCheckpoint(target, dir);
  expect((await fs.readdir(temp.path)).filter((n) => n.startsWith('crash'))).toEqual(['crash']);
  await Promise.all([network, target].map((n) => n.dispose()));
  expect(tf.memory().numTensors).toBe(baseline);
});

test('loading is all or nothing: when a gate refuses its state, the gates already changed get theirs back', async () => {
  const network = makeNetwork(16);
  await train(network, 1);
  const dir = path.join(temp.path, 'rollback');
  await saveCheckpoint(network, dir);
  const target = makeNetwork(16);
  const before = await snapshot(target);
  let calls = 0;
  const flaky = {
    getState: () => target.getState(),
    // The first call applies every gate's state, then fails as if the last gate had refused.
    setState: async (states: Parameters<Network['setState']>[0]) => {
      await target.setState(states);
      if (++calls === 1) throw new CheckpointMismatchError('gate-1 refused its state');
    },
  };
  await expect(loadCheckpoint(flaky, dir)).rejects.toThrow(/gate-1 refused/);
  expect(calls).toBe(2);
  expect(await snapshot(target)).toEqual(before);
  await Promise.all([network, target].map((n) => n.dispose()));
  expect(tf.memory().numTensors).toBe(baseline);
});
