/**
 * Network descriptions: built-in models described and rebuilt with the same initial weights,
 * descriptions loaded from .json files and modules, fingerprints that tell architectures apart,
 * and named errors for what is not a description.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { InvalidArgumentError } from '../errors.js';
import { describeFingerprint, describeNetwork, loadNetworkDescription, mnistDescription, networkGates, validateDescription } from './describe.js';
import { mnistMlp } from './mnist.js';

let dir: string;
beforeAll(async () => {
  await tf.setBackend('cpu');
  dir = mkdtempSync(path.join(os.tmpdir(), 'akkordeon-describe-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The initial kernel of each gate's first layer, built on `inputShape`. */
function kernels(gates: { layers: tf.layers.Layer[] }[], inputShape: number[]): Float32Array[] {
  let shape: (number | null)[] = [null, ...inputShape];
  return gates.map(({ layers }) => {
    const layer = layers[0] as tf.layers.Layer;
    layer.build(shape);
    shape = layer.computeOutputShape(shape) as (number | null)[];
    return layer.getWeights()[0]?.dataSync() as Float32Array;
  });
}

test('the MLP described and rebuilt starts from the weights of the MLP built directly', () => {
  const described = kernels(networkGates(mnistDescription('mlp', 3)), [784]);
  const direct = kernels(mnistMlp(3), [784]);
  described.forEach((k, i) => expect(Array.from(k)).toEqual(Array.from(direct[i] as Float32Array)));
});

test('a description loads from a .json file, and the fingerprint tells architectures apart', async () => {
  const gates = (units: number) => [{ name: 'a', layers: [tf.layers.dense({ units })] }];
  const small = describeNetwork({ name: 'n', inputShape: [4], gates: gates(3) });
  const wide = describeNetwork({ name: 'n', inputShape: [4], gates: gates(5) });
  const file = path.join(dir, 'net.json');
  writeFileSync(file, JSON.stringify(small));
  const loaded = await loadNetworkDescription(file);
  expect(describeFingerprint(loaded)).toBe(describeFingerprint(small));
  expect(describeFingerprint(wide)).not.toBe(describeFingerprint(small));
  // Layer names and initializer seeds are not architecture: other seeds, same fingerprint.
  const reseeded = describeNetwork({ name: 'n', inputShape: [4], gates: gates(3), seed: 9 });
  expect(reseeded.gates[0]?.layers[0]?.config.name).not.toBe(small.gates[0]?.layers[0]?.config.name);
  expect(describeFingerprint(reseeded)).toBe(describeFingerprint(small));
});

test('a module may export a function of the seed', async () => {
  const file = path.join(dir, 'net.mjs');
  writeFileSync(file, "export default (seed) => ({ name: 'm' + seed, inputShape: [2], gates: [{ name: 'g', layers: [{ className: 'Dense', config: { units: 1 } }] }] });\n");
  expect((await loadNetworkDescription(file, 4)).name).toBe('m4');
});

test('what is not a description gets a named error saying what is wrong', async () => {
  expect(() => validateDescription({ name: 'x', inputShape: [0], gates: [] }, 'x.json')).toThrow(/x.json is not a network description: inputShape.0/);
  const twice = { name: 'x', inputShape: [2], gates: [1, 2].map(() => ({ name: 'g', layers: [{ className: 'Dense', config: { units: 1 } }] })) };
  expect(() => validateDescription(twice, 'x')).toThrow(/two gates are named 'g'/);
  await expect(loadNetworkDescription(path.join(dir, 'missing.ts'))).rejects.toThrow(InvalidArgumentError);
  const unknown = { name: 'x', inputShape: [2], gates: [{ name: 'g', layers: [{ className: 'NoSuchLayer', config: {} }] }] };
  expect(() => networkGates(validateDescription(unknown, 'x'))).toThrow(/'NoSuchLayer' is not registered/);
  const hostile = { name: 'x', inputShape: [2], gates: [{ name: 'g', layers: [{ className: '__proto__', config: {} }] }] };
  expect(() => networkGates(validateDescription(hostile, 'x'))).toThrow(/'__proto__' is not registered/);
  const badConfig = { name: 'x', inputShape: [2], gates: [{ name: 'g', layers: [{ className: 'Dense', config: { units: 1, activation: 'no-such-activation' } }] }] };
  expect(() => networkGates(validateDescription(badConfig, 'x'))).toThrow(/The config of a 'Dense' layer does not build/);
});
