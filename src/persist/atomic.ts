/**
 * Directories written atomically (a sibling temp directory, fsynced, renamed into place) and
 * found again after a save that was cut off between its two renames.
 */
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { InvalidArgumentError } from '../errors.js';

const isDir = (p: string) => fs.stat(p).then((s) => s.isDirectory(), () => false);

/** Flushes a directory's entries to disk (where the platform allows opening a directory). */
async function syncDir(dir: string): Promise<void> {
  const handle = await fs.open(dir, 'r').catch(() => undefined); // directories cannot be opened on Windows
  await handle?.sync().catch(() => undefined);
  await handle?.close();
}

/**
 * Writes `files` (name → contents) as directory `dir`, atomically: into a sibling temp directory
 * `${dir}.tmp-<random>` first, each file fsynced, then renamed into place; an existing `dir` is
 * renamed aside (`${dir}.old-<random>`), replaced, then removed. On failure the previous `dir` is
 * intact and the temp directory is gone; after a crash between the two renames the previous
 * contents are in the `.old-` directory.
 * @throws InvalidArgumentError when `dir` exists and holds anything but these file names (so a
 *   wrong path never deletes unrelated data); the file system's error when a write fails.
 */
export async function writeDirectoryAtomically(dir: string, files: Record<string, Uint8Array | string>): Promise<void> {
  const target = path.resolve(dir);
  const stat = await fs.stat(target).catch(() => undefined);
  if (stat) {
    const foreign = stat.isDirectory() ? (await fs.readdir(target)).filter((f) => !Object.hasOwn(files, f)) : [path.basename(target)];
    if (foreign.length > 0) {
      throw new InvalidArgumentError(
        `Refusing to replace ${target}: it holds ${foreign.join(', ')}, which this writer did not create. Choose an empty or new path.`,
      );
    }
  }
  await fs.mkdir(path.dirname(target), { recursive: true });
  const suffix = randomBytes(6).toString('hex');
  const temp = `${target}.tmp-${suffix}`;
  const aside = `${target}.old-${suffix}`;
  await fs.mkdir(temp);
  try {
    for (const [name, contents] of Object.entries(files)) {
      const handle = await fs.open(path.join(temp, name), 'wx');
      try {
        await handle.writeFile(contents);
        await handle.sync();
      } finally {
        await handle.close();
      }
    }
    await syncDir(temp);
    if (stat) await fs.rename(target, aside);
    try {
      await fs.rename(temp, target);
    } catch (error) {
      if (stat) await fs.rename(aside, target);
      throw error;
    }
  } catch (error) {
    await fs.rm(temp, { recursive: true, force: true });
    throw error;
  }
  await syncDir(path.dirname(target));
  if (stat) await fs.rm(aside, { recursive: true, force: true });
  // What a save cut off earlier left beside it (kept until now, so that a load could recover it).
  const base = path.basename(target);
  const stale = (await fs.readdir(path.dirname(target))).filter((n) => n.startsWith(`${base}.old-`) || n.startsWith(`${base}.tmp-`));
  await Promise.all(stale.map((n) => fs.rm(path.join(path.dirname(target), n), { recursive: true, force: true })));
}

/**
 * Where the checkpoint saved as `dir` is: `dir` itself, or, when a save crashed between its two
 * renames (`dir` moved aside, the new one not yet in place), the previous complete checkpoint in
 * the `${dir}.old-<random>` directory that save left. Undefined when there is neither.
 */
export async function findCheckpoint(dir: string): Promise<{ dir: string; recovered: boolean } | undefined> {
  const target = path.resolve(dir);
  if (await isDir(target)) return { dir: target, recovered: false };
  const parent = path.dirname(target);
  const prefix = `${path.basename(target)}.old-`;
  const candidates = (await fs.readdir(parent).catch(() => [] as string[])).filter((name) => name.startsWith(prefix));
  for (const name of candidates) {
    const candidate = path.join(parent, name);
    if (await fs.stat(path.join(candidate, 'manifest.json')).then(() => true, () => false)) return { dir: candidate, recovered: true };
  }
  return undefined;
}

