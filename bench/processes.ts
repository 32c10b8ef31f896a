/**
 * The processes of the NATS row: a real `nats-server` on a free loopback port, and the
 * `npm run network` app (examples/network.ts) hosting slices of the MNIST MLP in child
 * processes; plus the CPU time those processes use, read from `/proc`.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { type App, freePort, natsServerBinary, startApp } from '../test/nats-server.js';
import { statCpuSeconds } from './common.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** A process this benchmark started: its pid and how to stop it (waits for the exit). */
export interface Started {
  readonly pid: number;
  stop(): Promise<void>;
}

/** Sends SIGTERM, then SIGKILL after `graceMs`, and resolves once `child` has exited. */
async function terminate(child: ChildProcess, graceMs = 10_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

/**
 * Starts `nats-server -a 127.0.0.1 -p <free port>` and resolves once it is ready.
 * @throws Error when nats-server is not installed, exits, or is not ready within 15 s.
 */
export async function startNats(): Promise<Started & { url: string }> {
  const binary = natsServerBinary();
  if (!binary) throw new Error('nats-server not found: install it (apt-get install nats-server) or set NATS_SERVER; or leave nats out of --only.');
  const port = await freePort();
  const child = spawn(binary, ['-a', '127.0.0.1', '-p', String(port)], { stdio: ['ignore', 'ignore', 'pipe'] });
  await new Promise<void>((resolve, reject) => {
    let log = '';
    const fail = (error: Error) => {
      clearTimeout(timer);
      child.kill('SIGKILL');
      reject(error);
    };
    const timer = setTimeout(() => fail(new Error(`nats-server on port ${port} was not ready within 15 s:\n${log}`)), 15_000);
    const onExit = (code: number | null) => fail(new Error(`nats-server exited with code ${code}:\n${log}`));
    const onData = (chunk: Buffer) => {
      log += chunk.toString();
      if (!log.includes('Server is ready')) return;
      clearTimeout(timer);
      child.off('exit', onExit);
      child.stderr?.off('data', onData);
      child.stderr?.resume(); // keep draining the server's log
      resolve();
    };
    child.once('exit', onExit);
    child.once('error', (error) => fail(new Error(`nats-server (${binary}) did not start: ${error.message}`)));
    child.stderr?.on('data', onData);
  });
  return { pid: child.pid as number, url: `nats://127.0.0.1:${port}`, stop: () => terminate(child) };
}

/**
 * Starts one `npm run network` process per gate range (e.g. `['0-0', '1-2']`) for `network` on
 * the server at `url`, with DC-ASGD at a constant learning rate `lr` and momentum `momentum`,
 * each using `threads` threads (`--threads`);
 * resolves once every process has wired its gates. On failure the processes started are stopped.
 * @throws Error with the app's output when a process exits or is not wired within 60 s.
 */
export async function startHosts(url: string, network: string, ranges: string[], backend: string, lr: number, momentum: number, threads = 1): Promise<Started[]> {
  const apps: App[] = ranges.map((range) =>
    startApp(ROOT, 'network.ts', ['--name', network, '--model', 'mlp', '--gates', range, '--nats', url, '--backend', backend, '--lr', String(lr), '--momentum', String(momentum), '--threads', String(threads)]),
  );
  const started = apps.map((app) => ({ pid: app.child.pid as number, stop: () => terminate(app.child) }));
  let timer: NodeJS.Timeout | undefined;
  try {
    const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`network processes not wired within 60 s:\n${apps.flatMap((a) => a.lines).join('\n')}`)), 60_000)));
    const hosting = await Promise.race([Promise.all(apps.map((app) => app.waitFor(/hosting gates .*\(mlp, (DC-ASGD [^)]*)\)/))), timeout]);
    const expected = `DC-ASGD lr ${lr}, momentum ${momentum}`;
    const wrong = hosting.find((m) => m[1] !== expected);
    if (wrong) throw new Error(`a network process runs '${wrong[1]}', expected '${expected}'.`);
    await Promise.race([Promise.all(apps.map((app) => app.waitFor(/gates \d+-\d+ wired/))), timeout]);
    return started;
  } catch (error) {
    await Promise.all(started.map((s) => s.stop()));
    throw error;
  } finally {
    clearTimeout(timer);
  }
}

/** CPU seconds (user + system) used so far by the processes `pids` (0 for one that is gone). */
export function processCpuSeconds(pids: number[]): number {
  return pids.reduce((sum, pid) => sum + statCpuSeconds(`/proc/${pid}/stat`), 0);
}
