/**
 * The host actor: every node (a worker thread, a child process, a network process) runs one at
 * the well-known id `'host'`. It builds gates from their configs on request, so that a network
 * can place its gates anywhere, and stops them again.
 */
import type { Actor, ActorContext, ActorRef } from '../actor/index.js';
import { type DataAccess, providerFromSpec } from '../data/index.js';
import { describeError, InvalidArgumentError, toErrorInfo } from '../errors.js';
import { gateFromConfig } from '../gate/index.js';
import type { GateMessage, HostMessage, HostReply, SentinelMessage, SentinelReport } from '../protocol/index.js';
import { modelFromSpec, runReplica } from '../ps/index.js';
import { sentinelFromSpec } from '../sentinel/index.js';

export type { HostMessage, HostReply, SentinelReport };

/** The id of the host actor on every node. */
export const HOST_ID = 'host';

/** Host actor logic; spawn with `system.spawn(() => new Host(backend), { id: HOST_ID })`. */
export class Host implements Actor<HostMessage> {
  private readonly gates = new Set<string>();
  private readonly sentinels = new Set<string>();
  /** Stops for the replicas running here. */
  private readonly replicas = new Map<string, AbortController>();

  /**
   * @param backend the tfjs backend of this node, reported by `host.ping`.
   * @param log where failures of the gates it supervises are reported (default `console.error`).
   * @param access which of this node's files and modules a spawned sentinel's data may name
   *   (default any: right for worker threads and child processes this user started; a host that
   *   serves other machines passes `{ roots: [...] }`).
   */
  constructor(
    private readonly backend: string,
    private readonly log: (line: string) => void = (line) => console.error(line),
    private readonly access: DataAccess = {},
  ) {}

  receive(message: HostMessage, context: ActorContext<HostMessage>): void {
    const { system } = context;
    switch (message.type) {
      case 'host.spawnGate': {
        try {
          const gate = gateFromConfig(message.config);
          const ref = system.spawn<GateMessage>(() => gate, { name: message.config.name, parent: context.self });
          this.gates.add(ref.id);
          message.replyTo.tell({ type: 'host.gateSpawned', gate: ref, inputShape: gate.module.inputShape, outputShape: gate.module.outputShape });
        } catch (error) {
          message.replyTo.tell({ type: 'host.failed', error: toErrorInfo(error) });
        }
        return;
      }
      case 'host.stopGate':
        if (this.gates.delete(message.gate.id)) system.stop(message.gate);
        message.replyTo?.tell({ type: 'host.gateStopped' });
        return;
      case 'host.spawnSentinel':
        void this.spawnSentinel(message, context);
        return;
      case 'host.spawnReplica':
        void this.spawnReplica(message, context);
        return;
      case 'host.ping':
        message.replyTo.tell({ type: 'host.pong', node: system.node, backend: this.backend, pid: process.pid });
        return;
      case 'actor.failed':
        // A gate's handler threw outside its own batch handling; the gate resumes (its policy).
        this.log(`[${system.name}@${system.node}] ${message.actor.name} failed on '${message.messageType}' (${message.policy}): ${describeError(message.error)}`);
        return;
    }
  }

  /**
   * Builds the sentinel a spec describes (loading its data), starts it on the given gates, and
   * forwards its events to the reporter. The sentinel stops once it is done.
   */
  private async spawnSentinel(message: Extract<HostMessage, { type: 'host.spawnSentinel' }>, context: ActorContext<HostMessage>): Promise<void> {
    const { system } = context;
    const { reporter } = message;
    let sentinel;
    try {
      sentinel = await sentinelFromSpec(message.spec, this.access);
    } catch (error) {
      message.replyTo.tell({ type: 'host.failed', error: toErrorInfo(error) });
      return;
    }
    const report = (event: SentinelReport['event'], payload: unknown) => reporter.tell({ type: 'sentinel.report', event, payload });
    sentinel.events.on('batch', (info) => report('batch', info));
    sentinel.events.on('epoch', (stats) => report('epoch', stats));
    sentinel.events.on('batchError', (error, batch, lost) => report('batchError', { error, batch, lost }));
    const ref = system.spawn<SentinelMessage>(() => sentinel, { name: `sentinel-${message.spec.name}`, parent: context.self });
    this.sentinels.add(ref.id);
    const stop = () => {
      this.sentinels.delete(ref.id);
      system.stop(ref);
    };
    sentinel.done.then(
      (summary) => {
        report('done', { name: summary.name, mode: summary.mode, epochs: summary.epochs, stoppedBy: summary.stoppedBy });
        stop();
      },
      (error: unknown) => {
        report('failed', toErrorInfo(error));
        stop();
      },
    );
    message.replyTo.tell({ type: 'host.sentinelSpawned', sentinel: ref });
    ref.tell({ type: 'sentinel.start', first: message.first, last: message.last });
  }

  /**
   * Builds a Downpour replica from its spec (model and data from this node's disk, as `access`
   * allows) and runs it against the given shards, reporting every step, then its summary or failure.
   */
  private async spawnReplica(message: Extract<HostMessage, { type: 'host.spawnReplica' }>, context: ActorContext<HostMessage>): Promise<void> {
    const { spec, reporter } = message;
    if (this.replicas.has(spec.replica)) return message.replyTo.tell({ type: 'host.failed', error: toErrorInfo(new InvalidArgumentError(`Replica '${spec.replica}' already runs on this node.`)) });
    let model;
    let data;
    try {
      model = await modelFromSpec(spec.model, this.access);
      data = await providerFromSpec(spec.data, this.access);
    } catch (error) {
      model?.dispose?.();
      return message.replyTo.tell({ type: 'host.failed', error: toErrorInfo(error) });
    }
    const stop = new AbortController();
    this.replicas.set(spec.replica, stop);
    message.replyTo.tell({ type: 'host.replicaSpawned', replica: spec.replica });
    const report = (event: 'step' | 'done' | 'failed', payload: unknown) => reporter.tell({ type: 'replica.report', replica: spec.replica, event, payload });
    try {
      const summary = await runReplica({ ...spec, system: context.system, shards: message.shards, model, data, signal: stop.signal, onStep: (info) => report('step', info) });
      report('done', summary);
    } catch (error) {
      report('failed', toErrorInfo(error));
    } finally {
      this.replicas.delete(spec.replica);
      model.dispose?.();
    }
  }

  postStop(context: ActorContext<HostMessage>): void {
    this.replicas.forEach((stop) => stop.abort());
    for (const id of [...this.gates, ...this.sentinels]) context.system.stop(context.system.ref(id, id));
    this.gates.clear();
    this.sentinels.clear();
  }
}

/** The ref of the host on `node`, as seen from `system`. */
export function hostRef(system: { ref: <M extends { type: string }>(id: string, name: string, node: string) => ActorRef<M> }, node: string): ActorRef<HostMessage> {
  return system.ref<HostMessage>(HOST_ID, `host@${node}`, node);
}
