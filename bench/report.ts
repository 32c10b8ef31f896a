/**
 * The benchmark's output: the side-by-side table, the target checks of issue 2 (akkordeon in
 * one thread) and issue 3 (worker threads, NATS), and the JSON record written by `--json`.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { BenchResult } from './common.js';

/** One competitor's row: its median round, and every round in run order (undefined: it failed). */
export interface Row {
  key: string;
  name: string;
  result: BenchResult;
  rounds?: (BenchResult | undefined)[];
}

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
};

/**
 * The row of a competitor from its rounds: `result` is the round of median throughput (the
 * lower middle one for an even count); undefined when every round failed.
 */
export function medianRow(key: string, name: string, rounds: (BenchResult | undefined)[]): Row | undefined {
  const done = rounds.filter((r): r is BenchResult => r !== undefined).sort((a, b) => a.samplesPerSecond - b.samplesPerSecond);
  const result = done[(done.length - 1) >> 1];
  return result && { key, name, result, rounds };
}

/** A target: the throughput of row `key` at least `factor` times that of row `versus`. */
export interface Check {
  label: string;
  key: string;
  versus: string;
  factor: number;
  /** key / versus in wall-clock samples/s, or undefined when one of them did not run. */
  ratio?: number;
  /** The same ratio in samples per CPU second (robust against other load on the machine). */
  cpuRatio?: number;
  /** PASS, FAIL, or SKIP when one of them did not run. */
  verdict: 'PASS' | 'FAIL' | 'SKIP';
}

/** Training samples per CPU second of a result. */
export const samplesPerCpuSecond = (r: BenchResult): number => r.samples / Math.max(r.cpuSeconds, 1e-9);

/**
 * Throughput ratio of `key` to `versus` (wall-clock samples/s, or per CPU second with `cpu`),
 * or undefined when either is missing: the median of the per-round ratios over the rounds both
 * completed (rounds run interleaved, so each pair shares the machine's state), else the ratio
 * of the two rows' results.
 */
export function ratio(rows: Row[], key: string, versus: string, cpu = false): number | undefined {
  const [a, b] = [rows.find((row) => row.key === key), rows.find((row) => row.key === versus)];
  if (!a || !b) return undefined;
  const rate = (r: BenchResult) => (cpu ? samplesPerCpuSecond(r) : r.samplesPerSecond);
  const paired = (a.rounds ?? []).flatMap((ra, i) => {
    const rb = b.rounds?.[i];
    return ra && rb ? [rate(ra) / rate(rb)] : [];
  });
  return paired.length > 0 ? median(paired) : rate(a.result) / rate(b.result);
}

/**
 * The targets: akkordeon in one thread ≥ 5× model.fit and ≥ 0.7× the hand-written loop
 * (issue 2); worker threads ≥ 1.6× one thread, NATS ≥ 0.85× worker threads (issue 3).
 */
export function checks(rows: Row[]): Check[] {
  const targets = [
    { label: 'issue 2: akkordeon (1 thread) >= 5x model.fit', key: 'akkordeon', versus: 'fit', factor: 5 },
    { label: 'issue 2: akkordeon (1 thread) >= 0.7x hand-written', key: 'akkordeon', versus: 'hand', factor: 0.7 },
    { label: 'issue 3: worker threads >= 1.6x akkordeon (1 thread)', key: 'workers', versus: 'akkordeon', factor: 1.6 },
    { label: 'issue 3: NATS >= 0.85x worker threads', key: 'nats', versus: 'workers', factor: 0.85 },
  ];
  return targets.map((t) => {
    const r = ratio(rows, t.key, t.versus);
    return { ...t, ratio: r, cpuRatio: ratio(rows, t.key, t.versus, true), verdict: r === undefined ? 'SKIP' : r >= t.factor ? 'PASS' : 'FAIL' };
  });
}

const fmtRatio = (r: number | undefined): string => (r === undefined ? '-' : `${r.toFixed(2)}x`);

/** The table: one line per competitor with samples/s, its ratios to model.fit, the hand-written loop and the one-thread row, and test accuracy. */
export function formatTable(rows: Row[]): string {
  const header = ['competitor', 'samples/s', 'vs model.fit', 'vs hand-written', 'vs 1 thread', 'test accuracy', 'epoch time', 'samples/CPU-s'];
  const lines = rows.map((r) => [
    r.name,
    Math.round(r.result.samplesPerSecond).toLocaleString('en-US'),
    fmtRatio(ratio(rows, r.key, 'fit')),
    fmtRatio(ratio(rows, r.key, 'hand')),
    fmtRatio(ratio(rows, r.key, 'akkordeon')),
    `${(r.result.testAccuracy * 100).toFixed(2)}%`,
    `${r.result.seconds.toFixed(1)} s`,
    Math.round(samplesPerCpuSecond(r.result)).toLocaleString('en-US'),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => (l[i] as string).length)));
  const render = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i] as number) : c.padStart(widths[i] as number))).join('   ');
  return [render(header), widths.map((w) => '-'.repeat(w)).join('   '), ...lines.map(render)].join('\n');
}

/** The check lines, e.g. `PASS  issue 2: akkordeon (1 thread) >= 5x model.fit  (measured 9.25x; per CPU second 9.23x)`. */
export function formatChecks(list: Check[]): string {
  return list
    .map((c) => `${c.verdict.padEnd(4)}  ${c.label}  (${c.ratio === undefined ? `needs --only to include ${c.key} and ${c.versus}` : `measured ${c.ratio.toFixed(2)}x; per CPU second ${(c.cpuRatio ?? NaN).toFixed(2)}x`})`)
    .join('\n');
}

/**
 * How much of the machine's parallel speed-up the worker row gets: the ceiling row's ratio to
 * the one-thread row (independent copies, nothing shared: the most any placement can reach), the
 * worker row's, and the share of the first that the second is, e.g.
 * `2-core ceiling: 2 one-thread trainings at once reach 1.70x one alone; worker threads reach 1.41x, 83% of it`.
 * Undefined unless the ceiling, workers and akkordeon rows all ran.
 */
export function ceilingLine(rows: Row[]): string | undefined {
  const ceiling = ratio(rows, 'ceiling', 'akkordeon');
  const workers = ratio(rows, 'workers', 'akkordeon');
  const name = rows.find((r) => r.key === 'ceiling')?.name;
  if (ceiling === undefined || workers === undefined || name === undefined) return undefined;
  return `INFO  2-core ceiling: ${name} reach ${ceiling.toFixed(2)}x one alone; worker threads reach ${workers.toFixed(2)}x, ${Math.round((100 * workers) / ceiling)}% of it`;
}

/** Writes the run's figures as JSON to `file`, creating its directory. */
export async function writeJson(file: string, meta: Record<string, unknown>, rows: Row[]): Promise<void> {
  const record = {
    ...meta,
    competitors: rows.map((r) => ({
      key: r.key,
      name: r.name,
      ...r.result,
      roundsSamplesPerSecond: (r.rounds ?? [r.result]).map((x) => x?.samplesPerSecond ?? null),
      ratioVsFit: ratio(rows, r.key, 'fit') ?? null,
      ratioVsHandwritten: ratio(rows, r.key, 'hand') ?? null,
      ratioVsOneThread: ratio(rows, r.key, 'akkordeon') ?? null,
      samplesPerCpuSecond: samplesPerCpuSecond(r.result),
    })),
    checks: checks(rows).map((c) => ({ ...c, ratio: c.ratio ?? null, cpuRatio: c.cpuRatio ?? null })),
    ceiling: ceilingLine(rows) ?? null,
  };
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, `${JSON.stringify(record, null, 2)}\n`);
}
