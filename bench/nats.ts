/**
 * Competitor 5: akkordeon with the gates in separate processes over NATS on loopback. A real
 * `nats-server` on a free port; the `npm run network` app hosts the MNIST MLP in child
 * processes (DC-ASGD, learning rate 0.02, momentum 0.9, no decay, as the other rows); the
 * training and test sentinels run in this process and attach with `attachRemote`. Two splits
 * are probed briefly (all gates in one process with `--threads 2`, which places them as
 * `'auto'` does: gate 0 in a worker thread that the process serves on NATS; gate 0 in one
 * process and gates 1-2 in another) and the faster is
 * measured over the whole epoch on fresh processes (later rounds of the bench reuse the first
 * round's pick). Only the epoch is timed, not the
 * start-up or the discovery; CPU time counts this process, the network processes and the server.
 */
import * as tf from '@tensorflow/tfjs';
import { ActorSystem } from '../src/actor/index.js';
import { attachRemote } from '../src/cluster/index.js';
import { protocolValidator } from '../src/protocol/schema.js';
import type { Sentinel } from '../src/sentinel/index.js';
import { connectNats, type NatsNode } from '../src/transport/index.js';
import { accuracyOf, type BenchData, type BenchResult, type Competitor, OPTIMIZER, samplesOf, stopwatch, testSentinel, trainProvider, trainSentinel } from './common.js';
import { processCpuSeconds, type Started, startHosts, startNats } from './processes.js';

/** The splits of the 3 gates over network processes that are probed. */
const SPLITS = [
  { label: 'one process, 2 threads (placement auto)', ranges: ['0-2'], threads: 2 },
  { label: 'two processes (gate 0 | gates 1-2)', ranges: ['0-0', '1-2'], threads: 1 },
];
/** Batches of the probe that picks the faster split (after the warm-up). */
const PROBE_BATCHES = 80;
/** The split the first round's probe picked, and its probe figures; later rounds reuse it. */
let picked: { index: number; rates: number[] } | undefined;

/** A network hosted by child processes, and this process's NATS node attached to it. */
interface Session {
  nats: NatsNode;
  pids: number[];
  close(): Promise<void>;
}

async function openSession(url: string, network: string, split: (typeof SPLITS)[number], backend: string): Promise<Session> {
  const { learningRate, momentum } = OPTIMIZER as { learningRate: number; momentum: number };
  const hosts: Started[] = await startHosts(url, network, split.ranges, backend, learningRate, momentum, split.threads);
  const system = new ActorSystem({ name: 'bench', validate: protocolValidator() });
  const nats = await connectNats(system, { servers: url, namespace: network, name: 'bench sentinel' }).catch(async (error: unknown) => {
    await Promise.all(hosts.map((h) => h.stop()));
    throw error;
  });
  return {
    nats,
    pids: hosts.map((h) => h.pid),
    close: async () => {
      await nats.close();
      system.shutdown();
      await Promise.all(hosts.map((h) => h.stop()));
    },
  };
}

/**
 * Runs `sentinel` on the session's network; wall and CPU time from attach (after discovery) to
 * done, and that CPU time by process (`/proc`; zeros elsewhere but this process).
 */
async function run(session: Session, sentinel: Sentinel, serverPid: number) {
  const attachment = await attachRemote(session.nats, sentinel, { discovery: { timeoutMs: 30_000 } });
  const [elapsed, network, server] = [stopwatch(), processCpuSeconds(session.pids), processCpuSeconds([serverPid])];
  const summary = await attachment.done;
  const { seconds, cpuSeconds: own } = elapsed();
  await attachment.detach();
  const split = { own, network: processCpuSeconds(session.pids) - network, server: processCpuSeconds([serverPid]) - server };
  const cpuSplit = `CPU by process: this one (the sentinel) ${split.own.toFixed(2)} s · network processes ${split.network.toFixed(2)} s · nats-server ${split.server.toFixed(2)} s`;
  return { summary, seconds, cpuSeconds: split.own + split.network + split.server, cpuSplit };
}

/** Samples/s of `batches` training batches on the split, after the warm-up. */
async function probe(data: BenchData, url: string, serverPid: number, network: string, split: (typeof SPLITS)[number], backend: string): Promise<number> {
  const session = await openSession(url, network, split, backend);
  try {
    if (data.warmupBatches > 0) await run(session, trainSentinel(trainProvider(data, data.warmupBatches * data.batchSize), data.batchSize), serverPid);
    const { summary, seconds } = await run(session, trainSentinel(trainProvider(data, PROBE_BATCHES * data.batchSize), data.batchSize), serverPid);
    return samplesOf(summary) / seconds;
  } finally {
    await session.close();
  }
}

/** akkordeon: gates in `npm run network` processes, sentinels here, all over a loopback nats-server. */
export const natsCompetitor: Competitor = {
  name: 'gates in processes over NATS',
  key: 'nats',
  async train(data: BenchData, epochs: number): Promise<BenchResult> {
    const before = tf.memory().numTensors;
    const backend = tf.getBackend();
    const server = await startNats();
    let figures: Omit<BenchResult, 'leakedTensors'>;
    try {
      if (!picked) {
        const rates: number[] = [];
        for (const [i, split] of SPLITS.entries()) rates.push(await probe(data, server.url, server.pid, `bench-${process.pid}-probe${i}`, split, backend));
        picked = { index: rates.indexOf(Math.max(...rates)), rates };
      }
      const { rates } = picked;
      const split = SPLITS[picked.index] as (typeof SPLITS)[number];

      const session = await openSession(server.url, `bench-${process.pid}`, split, backend);
      try {
        if (data.warmupBatches > 0) await run(session, trainSentinel(trainProvider(data, data.warmupBatches * data.batchSize), data.batchSize), server.pid);
        const { summary, seconds, cpuSeconds, cpuSplit } = await run(session, trainSentinel(trainProvider(data), data.batchSize, epochs), server.pid);
        const samples = samplesOf(summary);
        const tested = await run(session, testSentinel(data), server.pid);
        const probes = SPLITS.map((s, i) => `${s.label} ${Math.round(rates[i] as number)}/s`).join(', ');
        const note = `split: ${split.label}, the faster in a ${PROBE_BATCHES}-batch probe (${probes}); CPU counts this process, the network processes and nats-server`;
        figures = { samplesPerSecond: samples / seconds, testAccuracy: accuracyOf(tested.summary), samples, seconds, cpuSeconds, cpuSplit, note };
      } finally {
        await session.close();
      }
    } finally {
      await server.stop();
    }
    return { ...figures, leakedTensors: tf.memory().numTensors - before };
  },
};
