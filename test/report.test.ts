/**
 * The reporter prints plain epoch lines when its output is not a terminal, even when progress
 * bars are allowed (as `--progress`, the default, allows them); lost and failed batches are told apart.
 */
import { Reporter } from '../src/apps/report.js';
import { Sentinel } from '../src/sentinel/index.js';
import { Network } from '../src/network/index.js';
import * as tf from '@tensorflow/tfjs';
import { blobs, setupBackend } from './helpers.js';

beforeAll(setupBackend);

test('redirected output gets epoch lines and no progress bars', async () => {
  const tty = process.stderr.isTTY;
  Object.defineProperty(process.stderr, 'isTTY', { value: false, configurable: true });
  const writes: string[] = [];
  const write = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((chunk: string | Uint8Array) => (writes.push(String(chunk)), true)) as typeof process.stderr.write;
  const lines: string[] = [];
  const network = new Network({ inputShape: [6], gates: [{ layers: [tf.layers.dense({ units: 3 })] }] });
  try {
    const reporter = new Reporter({ progress: true, log: (line) => lines.push(line) });
    const sentinel = new Sentinel({ name: 'train', mode: 'train', data: blobs(64, 6, 3), batchSize: 16, epochs: 2 });
    reporter.watch(sentinel);
    network.attach(sentinel);
    await sentinel.done;
    reporter.stop();
  } finally {
    process.stderr.write = write;
    Object.defineProperty(process.stderr, 'isTTY', { value: tty, configurable: true });
    await network.dispose();
  }
  expect(lines.filter((l) => l.startsWith('train'))).toHaveLength(2);
  expect(writes.join('')).not.toContain('{name}');
  expect(writes.join('')).not.toContain('█');
});

test('a lost batch is printed as lost and a failed one as failed', () => {
  const lines: string[] = [];
  const reporter = new Reporter({ progress: false, log: (line) => lines.push(line) });
  const sentinel = new Sentinel({ name: 'train', mode: 'train', data: blobs(16, 6, 3) });
  reporter.watch(sentinel);
  sentinel.events.emit('batchError', { code: 'Transport', message: 'node n1 went down' }, 3, true);
  sentinel.events.emit('batchError', { code: 'ShapeMismatch', message: 'bad input' }, 4, false);
  reporter.stop();
  expect(lines).toEqual(['train: batch 3 lost: Transport: node n1 went down', 'train: batch 4 failed: ShapeMismatch: bad input']);
});
