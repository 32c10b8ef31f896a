/**
 * Start-up of a worker thread or child process whose entry is TypeScript: registers tsx's ESM
 * loader in this thread, then imports the entry (a file URL, from `workerData.entry` or the
 * `AKKORDEON_NODE_ENTRY` environment variable). Built JavaScript entries do not need it.
 */
import { isMainThread, workerData } from 'node:worker_threads';

const entry = isMainThread ? process.env.AKKORDEON_NODE_ENTRY : workerData?.entry;
if (typeof entry !== 'string') throw new Error('akkordeon bootstrap: no entry given (workerData.entry or AKKORDEON_NODE_ENTRY).');
if (entry.endsWith('.ts')) {
  const { register } = await import('tsx/esm/api');
  register();
}
await import(entry);
