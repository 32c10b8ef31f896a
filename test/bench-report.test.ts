/** The benchmark's summary lines: target checks from paired rounds, and the worker row read against the 2-core ceiling. */
import type { BenchResult } from '../bench/common.js';
import { ceilingLine, checks, type Row } from '../bench/report.js';

const result = (samplesPerSecond: number): BenchResult => ({ samplesPerSecond, testAccuracy: 0.95, samples: 60_000, seconds: 60_000 / samplesPerSecond, cpuSeconds: 1, leakedTensors: 0 });
const row = (key: string, name: string, rates: number[]): Row => {
  const rounds = rates.map(result);
  return { key, name, result: [...rounds].sort((a, b) => a.samplesPerSecond - b.samplesPerSecond)[(rounds.length - 1) >> 1] as BenchResult, rounds };
};

test('the worker check pairs each round with the one-thread round it ran beside', () => {
  // Per round 1.5x, 1.5x, 2x: the median of the pairs is 1.5x, although the medians of the rows give 30000/20000.
  const rows = [row('akkordeon', 'akkordeon (1 thread)', [20_000, 10_000, 20_000]), row('workers', 'gates in worker threads', [30_000, 15_000, 40_000])];
  const workers = checks(rows).find((c) => c.key === 'workers');
  expect(workers?.ratio).toBeCloseTo(1.5);
  expect(workers?.verdict).toBe('FAIL');
});

test('the ceiling line gives both ratios to the one-thread row and the share of the ceiling reached', () => {
  const rows = [
    row('akkordeon', 'akkordeon (1 thread)', [20_000, 20_000, 20_000]),
    row('workers', 'gates in worker threads', [28_000, 28_000, 28_000]),
    row('ceiling', '2 one-thread trainings at once', [34_000, 34_000, 34_000]),
  ];
  expect(ceilingLine(rows)).toBe('INFO  2-core ceiling: 2 one-thread trainings at once reach 1.70x one alone; worker threads reach 1.40x, 82% of it');
  expect(ceilingLine(rows.filter((r) => r.key !== 'ceiling'))).toBeUndefined();
  expect(ceilingLine(rows.filter((r) => r.key !== 'akkordeon'))).toBeUndefined();
});
