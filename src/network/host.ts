/**
 * The host actor: every node (a worker thread, a child process, a network process) runs one at
 * the well-known id `'host'`. It builds gates from their configs on request, so that a network
 * can place its gates anywhere, and stops them again.
 */
import type { Actor, ActorContext, ActorFailed, ActorRef } from '../actor/index.js';
import { describeError, toErrorInfo, type ErrorInfo } from '../errors.js';
import { gateFromConfig, type GateConfig } from '../gate/index.js';
import type { GateMessage } from '../protocol.js';

/** The id of the host actor on every node. */
export const HOST_ID = 'host';

/** Messages a host understands. */
export type HostMessage =
  | { readonly type: 'host.spawnGate'; readonly config: GateConfig; readonly replyTo: ActorRef<HostReply> }
  | { readonly type: 'host.stopGate'; readonly gate: ActorRef<GateMessage>; readonly replyTo?: ActorRef<HostReply> }
  | { readonly type: 'host.ping'; readonly replyTo: ActorRef<HostReply> }
  | ActorFailed;

/** Replies of a host. */
export type HostReply =
  | { readonly type: 'host.gateSpawned'; readonly gate: ActorRef<GateMessage>; readonly inputShape: number[]; readonly outputShape: number[] }
  | { readonly type: 'host.gateStopped' }
  | { readonly type: 'host.pong'; readonly node: string; readonly backend: string; readonly pid: number }
  | { readonly type: 'host.failed'; readonly error: ErrorInfo };

/** Host actor logic; spawn with `system.spawn(() => new Host(backend), { id: HOST_ID })`. */
export class Host implements Actor<HostMessage> {
  private readonly gates = new Set<string>();

  /**
   * @param backend the tfjs backend of this node, reported by `host.ping`.
   * @param log where failures of the gates it supervises are reported (default `console.error`).
   */
  constructor(
    private readonly backend: string,
    private readonly log: (line: string) => void = (line) => console.error(line),
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
      case 'host.ping':
        message.replyTo.tell({ type: 'host.pong', node: system.node, backend: this.backend, pid: process.pid });
        return;
      case 'actor.failed':
        // A gate's handler threw outside its own batch handling; the gate resumes (its policy).
        this.log(`[${system.name}@${system.node}] ${message.actor.name} failed on '${message.messageType}' (${message.policy}): ${describeError(message.error)}`);
        return;
    }
  }

  postStop(context: ActorContext<HostMessage>): void {
    for (const id of this.gates) context.system.stop(context.system.ref(id, id));
    this.gates.clear();
  }
}

/** The ref of the host on `node`, as seen from `system`. */
export function hostRef(system: { ref: <M extends { type: string }>(id: string, name: string, node: string) => ActorRef<M> }, node: string): ActorRef<HostMessage> {
  return system.ref<HostMessage>(HOST_ID, `host@${node}`, node);
}
