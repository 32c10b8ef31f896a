/**
 * A chain of gates addressed by ref, wherever they run: the one place that wires gates to their
 * neighbours, frees what they hold for a sentinel or for every sentinel of a node, and reads and
 * writes their state. {@link Network} (a whole chain), `hostGates` (a slice of one served over
 * NATS) and `attachRemote` (a sentinel's view of a remote network) all work through it.
 */
import type { ActorRef, ActorSystem, Message } from '../actor/index.js';
import { type AskGate, getGateStates, setGateStates } from '../gate/index.js';
import type { NamedTensor } from '../optim/index.js';
import type { GateDetached, GateMessage, GateState, ShardInfo } from '../protocol/index.js';

/** Options of a {@link GateChain}. */
export interface GateChainOptions {
  /** Timeout of each gate's reply to a control message (detach, state), ms. Default 30000. */
  askTimeoutMs?: number;
  /** How state requests ask a gate (e.g. failing at once once the network is broken); default `system.ask` with `askTimeoutMs`. */
  ask?: AskGate;
  /** Whether a node is known to be down, so that its gates are skipped (besides gates the system has no route to, which always are). */
  isDown?: (node: string) => boolean;
  /** What the chain is called in errors, e.g. `'this network'` or `'this slice (gates 0-1)'`. */
  owner?: string;
}

/**
 * Which sentinels' state {@link GateChain.free} frees: one sentinel by id (and, where given, only
 * if it is on `node`: a node that is not a host or admin may detach only its own sentinels), or
 * every sentinel on a node.
 */
export type FreeTarget = { readonly sentinelId: string; readonly node?: string } | { readonly node: string };

/** Gates in pipeline order, by ref, with the control requests every network makes of them. */
export class GateChain {
  private readonly askTimeoutMs: number;
  private readonly ask: AskGate;
  private readonly isDown: (node: string) => boolean;
  private readonly owner: string;
  /** Frees under way, awaited by {@link settled}. */
  private readonly pending = new Set<Promise<unknown>>();

  constructor(
    readonly system: ActorSystem,
    readonly gates: readonly ActorRef<GateMessage>[],
    options: GateChainOptions = {},
  ) {
    this.askTimeoutMs = options.askTimeoutMs ?? 30_000;
    this.ask = options.ask ?? (<R extends Message>(gate: ActorRef<GateMessage>, build: (replyTo: ActorRef<R>) => GateMessage) => system.ask<R, GateMessage>(gate, build, this.askTimeoutMs));
    this.isDown = options.isDown ?? (() => false);
    this.owner = options.owner ?? 'this network';
  }

  /**
   * Tells each gate its neighbours: the chain's own, and `ends.previous` / `ends.next` beyond its
   * first and last gate (other slices of a network, or none); `shards(i)` gives gate i's shards.
   */
  wire(ends: { previous?: ActorRef<GateMessage>; next?: ActorRef<GateMessage> } = {}, shards: (index: number) => ShardInfo[] | undefined = () => undefined): void {
    this.gates.forEach((gate, i) => {
      const previous = i > 0 ? this.gates[i - 1] : ends.previous;
      const next = i < this.gates.length - 1 ? this.gates[i + 1] : ends.next;
      gate.tell({ type: 'gate.connect', previous, next, shards: shards(i) });
    });
  }

  /**
   * Tells every gate that is up to free the cached batches of one sentinel (by id) or of every
   * sentinel on a node; resolves with the number of batches dropped. By default the gates are
   * asked in pipeline order, one after the other, so that a batch that gate i had already passed
   * on reaches gate i+1 before its detach does (this holds where one sender's messages keep their
   * order, as within a process).
   * @param options.tolerant count a gate that fails to answer (down, timed out) as 0 instead of rejecting.
   * @param options.parallel ask every gate at once (for gates on several other machines, where
   *   pipeline order cannot be had anyway and a hung host would otherwise delay the rest).
   * @throws AskTimeoutError or ActorStoppedError from a gate that does not answer (unless tolerant).
   */
  async free(which: FreeTarget, options: { tolerant?: boolean; parallel?: boolean } = {}): Promise<number> {
    const up = this.gates.filter((gate) => this.system.isAlive(gate) && !this.isDown(gate.node)); // a gate's state went with its node
    const ask = async (gate: ActorRef<GateMessage>) => {
      const asked = this.system.ask<GateDetached, GateMessage>(gate, (replyTo) => ({ type: 'gate.detach', ...which, replyTo }), this.askTimeoutMs);
      return ((options.tolerant ? await asked.catch(() => undefined) : await asked)?.dropped ?? 0) as number;
    };
    if (options.parallel) return (await Promise.all(up.map(ask))).reduce((a, b) => a + b, 0);
    let dropped = 0;
    for (const gate of up) dropped += await ask(gate);
    return dropped;
  }

  /** {@link free} for every sentinel of a node that went down, tolerant, tracked until {@link settled}. */
  freeNode(node: string): Promise<number> {
    const freeing = this.free({ node }, { tolerant: true });
    this.pending.add(freeing);
    void freeing.finally(() => this.pending.delete(freeing));
    return freeing;
  }

  /** Resolves once every {@link freeNode} under way has settled. */
  async settled(): Promise<void> {
    await Promise.allSettled([...this.pending]);
  }

  /** Copies of every gate's weights, optimizer state and layer configs, in gate order; the caller owns them. */
  getState(): Promise<GateState[]> {
    return getGateStates([...this.gates], this.ask);
  }

  /**
   * Replaces every gate's weights (and optimizer state, if given); the tensors are consumed.
   * @throws InvalidArgumentError for the wrong number of states; the first gate's named error
   *   (e.g. CheckpointMismatchError), in which case that gate is unchanged.
   */
  setState(states: { weights: NamedTensor[]; optimizer?: NamedTensor[] }[]): Promise<void> {
    return setGateStates([...this.gates], states, this.ask, this.owner);
  }
}
