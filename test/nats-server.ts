/**
 * Test helper: runs a real `nats-server` (Debian package `nats-server`) on a free loopback port
 * with a temporary config file, and stops or restarts it on the same port.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

/** Options of {@link startNatsServer}. */
export interface NatsServerOptions {
  /** Require this token. */
  token?: string;
  /** Require this user and password. */
  user?: string;
  pass?: string;
  /** Server `max_payload` in bytes (default the server's, 1 MiB). */
  maxPayload?: number;
  /** Port; default a free one. */
  port?: number;
  /** The whole configuration file instead of the options above (its `listen` must use `port`). */
  configText?: string;
  /** Require TLS with this server certificate and key (PEM files). */
  tls?: { certFile: string; keyFile: string };
}

/** A running test server. */
export interface NatsServer {
  readonly port: number;
  readonly url: string;
  /** Stops the server (SIGTERM) and waits for it to exit. */
  stop(): Promise<void>;
  /** Starts it again on the same port with the same config. */
  start(): Promise<void>;
  /** Stops it and removes its config. */
  dispose(): Promise<void>;
}

/** The nats-server binary: `NATS_SERVER` or the one on PATH (or /usr/sbin, where Debian puts it). */
export function natsServerBinary(): string | undefined {
  if (process.env.NATS_SERVER) return process.env.NATS_SERVER;
  for (const candidate of ['nats-server', '/usr/sbin/nats-server', '/usr/bin/nats-server']) {
    if (spawnSync(candidate, ['--version']).status === 0) return candidate;
  }
  return undefined;
}

/**
 * Writes a throw-away CA and a server certificate for 127.0.0.1 signed by it into `dir` with
 * openssl; undefined when openssl is missing.
 */
export function makeCertificates(dir: string): { caFile: string; certFile: string; keyFile: string } | undefined {
  const file = (name: string) => path.join(dir, name);
  const run = (args: string[]) => spawnSync('openssl', args, { cwd: dir }).status === 0;
  writeFileSync(file('san.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  const ok =
    run(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=akkordeon test CA', '-keyout', 'ca.key', '-out', 'ca.pem']) &&
    run(['req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=127.0.0.1', '-keyout', 'server.key', '-out', 'server.csr']) &&
    run(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '1', '-extfile', 'san.ext', '-out', 'server.pem']);
  return ok ? { caFile: file('ca.pem'), certFile: file('server.pem'), keyFile: file('server.key') } : undefined;
}

/** A TCP port free on 127.0.0.1 at the time of the call. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/**
 * Starts nats-server and resolves once it logs that it is ready.
 * @throws Error when the binary is missing or the server exits or stays silent for 15 s.
 */
export async function startNatsServer(options: NatsServerOptions = {}): Promise<NatsServer> {
  const binary = natsServerBinary();
  if (!binary) throw new Error('nats-server not found: install it (apt-get install nats-server) or set NATS_SERVER.');
  const port = options.port ?? (await freePort());
  const dir = mkdtempSync(path.join(os.tmpdir(), 'akk-nats-'));
  const config = path.join(dir, 'nats.conf');
  const lines = [`listen: 127.0.0.1:${port}`];
  if (options.maxPayload) lines.push(`max_payload: ${options.maxPayload}`);
  if (options.token) lines.push(`authorization { token: ${JSON.stringify(options.token)} }`);
  if (options.tls) lines.push(`tls { cert_file: ${JSON.stringify(options.tls.certFile)}, key_file: ${JSON.stringify(options.tls.keyFile)} }`);
  if (options.user) lines.push(`authorization { users: [ { user: ${JSON.stringify(options.user)}, password: ${JSON.stringify(options.pass ?? '')} } ] }`);
  writeFileSync(config, options.configText ?? `${lines.join('\n')}\n`);
  let child: ChildProcess | undefined;

  const start = async (): Promise<void> => {
    const proc = spawn(binary, ['-c', config], { stdio: ['ignore', 'ignore', 'pipe'] });
    child = proc;
    await new Promise<void>((resolve, reject) => {
      let log = '';
      const timer = setTimeout(() => fail(new Error(`nats-server on port ${port} did not become ready in 15 s:\n${log}`)), 15_000);
      const fail = (error: Error) => {
        clearTimeout(timer);
        proc.kill('SIGKILL');
        reject(error);
      };
      proc.stderr?.on('data', (data: Buffer) => {
        log += data.toString();
        if (log.includes('Server is ready')) {
          clearTimeout(timer);
          resolve();
        }
      });
      proc.once('exit', (code) => fail(new Error(`nats-server exited with code ${code}:\n${log}`)));
    });
  };

  const stop = async (): Promise<void> => {
    const proc = child;
    child = undefined;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      proc.once('exit', () => resolve());
      proc.kill('SIGTERM');
    });
  };

  await start();
  return {
    port,
    url: `nats://127.0.0.1:${port}`,
    stop,
    start,
    dispose: async () => {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A program started with tsx, its output collected line by line. */
export interface App {
  readonly child: ChildProcess;
  /** Every line printed so far (stdout and stderr). */
  readonly lines: string[];
  /** Resolves with the first line (already printed or to come) that matches; rejects if the program exits first. */
  waitFor(pattern: RegExp): Promise<RegExpMatchArray>;
  /** Resolves with the exit code (or signal name) once the program has exited. */
  readonly exited: Promise<number | string>;
  /** Sends a signal and waits for the exit. */
  stop(signal?: NodeJS.Signals): Promise<number | string>;
}

/**
 * Starts `examples/<script>` in one Node process with tsx as its loader (so that a signal reaches
 * the program itself, not a wrapper) and `args`; `env` adds to the environment.
 */
export function startApp(root: string, script: string, args: string[], env: Record<string, string> = {}): App {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'examples', script), ...args], {
    cwd: root,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  const watchers: { pattern: RegExp; resolve: (m: RegExpMatchArray) => void; reject: (e: Error) => void }[] = [];
  let exitInfo: number | string | undefined;
  const exited = new Promise<number | string>((resolve) =>
    child.once('exit', (code, signal) => {
      exitInfo = code ?? signal ?? -1;
      watchers.splice(0).forEach((w) => w.reject(new Error(`${script} exited (${exitInfo}) before printing ${w.pattern}:\n${lines.join('\n')}`)));
      resolve(exitInfo);
    }),
  );
  const onData = (stream: NodeJS.ReadableStream) => {
    let rest = '';
    stream.on('data', (data: Buffer) => {
      const parts = (rest + data.toString()).split('\n');
      rest = parts.pop() ?? '';
      for (const line of parts) {
        lines.push(line);
        for (const w of [...watchers]) {
          const m = line.match(w.pattern);
          if (m) {
            watchers.splice(watchers.indexOf(w), 1);
            w.resolve(m);
          }
        }
      }
    });
  };
  onData(child.stdout as NodeJS.ReadableStream);
  onData(child.stderr as NodeJS.ReadableStream);
  return {
    child,
    lines,
    exited,
    waitFor: (pattern) => {
      for (const line of lines) {
        const m = line.match(pattern);
        if (m) return Promise.resolve(m);
      }
      if (exitInfo !== undefined) return Promise.reject(new Error(`${script} exited (${exitInfo}) before printing ${pattern}:\n${lines.join('\n')}`));
      return new Promise((resolve, reject) => watchers.push({ pattern, resolve, reject }));
    },
    stop: async (signal = 'SIGTERM') => {
      if (exitInfo === undefined) child.kill(signal);
      return exited;
    },
  };
}
