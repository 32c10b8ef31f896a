/** Backend selection: names are validated, and `auto` picks the first backend that starts. */
import * as tf from '@tensorflow/tfjs';
import { BACKENDS, initBackend } from './backend.js';
import { BackendError, InvalidArgumentError } from './errors.js';

test('auto picks a known backend and makes it current', async () => {
  const name = await initBackend('auto');
  expect(BACKENDS).toContain(name);
  expect(tf.getBackend()).toBe(name);
});

test('an explicit backend is used, and the choice can change', async () => {
  const before = await initBackend();
  expect(await initBackend('cpu')).toBe('cpu');
  expect(tf.getBackend()).toBe('cpu');
  await initBackend(before);
});

test('an unknown name is rejected with the list of choices', async () => {
  await expect(initBackend('webgpu')).rejects.toThrow(InvalidArgumentError);
  await expect(initBackend('webgpu')).rejects.toThrow(/auto, tensorflow, wasm, cpu/);
});

test('a backend that cannot start is a BackendError, unless auto falls back', async () => {
  let tensorflowLoads = true;
  try {
    const optional = '@tensorflow/tfjs-node'; // an optional dependency: it may not be installed
    await import(optional);
  } catch {
    tensorflowLoads = false;
  }
  const before = tf.getBackend();
  if (tensorflowLoads) {
    expect(await initBackend('tensorflow')).toBe('tensorflow');
  } else {
    await expect(initBackend('tensorflow')).rejects.toThrow(BackendError);
    expect(tf.getBackend()).toBe(before); // nothing changed
  }
  await initBackend(before);
});
