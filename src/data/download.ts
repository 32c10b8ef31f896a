/**
 * Downloads the four MNIST files from well-known mirrors, verifies their MD5 sums, and writes
 * them atomically (`<file>.tmp`, verify, rename), so a failed download never leaves a bad file.
 */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as NodeReadableStream } from 'node:stream/web';
import { DataFormatError } from '../errors.js';

/** One MNIST file: its name, size in bytes and official MD5 sum. */
export interface MnistFile {
  name: string;
  bytes: number;
  md5: string;
}

/** The four official MNIST `.gz` files with their official sizes and MD5 sums. */
export const MNIST_FILES: readonly MnistFile[] = [
  { name: 'train-images-idx3-ubyte.gz', bytes: 9912422, md5: 'f68b3c2dcbeaaa9fbdd348bbdeb94873' },
  { name: 'train-labels-idx1-ubyte.gz', bytes: 28881, md5: 'd53e105ee54ea40749a09fcbcd1e9432' },
  { name: 't10k-images-idx3-ubyte.gz', bytes: 1648877, md5: '9fb629c4189551a2d022fa330f9573f3' },
  { name: 't10k-labels-idx1-ubyte.gz', bytes: 4542, md5: 'ec29112dd5afa0611ce80d1b7f02629c' },
];

/** Mirrors of the original MNIST files, tried in this order (yann.lecun.com now refuses bots). */
export const MNIST_MIRRORS: readonly string[] = [
  'https://ossci-datasets.s3.amazonaws.com/mnist/',
  'https://storage.googleapis.com/cvdf-datasets/mnist/',
];

/** Options of {@link ensureMnist}. */
export interface EnsureMnistOptions {
  /** Base URLs to try in order; each file is fetched from `<mirror>/<file name>`. */
  mirrors?: readonly string[];
  /** Receives one line per step; defaults to `console.log`. */
  log?: (line: string) => void;
}

/** Returns the MD5 of a file as lowercase hex. */
export async function md5File(file: string): Promise<string> {
  const hash = createHash('md5');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

async function exists(file: string): Promise<boolean> {
  return stat(file).then(
    () => true,
    () => false,
  );
}

function describe(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause = error.cause instanceof Error ? ` (${error.cause.message})` : '';
  return error.message + cause;
}

function joinUrl(mirror: string, name: string): string {
  return mirror.endsWith('/') ? mirror + name : `${mirror}/${name}`;
}

/** Streams `url` into `tmp` and returns the MD5 and byte count of what was written. */
async function fetchTo(url: string, tmp: string): Promise<{ md5: string; bytes: number }> {
  const res = await fetch(url);
  if (!res.ok || !res.body) throw new Error(`HTTP ${res.status} ${res.statusText}`.trim());
  const hash = createHash('md5');
  let bytes = 0;
  await pipeline(
    Readable.fromWeb(res.body as NodeReadableStream<Uint8Array>),
    async function* (source: AsyncIterable<Buffer>) {
      for await (const chunk of source) {
        hash.update(chunk);
        bytes += chunk.length;
        yield chunk;
      }
    },
    createWriteStream(tmp),
  );
  return { md5: hash.digest('hex'), bytes };
}

/** Downloads one file into `dir`, trying each mirror in turn; returns the failures if all fail. */
async function download(
  file: MnistFile,
  dir: string,
  mirrors: readonly string[],
  log: (line: string) => void,
): Promise<string[]> {
  const target = path.join(dir, file.name);
  const tmp = `${target}.tmp`;
  const failures: string[] = mirrors.length === 0 ? ['no mirror URLs were given'] : [];
  for (const mirror of mirrors) {
    const url = joinUrl(mirror, file.name);
    log(`  downloading ${url}`);
    try {
      const got = await fetchTo(url, tmp);
      if (got.md5 !== file.md5) {
        throw new Error(
          `MD5 mismatch: got ${got.md5} (${got.bytes} bytes), expected ${file.md5} (${file.bytes} bytes)`,
        );
      }
      await rename(tmp, target);
      log(`  ok: ${file.name}, ${got.bytes} bytes, MD5 verified`);
      return [];
    } catch (error) {
      await rm(tmp, { force: true });
      failures.push(`${url}: ${describe(error)}`);
      log(`  failed: ${describe(error)}`);
    }
  }
  return failures;
}

/**
 * Ensures the four MNIST `.gz` files are in `dir` with their official MD5 sums, downloading
 * any that are missing or damaged from the mirrors in order.
 *
 * @param dir - Target directory; created if missing.
 * @throws DataFormatError if some file could not be fetched with the right MD5 from any mirror;
 *   no partial or `.tmp` file is left behind for it.
 */
export async function ensureMnist(dir: string, options: EnsureMnistOptions = {}): Promise<void> {
  const mirrors = options.mirrors ?? MNIST_MIRRORS;
  const log = options.log ?? ((line: string) => console.log(line));
  await mkdir(dir, { recursive: true });
  for (const file of MNIST_FILES) {
    const target = path.join(dir, file.name);
    if (await exists(target)) {
      const md5 = await md5File(target);
      if (md5 === file.md5) {
        log(`${file.name}: present in ${dir}, MD5 ok`);
        continue;
      }
      log(`${file.name}: present but MD5 is ${md5}, expected ${file.md5}; downloading again`);
    } else {
      log(`${file.name}: missing from ${dir}`);
    }
    const failures = await download(file, dir, mirrors, log);
    if (failures.length > 0) {
      throw new DataFormatError(
        `could not download ${file.name} with the official MD5 ${file.md5}:\n  ` +
          `${failures.join('\n  ')}\n` +
          'Check your network connection and retry, pass another mirror with `--mirror URL`, ' +
          `or copy the four MNIST .gz files into ${dir} by hand.`,
      );
    }
  }
}
