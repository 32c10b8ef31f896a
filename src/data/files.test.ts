/**
 * Datasets from files and data described as data: CSV (header detection, target columns,
 * classes), JSON lines, IDX (raw and gzipped), slices and shards, provider modules, the named
 * errors for bad files, and data roots that refuse paths outside them.
 */
import { mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import * as tf from '@tensorflow/tfjs';
import { DataFormatError, InvalidArgumentError } from '../errors.js';
import { readCsv, readIdxPair, readJsonl, shardDataset, sliceDataset } from './files.js';
import { allowedPath, providerFromSpec } from './spec.js';

let dir: string;
const file = (name: string, text: string | Uint8Array) => {
  const p = path.join(dir, name);
  writeFileSync(p, text);
  return p;
};

beforeAll(async () => {
  await tf.setBackend('cpu');
  dir = mkdtempSync(path.join(os.tmpdir(), 'akkordeon-files-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('readCsv', () => {
  test('a header is detected; the target defaults to the last column and the rest are features', async () => {
    const ds = await readCsv(file('a.csv', 'a,b,y\n1,2,3\n4,5,6\n'));
    expect(ds.inputShape).toEqual([2]);
    expect(Array.from(ds.x)).toEqual([1, 2, 4, 5]);
    expect(Array.from(ds.y)).toEqual([3, 6]);
    expect(ds.targetShape).toEqual([1]);
    expect(ds.numClasses).toBeUndefined();
  });

  test('a named target column, by name or index, with classes and without a header', async () => {
    const labelled = await readCsv(file('b.csv', 'label,f1,f2\n2,0.5,0.25\n0,1,2\n'), { target: 'label', classes: 3 });
    expect(labelled.y).toBeInstanceOf(Int32Array);
    expect(Array.from(labelled.y)).toEqual([2, 0]);
    expect(Array.from(labelled.x)).toEqual([0.5, 0.25, 1, 2]);
    const plain = await readCsv(file('c.csv', '1;2;3\n4;5;6\n'), { target: 0, delimiter: ';' });
    expect(Array.from(plain.y)).toEqual([1, 4]);
    expect(Array.from(plain.x)).toEqual([2, 3, 5, 6]);
  });

  test('bad files get named errors that say where', async () => {
    await expect(readCsv(file('d.csv', 'a,y\n1,2\nx,3\n'), { target: 'y' })).rejects.toThrow(/line 3, column a: 'x' is not a finite number/);
    await expect(readCsv(file('e.csv', 'a,y\n1,2\n'), { target: 'z' })).rejects.toThrow(InvalidArgumentError);
    await expect(readCsv(file('f.csv', 'a,y\n1,5\n'), { target: 'y', classes: 3 })).rejects.toThrow(/label 5 is not an integer in \[0, 3\)/);
    await expect(readCsv(file('g.csv', 'a,y\n1,2,3\n'))).rejects.toThrow(DataFormatError);
    await expect(readCsv(path.join(dir, 'missing.csv'))).rejects.toThrow(DataFormatError);
  });
});

describe('readJsonl', () => {
  test('nested inputs keep their shape; labels with classes', async () => {
    const ds = await readJsonl(file('a.jsonl', '{"x": [[1, 2], [3, 4]], "y": 1}\n\n{"x": [[5, 6], [7, 8]], "y": 0}\n'), { classes: 2 });
    expect(ds.inputShape).toEqual([2, 2]);
    expect(Array.from(ds.x)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(Array.from(ds.y)).toEqual([1, 0]);
  });

  test('a line of another shape, a missing field or a non-number is refused with its line', async () => {
    await expect(readJsonl(file('b.jsonl', '{"x": [1, 2], "y": 1}\n{"x": [1], "y": 1}\n'))).rejects.toThrow(/line 2: 'x' has shape \[1\]/);
    await expect(readJsonl(file('c.jsonl', '{"x": [1, 2]}\n'))).rejects.toThrow(/line 1: expected an object with fields 'x' and 'y'/);
    await expect(readJsonl(file('d.jsonl', '{"x": [1, "a"], "y": 1}\n'))).rejects.toThrow(DataFormatError);
    await expect(readJsonl(file('e.jsonl', '{"x": [1, 2], "y": 1}\nnot json\n'))).rejects.toThrow(/line 2: not JSON/);
  });
});

function idx(dims: number[], data: number[]): Uint8Array {
  const header = new Uint8Array(4 + 4 * dims.length);
  header[2] = 0x08;
  header[3] = dims.length;
  dims.forEach((d, i) => new DataView(header.buffer).setUint32(4 + 4 * i, d));
  return new Uint8Array([...header, ...data]);
}

test('readIdxPair reads raw and gzipped IDX files and scales the inputs', async () => {
  const images = file('images.idx', gzipSync(idx([2, 2, 2], [0, 255, 51, 102, 255, 0, 0, 0])));
  const labels = file('labels.idx', idx([2], [1, 2]));
  const ds = await readIdxPair(images, labels);
  expect(ds.inputShape).toEqual([2, 2]);
  expect(ds.x[1]).toBeCloseTo(1);
  expect(ds.x[2]).toBeCloseTo(0.2);
  expect(ds.numClasses).toBe(3);
  await expect(readIdxPair(images, file('short.idx', idx([3], [0, 1, 2])))).rejects.toThrow(DataFormatError);
});

test('slices and shards are views; the shards of any count cover the data once, without overlap', async () => {
  const ds = await readCsv(file('s.csv', Array.from({ length: 10 }, (_, i) => `${i},${i * 10}`).join('\n')));
  expect(Array.from(sliceDataset(ds, 2, 4).y)).toEqual([20, 30]);
  for (const n of [1, 3, 4, 6, 10]) {
    const parts = Array.from({ length: n }, (_, k) => Array.from(shardDataset(ds, k + 1, n).x));
    expect(parts.flat()).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(Math.max(...parts.map((p) => p.length)) - Math.min(...parts.map((p) => p.length))).toBeLessThanOrEqual(1);
  }
  expect(() => shardDataset(ds, 1, 11)).toThrow(/Cannot cut 10 samples into 11 shards/);
  expect(() => sliceDataset(ds, 5, 11)).toThrow(InvalidArgumentError);
});

test('hostile or odd input gets named errors: nulls, prototype keys, broken gzip, numeric column names', async () => {
  await expect(readJsonl(file('n.jsonl', '{"x": [null, 1], "y": 1}\n'))).rejects.toThrow(DataFormatError);
  await expect(readJsonl(file('p.jsonl', '{"x": [1], "y": 1}\n'), { x: '__proto__' })).rejects.toThrow(/expected an object with fields '__proto__'/);
  await expect(readJsonl(file('q.jsonl', '{"x": [1], "y": true}\n'))).rejects.toThrow(DataFormatError);
  const labels = file('l.idx', idx([1], [0]));
  await expect(readIdxPair(file('broken.idx.gz', new Uint8Array([0x1f, 0x8b, 8, 0, 1, 2, 3])), labels)).rejects.toThrow(/not a valid gzip file/);
  const headerless = await readCsv(file('h.csv', '5,1,2\n6,3,4\n'), { target: '0' });
  expect(Array.from(headerless.y)).toEqual([5, 6]); // '0' is column 0, and no row is taken for a header
});

describe('providerFromSpec', () => {
  test('builds providers from csv, jsonl and module specs, with a range', async () => {
    const csv = await providerFromSpec({ kind: 'csv', path: file('p.csv', 'a,b,y\n1,2,0\n3,4,1\n5,6,1\n'), classes: 2, from: 1 });
    expect(csv.size).toBe(2);
    expect(csv.numClasses).toBe(2);
    const module = file('provider.mjs', "export default ({ n }) => ({ size: n, inputShape: [1], batches: function* () {} });\n");
    const loaded = await providerFromSpec({ kind: 'module', path: module, options: { n: 5 } });
    expect(loaded.size).toBe(5);
    const notProvider = file('bad.mjs', 'export default 42;\n');
    await expect(providerFromSpec({ kind: 'module', path: notProvider })).rejects.toThrow(/is not a DataProvider/);
    await expect(providerFromSpec({ kind: 'parquet' } as never)).rejects.toThrow(/Unknown data kind 'parquet'/);
  });

  test('with data roots, a symbolic link out of a root is refused, and modules need their own consent', async () => {
    const outside = mkdtempSync(path.join(os.tmpdir(), 'akkordeon-outside-'));
    try {
      writeFileSync(path.join(outside, 'secret.csv'), 'a,y\n1,2\n');
      symlinkSync(path.join(outside, 'secret.csv'), path.join(dir, 'link.csv'));
      expect(() => allowedPath(path.join(dir, 'link.csv'), { roots: [dir] })).toThrow(/is refused/);
      expect(allowedPath(file('..dots.csv', 'a,y\n1,2\n'), { roots: [dir] })).toBe(path.join(realpathSync(dir), '..dots.csv'));
      const module = file('m.mjs', 'export default { size: 1, inputShape: [1], batches: function* () {} };\n');
      await expect(providerFromSpec({ kind: 'module', path: module }, { roots: [dir] })).rejects.toThrow(/runs no data modules for other nodes/);
      expect((await providerFromSpec({ kind: 'module', path: module }, { roots: [dir], modules: true })).size).toBe(1);
      const throwing = file('t.mjs', "export default () => { throw new Error('no data today'); };\n");
      await expect(providerFromSpec({ kind: 'module', path: throwing })).rejects.toThrow(/failed to make its provider: no data today/);
    } finally {
      rmSync(outside, { recursive: true, force: true });
    }
  });

  test('data roots refuse paths outside them, and no roots refuse every path', async () => {
    const inside = file('r.csv', 'a,y\n1,2\n');
    expect(allowedPath(inside, { roots: [dir] })).toBe(inside);
    expect(() => allowedPath(path.join(dir, '..', 'etc.csv'), { roots: [dir] })).toThrow(/is refused: this node reads data only under/);
    await expect(providerFromSpec({ kind: 'csv', path: inside }, { roots: [] })).rejects.toThrow(/allows no data files from other nodes/);
    await expect(providerFromSpec({ kind: 'module', path: '/tmp/elsewhere.mjs' }, { roots: [dir] })).rejects.toThrow(InvalidArgumentError);
  });
});
