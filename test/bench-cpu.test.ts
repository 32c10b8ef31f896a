/** The benchmark's per-thread CPU split: read from /proc on Linux, printed main first, then the others busiest first. */
import { describeThreadCpu, threadCpuSeconds } from '../bench/common.js';

const linux = process.platform === 'linux';

(linux ? test : test.skip)('threadCpuSeconds reads this process’s threads, the main thread under the process id', () => {
  const before = threadCpuSeconds();
  const start = process.cpuUsage();
  // Work on this thread until /proc counts a tick for it (10 ms each); process.cpuUsage counts
  // every thread of the process, so a fixed amount of it may land on V8's helper threads.
  // Bounded at 2 s of CPU, after which the assertion below fails.
  let after = threadCpuSeconds();
  while ((after.get(process.pid) ?? 0) === (before.get(process.pid) ?? 0) && process.cpuUsage(start).user < 2_000_000) {
    const until = process.cpuUsage(start).user + 5_000;
    while (process.cpuUsage(start).user < until);
    after = threadCpuSeconds();
  }
  expect(after.has(process.pid)).toBe(true);
  expect((after.get(process.pid) ?? 0) - (before.get(process.pid) ?? 0)).toBeGreaterThan(0);
});

test('describeThreadCpu puts the main thread first, then the others busiest first, without the idle ones', () => {
  const main = process.pid;
  const before = new Map([[main, 1], [11, 0.5], [12, 0], [13, 2]]);
  const after = new Map([[main, 2.31], [11, 0.6], [12, 1.29], [13, 2.004], [14, 0.05]]);
  expect(describeThreadCpu(before, after)).toBe('CPU by thread: main 1.31 s · others 1.29, 0.10, 0.05 s');
  expect(describeThreadCpu(new Map(), new Map())).toBeUndefined();
  expect(describeThreadCpu(new Map([[main, 1]]), new Map([[main, 1.5]]))).toBe('CPU by thread: main 0.50 s · others 0 s');
});
