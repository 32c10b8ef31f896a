import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { DataFormatError } from '../errors.js';
import { ensureMnist, md5File, MNIST_FILES } from './download.js';
import { parseIdx } from './idx.js';
import { loadMnist, resolveMnistDir } from './mnist.js';

const PROJECT_ROOT = path.resolve(fileURLToPath(new URL('../..', import.meta.url)));
const SHARED_MNIST = path.resolve(PROJECT_ROOT, '../shared/data/mnist');

/** Builds an uncompressed ubyte IDX file with the given dims and data. */
function idx(dims: number[], data: ArrayLike<number>, magic = [0, 0, 8, dims.length]): Uint8Array {
  const out = new Uint8Array(4 + 4 * dims.length + data.length);
  out.set(magic, 0);
  const view = new DataView(out.buffer);
  dims.forEach((d, i) => view.setUint32(4 + 4 * i, d, false));
  out.set(Array.from(data), 4 + 4 * dims.length);
  return out;
}

let tmpDirs: string[] = [];
function tmpDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'akkordeon-mnist-'));
  tmpDirs.push(dir);
  return dir;
}
afterEach(() => {
  for (const dir of tmpDirs) fs.rmSync(dir, { recursive: true, force: true });
  tmpDirs = [];
});

/** Writes a synthetic test split (gzipped unless raw bytes are given) and returns its dir. */
function writeSplit(images: Uint8Array | Buffer, labels: Uint8Array | Buffer): string {
  const dir = tmpDir();
  fs.writeFileSync(path.join(dir, 't10k-images-idx3-ubyte.gz'), images);
  fs.writeFileSync(path.join(dir, 't10k-labels-idx1-ubyte.gz'), labels);
  return dir;
}
const goodImages = () => gzipSync(idx([2, 28, 28], Array.from({ length: 2 * 784 }, (_, i) => [0, 255, 51, 102][i] ?? i % 256)));
const goodLabels = () => gzipSync(idx([2], [7, 3]));

async function expectDataError(promise: Promise<unknown>, ...patterns: RegExp[]): Promise<void> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(DataFormatError);
  for (const pattern of patterns) expect((error as Error).message).toMatch(pattern);
}

describe('parseIdx', () => {
  it('returns dims and a view of the data', () => {
    const bytes = idx([2, 3], [1, 2, 3, 4, 5, 6]);
    const { dims, data } = parseIdx(bytes, 'x');
    expect(dims).toEqual([2, 3]);
    expect(Array.from(data)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(data.buffer).toBe(bytes.buffer);
  });

  it('rejects a bad magic number, naming found and expected bytes', () => {
    expect(() => parseIdx(idx([1], [0], [0x1f, 0x8b, 8, 1]), 'f')).toThrow(
      /found 0x1f 0x8b 0x08 0x01, expected 0x00 0x00/,
    );
  });

  it('rejects an unsupported dtype', () => {
    expect(() => parseIdx(idx([1], [0], [0, 0, 0x0d, 1]), 'f')).toThrow(/dtype 0x0d/);
  });

  it('rejects truncated files and trailing garbage with byte counts', () => {
    const full = idx([4], [1, 2, 3, 4]);
    expect(() => parseIdx(full.subarray(0, 10), 'f')).toThrow(/need 12 bytes, got 10/);
    expect(() => parseIdx(full.subarray(0, 6), 'f')).toThrow(/truncated IDX header/);
    const longer = new Uint8Array(14);
    longer.set(full);
    expect(() => parseIdx(longer, 'f')).toThrow(/2 bytes of trailing garbage/);
    expect(() => parseIdx(longer, 'f')).toThrow(DataFormatError);
  });
});

describe('loadMnist', () => {
  it('loads the real test split', async () => {
    const split = await loadMnist(SHARED_MNIST, 'test');
    expect(split.count).toBe(10000);
    expect([split.rows, split.cols]).toEqual([28, 28]);
    expect(split.images).toBeInstanceOf(Float32Array);
    expect(split.images.length).toBe(10000 * 784);
    expect(split.labels).toBeInstanceOf(Int32Array);
    expect(split.labels.length).toBe(10000);
    expect(split.labels[0]).toBe(7);
    let min = Infinity;
    let max = -Infinity;
    const { images } = split;
    for (let i = 0; i < images.length; i++) {
      const v = images[i];
      if (v < min) min = v;
      if (v > max) max = v;
    }
    expect([min, max]).toEqual([0, 1]);
    expect([...new Set(split.labels)].sort()).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });

  it('scales a synthetic split to [0, 1]', async () => {
    const split = await loadMnist(writeSplit(goodImages(), goodLabels()), 'test');
    expect(split.count).toBe(2);
    expect(Array.from(split.images.subarray(0, 4))).toEqual([0, 1, 0.2, 0.4].map(Math.fround));
    expect(Array.from(split.labels)).toEqual([7, 3]);
  });

  it('throws on a bad magic number', async () => {
    const bad = gzipSync(idx([2, 2, 2], new Uint8Array(8), [8, 0, 8, 3]));
    await expectDataError(loadMnist(writeSplit(bad, goodLabels()), 'test'), /magic/, /download-mnist/);
  });

  it('throws on a truncated file', async () => {
    const short = gzipSync(idx([2, 2, 2], new Uint8Array(8)).subarray(0, 18));
    await expectDataError(loadMnist(writeSplit(short, goodLabels()), 'test'), /truncated/, /download-mnist/);
  });

  it('throws when image and label counts disagree', async () => {
    const threeLabels = gzipSync(idx([3], [1, 2, 3]));
    await expectDataError(
      loadMnist(writeSplit(goodImages(), threeLabels), 'test'),
      /2 images but .* has 3 labels/,
      /download-mnist/,
    );
  });

  it('throws on labels outside 0..9 and on images that are not rank 3', async () => {
    const badLabel = gzipSync(idx([2], [7, 10]));
    await expectDataError(loadMnist(writeSplit(goodImages(), badLabel), 'test'), /label 10 at index 1/);
    const flat = gzipSync(idx([2, 4], new Uint8Array(8)));
    await expectDataError(loadMnist(writeSplit(flat, goodLabels()), 'test'), /rank 3/);
    const small = gzipSync(idx([2, 2, 2], new Uint8Array(8)));
    await expectDataError(loadMnist(writeSplit(small, goodLabels()), 'test'), /MNIST images are 28x28, this file holds 2x2/);
  });

  it('refuses a gzip file that unpacks to more than MNIST can need, before holding it all', async () => {
    const bomb = gzipSync(new Uint8Array(16 + 70_001 * 784)); // a header of zeros and too many bytes
    await expectDataError(loadMnist(writeSplit(bomb, goodLabels()), 'test'), /gzip/);
  });

  it('throws on a missing file, naming the full path and what to do', async () => {
    const dir = tmpDir();
    const file = path.join(dir, 't10k-images-idx3-ubyte.gz');
    await expectDataError(
      loadMnist(dir, 'test'),
      new RegExp(file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')),
      /npm run download-mnist/,
      /--data DIR/,
      /MNIST_DIR/,
    );
  });

  it('throws on a corrupt gzip file', async () => {
    const corrupt = Buffer.from(goodImages());
    corrupt.fill(0x55, 10, corrupt.length - 8);
    await expectDataError(loadMnist(writeSplit(corrupt, goodLabels()), 'test'), /gzip/, /download-mnist/);
    await expectDataError(loadMnist(writeSplit(Buffer.from('hello'), goodLabels()), 'test'), /gzip/);
  });
});

describe('resolveMnistDir', () => {
  const saved = process.env['MNIST_DIR'];
  afterEach(() => {
    if (saved === undefined) delete process.env['MNIST_DIR'];
    else process.env['MNIST_DIR'] = saved;
  });

  it('prefers the flag, then MNIST_DIR, then <project root>/data/mnist', () => {
    process.env['MNIST_DIR'] = '/env/mnist';
    expect(resolveMnistDir('/flag/mnist')).toBe(path.resolve('/flag/mnist'));
    expect(resolveMnistDir()).toBe(path.resolve('/env/mnist'));
    delete process.env['MNIST_DIR'];
    expect(resolveMnistDir()).toBe(path.join(PROJECT_ROOT, 'data', 'mnist'));
  });
});

describe('ensureMnist', () => {
  /** Serves the shared MNIST files on 127.0.0.1, optionally corrupting one by name. */
  async function serve(corrupt?: string): Promise<{ url: string; close: () => Promise<void> }> {
    const server = http.createServer((req, res) => {
      const url = req.url ?? '';
      const name = path.basename(url);
      const file = path.join(SHARED_MNIST, name);
      if (!url.startsWith('/mnist/') || !fs.existsSync(file)) return void res.writeHead(404).end();
      const body = fs.readFileSync(file);
      if (name === corrupt) body[body.length >> 1] ^= 0xff;
      res.writeHead(200, { 'content-length': body.length }).end(body);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    return {
      url: `http://127.0.0.1:${port}/mnist/`,
      close: () => new Promise<void>((resolve) => server.close(() => resolve())),
    };
  }

  it('downloads all four files from a mirror and verifies their MD5', async () => {
    const server = await serve();
    const dir = path.join(tmpDir(), 'nested', 'mnist');
    const lines: string[] = [];
    try {
      const log = (line: string) => lines.push(line);
      await ensureMnist(dir, { mirrors: [server.url.replace('/mnist/', '/gone/'), server.url], log });
      await ensureMnist(dir, { mirrors: [], log }); // all present: needs no mirror
    } finally {
      await server.close();
    }
    expect(fs.readdirSync(dir).sort()).toEqual(MNIST_FILES.map((f) => f.name).sort());
    for (const file of MNIST_FILES) expect(await md5File(path.join(dir, file.name))).toBe(file.md5);
    expect(lines.filter((l) => l.includes('failed: HTTP 404'))).toHaveLength(4);
    expect(lines.filter((l) => l.includes('MD5 ok'))).toHaveLength(4);
  });

  it('throws on a corrupted download and leaves no partial file', async () => {
    const bad = 't10k-images-idx3-ubyte.gz';
    const server = await serve(bad);
    const dir = tmpDir();
    try {
      await expectDataError(ensureMnist(dir, { mirrors: [server.url], log: () => {} }), /MD5 mismatch/, /--mirror/);
    } finally {
      await server.close();
    }
    const left = fs.readdirSync(dir);
    expect(left).not.toContain(bad);
    expect(left.filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });
});
