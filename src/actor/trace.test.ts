/**
 * Handler traces: an actor system reports every handled message (an asynchronous one when it
 * settles), `AKKORDEON_TRACE` turns it on and `trace: false` off, files round-trip, and the
 * per-thread summary counts busy time, overlaps and gaps exactly on hand-made records.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { threadId } from 'node:worker_threads';
import { InvalidArgumentError } from '../errors.js';
import { ActorSystem } from './system.js';
import { fileTracer, formatTraceSummary, type HandlerRecord, readTrace, summarizeTrace, TRACE_ENV } from './trace.js';

type Step = { type: 'step'; n: number } | { type: 'slow'; until: Promise<void> };

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'akk-trace-'));

describe('actor system trace', () => {
  test('reports each handled message with its actor, type and handler times; an async handler when it settles', async () => {
    const seen: { actor: string; type: string; start: number; end: number }[] = [];
    const system = new ActorSystem({ name: 'traced', trace: (actor, type, start, end) => seen.push({ actor, type, start, end }) });
    let handled = 0;
    let allHandled!: () => void;
    const done = new Promise<void>((resolve) => (allHandled = resolve));
    const ref = system.spawn<Step>(() => ({
      receive: (m) => {
        if (++handled === 3) allHandled();
        return m.type === 'slow' ? m.until : undefined;
      },
    }), { name: 'worker-actor' });
    let release!: () => void;
    const until = new Promise<void>((resolve) => (release = resolve));
    ref.tell({ type: 'step', n: 1 });
    ref.tell({ type: 'slow', until });
    ref.tell({ type: 'step', n: 2 });
    await new Promise<void>((resolve) => setImmediate(resolve));
    await new Promise<void>((resolve) => setImmediate(resolve));
    expect(seen.map((r) => r.type)).toEqual(['step']); // the slow handler has not settled; the next waits for it
    release();
    await done;
    await until;
    await new Promise<void>((resolve) => setImmediate(resolve));
    expect(seen.map((r) => `${r.actor} ${r.type}`)).toEqual(['worker-actor step', 'worker-actor slow', 'worker-actor step']);
    for (const r of seen) expect(r.end).toBeGreaterThanOrEqual(r.start);
    expect(seen[1]!.start).toBeGreaterThanOrEqual(seen[0]!.end);
    expect(seen[2]!.start).toBeGreaterThanOrEqual(seen[1]!.end);
    expect(Math.abs(seen[0]!.start - Date.now())).toBeLessThan(60_000); // ms since the Unix epoch
    system.shutdown();
  });

  test(`${TRACE_ENV} turns tracing on for new systems, and trace: false turns it off`, () => {
    const dir = tmp();
    const before = process.env[TRACE_ENV];
    process.env[TRACE_ENV] = dir;
    try {
      expect(new ActorSystem('on').trace).toBeDefined();
      expect(new ActorSystem({ name: 'off', trace: false }).trace).toBeUndefined();
    } finally {
      if (before === undefined) delete process.env[TRACE_ENV];
      else process.env[TRACE_ENV] = before;
    }
    expect(new ActorSystem('default').trace).toBeUndefined();
  });

  test('a file tracer appends tab-separated records that readTrace reads back, per thread', () => {
    const dir = tmp();
    const tracer = fileTracer(dir);
    expect(fileTracer(dir)).toBe(tracer); // one per thread and directory
    tracer.record('dense-512', 'gate.forward', 1000.25, 1002.5);
    tracer.record('dense-512', 'gate.backward', 1003, 1006.125);
    tracer.flush();
    tracer.record('logits', 'gate.forward', 1007, 1007.5);
    tracer.flush();
    expect(readTrace(dir)).toEqual([
      { thread: `${process.pid}-${threadId}`, actor: 'dense-512', type: 'gate.forward', start: 1000.25, end: 1002.5 },
      { thread: `${process.pid}-${threadId}`, actor: 'dense-512', type: 'gate.backward', start: 1003, end: 1006.125 },
      { thread: `${process.pid}-${threadId}`, actor: 'logits', type: 'gate.forward', start: 1007, end: 1007.5 },
    ]);
  });

  test('readTrace names the problem when there is no trace', () => {
    expect(() => readTrace(tmp())).toThrow(InvalidArgumentError);
    expect(() => readTrace(path.join(tmp(), 'missing'))).toThrow(/Cannot read the trace directory/);
  });
});

describe('summarizeTrace', () => {
  const r = (thread: string, actor: string, type: string, start: number, end: number): HandlerRecord => ({ thread, actor, type, start, end });

  test('busy time, the time between handlers and the gaps by the handlers around them', () => {
    const records = [r('A', 'a', 'x', 0, 2), r('A', 'b', 'y', 3, 5), r('A', 'a', 'x', 5, 6), r('A', 'b', 'y', 8.5, 9)];
    const [a] = summarizeTrace(records);
    expect(a).toMatchObject({ thread: 'A', spanMs: 9, busyMs: 5.5, betweenMs: 3.5 });
    expect(a!.busyShare).toBeCloseTo(5.5 / 9, 12);
    expect(a!.handlers.map((h) => [h.key, h.count, h.totalMs, h.meanMs])).toEqual([
      ['a x', 2, 3, 1.5],
      ['b y', 2, 2.5, 1.25],
    ]);
    expect(a!.gaps.map((g) => [g.key, g.count, g.totalMs])).toEqual([
      ['a x → b y', 2, 3.5],
    ]);
    expect(a!.gaps[0]).toMatchObject({ p50Ms: 2.5, p90Ms: 2.5, meanMs: 1.75 });
  });

  test('overlapping (asynchronous) handlers count once; the window drops records outside it; threads stay apart', () => {
    const records = [r('B', 'sentinel', 'start', 0, 4), r('B', 'gate', 'forward', 1, 2), r('B', 'gate', 'forward', 6, 7), r('C', 'gate', 'backward', 2, 3)];
    const [b, c] = summarizeTrace(records);
    expect(b).toMatchObject({ thread: 'B', spanMs: 7, busyMs: 5, betweenMs: 2 });
    expect(b!.gaps.map((g) => [g.key, g.totalMs])).toEqual([['sentinel start → gate forward', 2]]);
    expect(c).toMatchObject({ thread: 'C', spanMs: 1, busyMs: 1, betweenMs: 0, busyShare: 1 });
    const [windowed] = summarizeTrace(records, { fromMs: 0.5, toMs: 6.5 });
    expect(windowed).toMatchObject({ thread: 'B', spanMs: 1, busyMs: 1 });
  });

  test('formatTraceSummary shows each thread with its share of time in handlers', () => {
    const text = formatTraceSummary(summarizeTrace([r('D', 'a', 'x', 0, 3), r('D', 'a', 'x', 4, 5)]));
    expect(text).toContain('thread D: span 5 ms, in handlers 4 ms (80.0%), between handlers 1 ms');
    expect(text).toMatch(/a x +2 +2\.000/);
    expect(text).toContain('a x → a x');
  });
});
