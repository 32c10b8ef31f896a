/**
 * Handler traces: when and for how long each actor handled each message, per thread, so that a
 * placement can be read as a pipeline. Where a thread waits between handlers, it either has no
 * message to work on (a bubble: its peers have not produced one yet) or it spends the time
 * outside the actors (decoding frames, the event loop). `npm run trace -- DIR` summarises a
 * trace directory with {@link summarizeTrace}.
 *
 * Turn it on for every actor system of a run, worker threads and child processes included, with
 * the environment variable `AKKORDEON_TRACE=DIR` (each thread appends to
 * `DIR/trace-<pid>-<thread>.tsv`), or give one system a {@link HandlerTracer} in
 * `ActorSystemOptions.trace`.
 */
import fs from 'node:fs';
import path from 'node:path';
import { threadId } from 'node:worker_threads';
import { InvalidArgumentError } from '../errors.js';

/**
 * Receives one handled message: the actor's name, the message type, and when its handler started
 * and ended, in ms since the Unix epoch with sub-ms precision (`performance.timeOrigin +
 * performance.now()`). An asynchronous handler ends when its promise settles.
 */
export type HandlerTracer = (actor: string, type: string, start: number, end: number) => void;

/** One line of a trace file: a handled message on a thread (`<pid>-<threadId>`). */
export interface HandlerRecord {
  thread: string;
  actor: string;
  type: string;
  /** ms since the Unix epoch. */
  start: number;
  /** ms since the Unix epoch. */
  end: number;
}

/** The environment variable that turns tracing on for every actor system: a directory. */
export const TRACE_ENV = 'AKKORDEON_TRACE';

/** The current time in ms since the Unix epoch, with sub-ms precision. */
export const traceNow = (): number => performance.timeOrigin + performance.now();

/** A tracer that appends to one file, and how to write out what it holds. */
export interface FileTracer {
  readonly file: string;
  readonly record: HandlerTracer;
  /** Appends the records held so far (synchronously). */
  flush(): void;
}

const FLUSH_MS = 1000;
const tracers = new Map<string, FileTracer>();

/**
 * The tracer of this thread for `dir` (one per thread and directory, shared by the thread's actor
 * systems): records go to `dir/trace-<pid>-<threadId>.tsv` as tab-separated lines
 * `actor, type, start, end`, appended every second and when the thread exits. Records of the
 * last second are lost when a thread is killed (a worker terminated, a process sent SIGKILL).
 * @throws InvalidArgumentError when `dir` cannot be created.
 */
export function fileTracer(dir: string): FileTracer {
  const existing = tracers.get(dir);
  if (existing) return existing;
  try {
    fs.mkdirSync(dir, { recursive: true });
  } catch (error) {
    throw new InvalidArgumentError(`Cannot create the trace directory ${dir} (${(error as Error).message}); give a writable directory in ${TRACE_ENV}.`);
  }
  const file = path.join(dir, `trace-${process.pid}-${threadId}.tsv`);
  let lines: string[] = [];
  const flush = () => {
    if (lines.length === 0) return;
    const text = `${lines.join('\n')}\n`;
    lines = [];
    try {
      fs.appendFileSync(file, text);
    } catch {
      // A trace is a diagnostic: a full disk must not stop training.
    }
  };
  const timer = setInterval(flush, FLUSH_MS);
  timer.unref();
  process.once('exit', flush);
  const tracer: FileTracer = {
    file,
    flush,
    record: (actor, type, start, end) => void lines.push(`${actor}\t${type}\t${start.toFixed(3)}\t${end.toFixed(3)}`),
  };
  tracers.set(dir, tracer);
  return tracer;
}

/** This thread's tracer when `env[AKKORDEON_TRACE]` names a directory, else undefined. */
export function tracerFromEnv(env: NodeJS.ProcessEnv = process.env): HandlerTracer | undefined {
  const dir = env[TRACE_ENV];
  return dir ? fileTracer(dir).record : undefined;
}

/**
 * Reads every `trace-*.tsv` file of `dir`.
 * @throws InvalidArgumentError when `dir` cannot be read or holds no trace file.
 */
export function readTrace(dir: string): HandlerRecord[] {
  let files: string[];
  try {
    files = fs.readdirSync(dir).filter((f) => /^trace-.*\.tsv$/.test(f));
  } catch (error) {
    throw new InvalidArgumentError(`Cannot read the trace directory ${dir}: ${(error as Error).message}`);
  }
  if (files.length === 0) throw new InvalidArgumentError(`${dir} holds no trace-*.tsv file; run with ${TRACE_ENV}=${dir} first.`);
  const records: HandlerRecord[] = [];
  for (const f of files.sort()) {
    const thread = f.slice('trace-'.length, -'.tsv'.length);
    for (const line of fs.readFileSync(path.join(dir, f), 'utf8').split('\n')) {
      const [actor, type, start, end] = line.split('\t');
      if (actor === undefined || type === undefined || start === undefined || end === undefined) continue;
      const s = Number(start);
      const e = Number(end);
      if (Number.isFinite(s) && Number.isFinite(e) && e >= s) records.push({ thread, actor, type, start: s, end: e });
    }
  }
  return records;
}

/** Time one thread spent in each kind of handler, or between two kinds. */
export interface TraceRow {
  /** `actor message-type`, or for a gap `previous → next`. */
  key: string;
  count: number;
  /** ms. */
  totalMs: number;
  meanMs: number;
  /** Median and 90th percentile, ms. */
  p50Ms: number;
  p90Ms: number;
}

/** What one thread did over a window of a trace. */
export interface ThreadSummary {
  thread: string;
  /** From the thread's first handler start to its last handler end in the window, ms. */
  spanMs: number;
  /** Time in handlers, ms (asynchronous handlers count until they settle). */
  busyMs: number;
  /** Time between handlers, ms: waiting for messages, or work outside the actors. */
  betweenMs: number;
  /** busyMs / spanMs, in [0, 1]. */
  busyShare: number;
  /** By actor and message type, most time first. */
  handlers: TraceRow[];
  /** The time between two handlers, by the pair of handlers around it, most time first. */
  gaps: TraceRow[];
}

const row = (key: string, values: number[]): TraceRow => {
  const sorted = [...values].sort((a, b) => a - b);
  const total = sorted.reduce((s, v) => s + v, 0);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number;
  return { key, count: sorted.length, totalMs: total, meanMs: total / sorted.length, p50Ms: at(0.5), p90Ms: at(0.9) };
};

/**
 * Summarises a trace per thread over the records that start at or after `fromMs` and end at or
 * before `toMs` (ms since the Unix epoch; default all).
 */
export function summarizeTrace(records: HandlerRecord[], window: { fromMs?: number; toMs?: number } = {}): ThreadSummary[] {
  const from = window.fromMs ?? -Infinity;
  const to = window.toMs ?? Infinity;
  const byThread = new Map<string, HandlerRecord[]>();
  for (const r of records) {
    if (r.start < from || r.end > to) continue;
    let list = byThread.get(r.thread);
    if (!list) byThread.set(r.thread, (list = []));
    list.push(r);
  }
  return [...byThread].map(([thread, list]) => {
    list.sort((a, b) => a.start - b.start);
    const handlers = new Map<string, number[]>();
    const gaps = new Map<string, number[]>();
    const add = (m: Map<string, number[]>, key: string, value: number) => {
      const values = m.get(key);
      if (values) values.push(value);
      else m.set(key, [value]);
    };
    let busy = 0;
    let reached = -Infinity; // the latest end so far: overlapping (asynchronous) handlers count once
    let previous: HandlerRecord | undefined;
    for (const r of list) {
      const key = `${r.actor} ${r.type}`;
      add(handlers, key, r.end - r.start);
      busy += Math.max(0, r.end - Math.max(r.start, reached));
      if (previous && r.start > reached) {
        add(gaps, `${previous.actor} ${previous.type} → ${key}`, r.start - reached);
      }
      if (r.end >= reached) previous = r;
      reached = Math.max(reached, r.end);
    }
    const first = list[0] as HandlerRecord;
    const span = reached - first.start;
    const rows = (m: Map<string, number[]>) => [...m].map(([k, v]) => row(k, v)).sort((a, b) => b.totalMs - a.totalMs);
    return { thread, spanMs: span, busyMs: busy, betweenMs: span - busy, busyShare: span > 0 ? busy / span : 1, handlers: rows(handlers), gaps: rows(gaps) };
  });
}

/** The summaries as text, `top` rows of handlers and of gaps per thread. */
export function formatTraceSummary(summaries: ThreadSummary[], top = 8): string {
  const ms = (v: number) => v.toFixed(3);
  const out: string[] = [];
  for (const s of summaries) {
    out.push(`thread ${s.thread}: span ${s.spanMs.toFixed(0)} ms, in handlers ${s.busyMs.toFixed(0)} ms (${(100 * s.busyShare).toFixed(1)}%), between handlers ${s.betweenMs.toFixed(0)} ms`);
    out.push('  handler                                    count   mean ms    p50 ms    p90 ms   total ms');
    for (const r of s.handlers.slice(0, top)) out.push(`  ${r.key.padEnd(40)} ${String(r.count).padStart(7)} ${ms(r.meanMs).padStart(9)} ${ms(r.p50Ms).padStart(9)} ${ms(r.p90Ms).padStart(9)} ${r.totalMs.toFixed(0).padStart(10)}`);
    if (s.gaps.length > 0) out.push('  between handlers (previous → next)');
    for (const r of s.gaps.slice(0, top)) out.push(`  ${r.key.padEnd(70)} ${String(r.count).padStart(6)} × ${ms(r.meanMs)} ms = ${r.totalMs.toFixed(0)} ms`);
  }
  return out.join('\n');
}
