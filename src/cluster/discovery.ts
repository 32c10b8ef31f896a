// Over 400 lines: the registry protocol and the remote attachment that consumes it are one request/answer exchange.
/**
 * Discovery of networks over NATS through a registry subject, `akk.<network>.registry`: every
 * process that hosts gates of a network answers a request there with its slice of the network
 * (`{ node, total, wired, gates: [{ index, id, name, inputShape, outputShape }] }`);
 * {@link discoverNetwork} asks until gates `0..total-1` are all known, and {@link attachRemote}
 * runs a local sentinel on the gates found. A host that starts (or restarts) announces itself
 * on `akk.<network>.registry.announce`, so that the other hosts re-wire their gates to it.
 *
 * Each gate has exactly one host: a host refuses to start on gates that another live process
 * already hosts, or on a network of that name that is another model ({@link sliceConflict}),
 * and a sentinel refuses to attach to a network whose slices disagree.
 */
import { createInbox, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import { EventEmitter } from 'eventemitter3';
import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import type { ActorRef } from '../actor/index.js';
import { GateConflictError, ShapeMismatchError, TransportError } from '../errors.js';
import { GateChain } from '../network/index.js';
import type { GateMessage } from '../protocol/index.js';
import type { Sentinel, SentinelMessage, SentinelSummary } from '../sentinel/index.js';
import { inboxPrefixOf, natsSubject, SUBJECT_TOKEN, type NatsNode } from '../transport/index.js';

/** One gate as the registry lists it. */
export interface RegistryGate {
  /** Position in the network, from 0. */
  index: number;
  /** Actor id and name of the gate on its node. */
  id: string;
  name: string;
  /** Per-sample shapes, e.g. `[784]` and `[512]`. */
  inputShape: number[];
  outputShape: number[];
  /**
   * The node of the gate's actor when it is not the slice's own node: a worker thread of the
   * hosting process, which that process serves on NATS (`NatsNode.serve`).
   */
  node?: string;
}

/** What one hosting process answers: its node and the gates it hosts. */
export interface RegistrySlice {
  node: string;
  /** Number of gates of the whole network. */
  total: number;
  /** True once every hosted gate knows its neighbours (sentinels wait for this). */
  wired: boolean;
  /** Model name, for logs (e.g. `'mlp'`). */
  model?: string;
  gates: RegistryGate[];
}

/** A discovered gate: a registry entry plus the node that hosts it. */
export interface DiscoveredGate extends RegistryGate {
  node: string;
}

/** The result of {@link discoverNetwork}. */
export interface NetworkDirectory {
  network: string;
  total: number;
  /** Gates found, by index, in index order (every index when discovery asked for the whole network). */
  gates: Map<number, DiscoveredGate>;
  /** Every slice that answered, by node (those of another model are in `mismatched`). */
  slices: Map<string, RegistrySlice>;
  /** Gate index → the nodes of the slices that claim it, where more than one does (sorted). */
  duplicates: Map<number, string[]>;
  /** Slices that answered for another model (another number of gates or model name) than the first answer's. */
  mismatched: RegistrySlice[];
}

/** Options of {@link discoverNetwork}. */
export interface DiscoveryOptions {
  /** Give up after this long, ms. Default 10000. */
  timeoutMs?: number;
  /** Ask again this often, ms. Default 500. */
  retryMs?: number;
  /** Only these gate indices are needed (default all, `0..total-1`). */
  need?: number[];
  /** Only accept slices that report `wired` (default true). */
  requireWired?: boolean;
  /**
   * Once the needed gates are known, go on listening this long (ms) for further answers, so
   * that a second host of one gate shows in `duplicates`. Default 0.
   */
  settleMs?: number;
  /** Stops the search; it then rejects with a TransportError. */
  signal?: AbortSignal;
}

const token = z.string().regex(SUBJECT_TOKEN);
const shape = z.array(z.number().int().min(0).max(2 ** 24)).max(8);
const sliceSchema = z.object({
  node: token,
  total: z.number().int().min(1).max(10_000),
  wired: z.boolean(),
  model: z.string().max(200).optional(),
  gates: z.array(z.object({ index: z.number().int().min(0), id: z.string().min(1).max(128), name: z.string().max(256), inputShape: shape, outputShape: shape, node: token.optional() })).max(10_000),
});

/** The registry subject of a network. */
export function registrySubject(network: string): string {
  return natsSubject(network, 'registry');
}

/** The subject on which hosts announce that they started. */
export function announceSubject(network: string): string {
  return natsSubject(network, 'registry', 'announce');
}

/**
 * Answers registry requests for `network` with `slice()` (current at each request) and
 * announces the slice once now. Returns the subscription (unsubscribe to stop answering).
 */
export function serveRegistry(nats: NatsNode, slice: () => RegistrySlice): { subscription: Subscription; announce(): void } {
  const { nc, namespace } = nats;
  const subscription = nc.subscribe(registrySubject(namespace), {
    callback: (error, msg) => {
      if (!error && msg.reply) msg.respond(JSON.stringify(slice()));
    },
  });
  const announce = () => {
    try {
      nc.publish(announceSubject(namespace), JSON.stringify(slice()));
    } catch {
      // disconnected and closed: nobody to tell
    }
  };
  announce();
  return { subscription, announce };
}

/** Parses a slice from bytes; undefined when it is not a valid slice. */
export function parseSlice(data: Uint8Array): RegistrySlice | undefined {
  try {
    const result = sliceSchema.safeParse(JSON.parse(new TextDecoder().decode(data)));
    return result.success ? result.data : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Collects every slice of `network` that answers within `waitMs` (ms; default 300) of the
 * first answer, or none when nothing answers in that time: the processes that host gates of
 * it now, wired or not, of any model. {@link discoverNetwork} asking for no gates.
 */
export async function listSlices(source: NatsNode | NatsConnection, network: string, waitMs = 300): Promise<RegistrySlice[]> {
  const found = await discoverNetwork(source, network, { need: [], requireWired: false, timeoutMs: waitMs, settleMs: waitMs }).catch(() => undefined);
  return found ? [...found.slices.values(), ...found.mismatched] : [];
}

/** What a host is about to host, for {@link sliceConflict}. */
export interface PlannedSlice {
  node: string;
  model: string;
  total: number;
  from: number;
  to: number;
}

/**
 * Whether `planned` clashes with the slices `others` of `network`: a gate in `from..to` that
 * another node hosts, or another model under the same network name. With `running`, `planned`
 * is already hosted (the message then says to stop one of the two) rather than about to be.
 * @returns the error (naming the nodes and what to do), or undefined when it fits.
 */
export function sliceConflict(network: string, servers: string, planned: PlannedSlice, others: Iterable<RegistrySlice>, running = false): GateConflictError | undefined {
  for (const other of others) {
    if (other.node === planned.node) continue;
    const theirs = other.gates.map((g) => g.index);
    const taken = theirs.filter((i) => i >= planned.from && i <= planned.to);
    const otherModel = other.total !== planned.total || (other.model !== undefined && other.model !== planned.model);
    if (running && (otherModel || taken.length > 0)) {
      const what = otherModel ? `network '${network}' as model '${other.model ?? 'unknown'}' with ${other.total} gates, and this process hosts model '${planned.model}' with ${planned.total}` : `gate${taken.length > 1 ? 's' : ''} ${taken.join(', ')} of network '${network}' as this process does`;
      return new GateConflictError(`Node ${other.node} (on NATS ${servers}) also hosts ${what}; each gate must have exactly one host and each network name one model. Stop one of the two processes.`);
    }
    if (otherModel) {
      return new GateConflictError(
        `Network '${network}' on NATS ${servers} is already hosted as model '${other.model ?? 'unknown'}' with ${other.total} gates (node ${other.node}); this process would host model '${planned.model}' with ${planned.total}. Give each model its own network name (--name).`,
      );
    }
    if (taken.length > 0) {
      const free = [...Array(planned.total).keys()].filter((i) => i >= planned.from && i <= planned.to && !theirs.includes(i));
      const contiguous = free.length > 0 && (free.at(-1) as number) - (free[0] as number) + 1 === free.length;
      const hint = contiguous ? `start this process with --gates ${free[0]}-${free.at(-1)} (the gates of that range that node does not host), or stop that node first` : 'stop that node first, or host other gates';
      return new GateConflictError(
        `Gate${taken.length > 1 ? 's' : ''} ${taken.join(', ')} of network '${network}' on NATS ${servers} ${taken.length > 1 ? 'are' : 'is'} already hosted by node ${other.node} (gates ${Math.min(...theirs)}-${Math.max(...theirs)}); each gate must have exactly one host: ${hint}.`,
      );
    }
  }
  return undefined;
}

/**
 * Finds the gates of `network`: publishes a registry request every `retryMs` and collects
 * answers until the needed gates are known. When two slices claim one index, the node with the
 * smallest id is listed in `gates` and both in `duplicates`; {@link attachRemote} refuses such a
 * network.
 * @throws TransportError when the needed gates are not all found within `timeoutMs`; it names
 *   the server(s), the network, what was missing, and what to check.
 */
export async function discoverNetwork(source: NatsNode | NatsConnection, network: string, options: DiscoveryOptions = {}): Promise<NetworkDirectory> {
  const nc = 'nc' in source ? source.nc : source;
  const servers = 'nc' in source ? source.servers.join(', ') : nc.getServer();
  const { timeoutMs = 10_000, retryMs = 500, requireWired = true } = options;
  const slices = new Map<string, RegistrySlice>();
  const mismatched = new Map<string, RegistrySlice>();
  let first: RegistrySlice | undefined;
  let unwired = 0;
  let settling: NodeJS.Timeout | undefined;
  const inbox = createInbox('nc' in source ? inboxPrefixOf(source.system.node) : undefined);
  return new Promise<NetworkDirectory>((resolve, reject) => {
    const finish = (error?: Error) => {
      clearInterval(retry);
      clearTimeout(timer);
      clearTimeout(settling);
      options.signal?.removeEventListener('abort', onAbort);
      subscription.unsubscribe();
      if (error) reject(error);
      else resolve(directory(network, (first as RegistrySlice).total, slices, [...mismatched.values()]));
    };
    const complete = (): boolean => {
      if (first === undefined) return false;
      const { total } = first;
      const have = directory(network, total, slices, []).gates;
      return (options.need ?? [...Array(total).keys()]).every((i) => i < 0 || i >= total || have.has(i));
    };
    const subscription = nc.subscribe(inbox, {
      callback: (error, msg) => {
        if (error) return;
        const slice = parseSlice(msg.data);
        if (!slice) return;
        if (requireWired && !slice.wired) return void unwired++;
        first ??= slice;
        if (slice.total !== first.total || slice.model !== first.model) return void mismatched.set(slice.node, slice); // another model; the first answer's wins
        slices.set(slice.node, slice);
        if (!complete() || settling) return;
        if (!options.settleMs) return finish();
        clearInterval(retry);
        settling = setTimeout(finish, options.settleMs);
      },
    });
    const ask = () => {
      try {
        nc.publish(registrySubject(network), '', { reply: inbox });
      } catch {
        // disconnected and closed; the timeout reports it
      }
    };
    const retry = setInterval(ask, retryMs);
    const timer = setTimeout(() => (settling ? undefined : finish(notFound(network, servers, timeoutMs, first?.total, slices, unwired, options.need))), timeoutMs);
    const onAbort = () => finish(new TransportError(`Discovery of network '${network}' was stopped.`));
    if (options.signal?.aborted) return onAbort();
    options.signal?.addEventListener('abort', onAbort);
    ask();
  });
}

function directory(network: string, total: number, slices: Map<string, RegistrySlice>, mismatched: RegistrySlice[]): NetworkDirectory {
  const found = new Map<number, DiscoveredGate>();
  const claims = new Map<number, string[]>();
  for (const node of [...slices.keys()].sort()) {
    for (const gate of (slices.get(node) as RegistrySlice).gates) {
      if (gate.index >= total) continue;
      claims.set(gate.index, [...(claims.get(gate.index) ?? []), node]);
      if (!found.has(gate.index)) found.set(gate.index, { ...gate, node: gate.node ?? node });
    }
  }
  const gates = new Map([...found].sort(([a], [b]) => a - b));
  const duplicates = new Map([...claims].filter(([, nodes]) => nodes.length > 1).sort(([a], [b]) => a - b));
  return { network, total, gates, slices, duplicates, mismatched };
}

/**
 * The error for a directory whose slices disagree (two hosts of one gate, or another model
 * under the same name), naming the nodes and what to do; undefined when they agree.
 */
export function directoryConflict(found: NetworkDirectory, servers: string): GateConflictError | undefined {
  const [index, nodes] = [...found.duplicates][0] ?? [];
  if (index !== undefined && nodes) {
    return new GateConflictError(
      `Gate ${index} of network '${found.network}' on NATS ${servers} is hosted by ${nodes.length} processes (nodes ${nodes.join(', ')}); each gate must have exactly one host. Stop all but one of them.`,
    );
  }
  const other = found.mismatched[0];
  if (other) {
    const model = (s?: RegistrySlice) => `model '${s?.model ?? 'unknown'}' with ${s?.total} gates`;
    const some = found.slices.values().next().value as RegistrySlice | undefined;
    return new GateConflictError(
      `Network '${found.network}' on NATS ${servers} is hosted as two models: ${model(some)} (node ${some?.node}) and ${model(other)} (node ${other.node}). Give each model its own network name (--name).`,
    );
  }
  return undefined;
}

function notFound(network: string, servers: string, timeoutMs: number, total: number | undefined, slices: Map<string, RegistrySlice>, unwired: number, need?: number[]): TransportError {
  const start = `\`npm run network -- --name ${network} --nats ${servers}\``;
  if (total === undefined && unwired === 0) {
    return new TransportError(
      `No gates of network '${network}' answered on NATS ${servers} within ${timeoutMs} ms. Check that ${start} is running with the same --name and --nats (and the same credentials).`,
    );
  }
  if (total === undefined) {
    return new TransportError(`Network '${network}' on NATS ${servers} answered, but its gates were not wired to each other within ${timeoutMs} ms; start the processes that host its other gates (--gates).`);
  }
  const have = directory(network, total, slices, []).gates;
  const missing = (need ?? [...Array(total).keys()]).filter((i) => i >= 0 && i < total && !have.has(i));
  return new TransportError(
    `Network '${network}' on NATS ${servers} has ${total} gates, but gate(s) ${missing.join(', ')} did not answer within ${timeoutMs} ms. Start the process that hosts them (${start.slice(0, -1)} --gates ${missing[0]}-${missing.at(-1)}\`).`,
  );
}

/** Options of {@link attachRemote}. */
export interface AttachRemoteOptions {
  /**
   * How discovery waits for the network; default 10 s, asking every 500 ms, then listening
   * 100 ms more for hosts that claim the same gates (`settleMs`).
   */
  discovery?: Pick<DiscoveryOptions, 'timeoutMs' | 'retryMs' | 'settleMs'>;
  /** Timeout of each gate's reply to `gate.detach`, ms. Default 5000. */
  detachTimeoutMs?: number;
}

/** Events of a {@link RemoteAttachment}. */
export interface RemoteAttachmentEvents {
  /**
   * The node hosting gates `gates` went down (it left or missed its heartbeats): the sentinel
   * gave up its batches in flight (counted lost), the gates still up freed their state, and
   * the sentinel holds until the network is whole again.
   */
  held: (node: string, gates: number[]) => void;
  /** The network is whole again (a host restarted and was wired in): the sentinel goes on with these gates. */
  resumed: (directory: NetworkDirectory) => void;
  /** Looking for the network again failed this time (e.g. two hosts of one gate); it keeps looking. */
  searchFailed: (error: Error) => void;
}

/** A sentinel running on a remote network. */
export interface RemoteAttachment {
  readonly ref: ActorRef<SentinelMessage>;
  /** The network as found at attach, or at the last resume. */
  readonly directory: NetworkDirectory;
  /** Gate refs in pipeline order (as of the last resume). */
  readonly gates: ActorRef<GateMessage>[];
  /** The sentinel's result (see `Sentinel.done`). */
  readonly done: Promise<SentinelSummary>;
  readonly events: EventEmitter<RemoteAttachmentEvents>;
  /**
   * Stops the sentinel and tells every gate to free its cached batches; resolves with the
   * number dropped. Runs by itself when the sentinel finishes; idempotent.
   */
  detach(): Promise<number>;
}

/**
 * Finds the network `nats.namespace`, spawns `sentinel` in `nats.system` and starts it on the
 * network's first and last gates.
 *
 * When a node hosting gates goes down while the sentinel runs, the sentinel gives up its
 * batches in flight (they count as lost), the gates that are still up free their state, and
 * the sentinel sends nothing until discovery finds the network whole again (a host restarted
 * and was wired in); it then goes on with the gates' new addresses (`events`: `held`,
 * `resumed`). It waits for as long as that takes; call `detach` to give up.
 * @throws TransportError when the network does not answer (see {@link discoverNetwork});
 *   GateConflictError when two processes host one of its gates, or its hosts run different
 *   models; ShapeMismatchError when the sentinel's data does not fit gate 0's input.
 */
export async function attachRemote(nats: NatsNode, sentinel: Sentinel, options: AttachRemoteOptions = {}): Promise<RemoteAttachment> {
  const { system } = nats;
  const servers = nats.servers.join(', ');
  const discoveryOptions = { settleMs: 100, ...options.discovery, requireWired: true };
  const find = async (signal?: AbortSignal) => {
    const found = await discoverNetwork(nats, nats.namespace, { ...discoveryOptions, signal });
    const conflict = directoryConflict(found, servers);
    if (conflict) throw conflict;
    const refs = [...Array(found.total).keys()].map((i) => {
      const g = found.gates.get(i) as DiscoveredGate;
      return system.ref<GateMessage>(g.id, g.name, g.node);
    });
    return { found, refs };
  };
  let { found: directory, refs: gates } = await find();
  const input = directory.gates.get(0)?.inputShape ?? [];
  if (!tf.util.arraysEqual(input, sentinel.options.data.inputShape)) {
    throw new ShapeMismatchError(`Sentinel '${sentinel.name}' has samples of shape [${sentinel.options.data.inputShape}], but network '${directory.network}' takes [${input}].`);
  }
  const ref = system.spawn<SentinelMessage>(() => sentinel, { name: `sentinel-${sentinel.name}` });
  const events = new EventEmitter<RemoteAttachmentEvents>();
  const stopped = new AbortController();
  const detachTimeoutMs = options.detachTimeoutMs ?? 5000;
  /** Tells `targets` that are up to free the sentinel's cached batches, all at once; the number they dropped. */
  const free = (targets: ActorRef<GateMessage>[]): Promise<number> =>
    new GateChain(system, targets, { askTimeoutMs: detachTimeoutMs, isDown: (node) => nats.isDown(node) }).free({ sentinelId: ref.id, node: ref.node }, { tolerant: true, parallel: true });

  let recovering: Promise<void> | undefined;
  const recover = async (down: string, lost: number[]) => {
    await free(gates.filter((g) => g.node !== down && !nats.isDown(g.node)));
    events.emit('held', down, lost);
    while (!stopped.signal.aborted) {
      try {
        const next = await find(stopped.signal);
        // Batches that were on their way when the node went down may have left state behind.
        await free(next.refs);
        if (stopped.signal.aborted) return;
        ({ found: directory, refs: gates } = next);
        ref.tell({ type: 'sentinel.connect', first: gates[0] as ActorRef<GateMessage>, last: gates[gates.length - 1] as ActorRef<GateMessage> });
        events.emit('resumed', directory);
        return;
      } catch (error) {
        if (!stopped.signal.aborted) events.emit('searchFailed', error as Error);
      }
    }
  };
  const onNodeDown = (node: string) => {
    const lost = [...directory.gates.values()].filter((g) => g.node === node).map((g) => g.index);
    if (lost.length === 0 || stopped.signal.aborted) return;
    ref.tell({ type: 'sentinel.hold', error: { code: 'Transport', message: `node ${node} hosting gate${lost.length > 1 ? 's' : ''} ${lost.join(', ')} of network '${directory.network}' went down` } });
    if (recovering) events.emit('held', node, lost);
    else recovering = recover(node, lost).finally(() => (recovering = undefined));
  };
  system.events.on('nodeDown', onNodeDown);

  let released: Promise<number> | undefined;
  const detach = (): Promise<number> => {
    released ??= (async () => {
      stopped.abort();
      system.events.off('nodeDown', onNodeDown);
      system.stop(ref);
      await recovering;
      return free(gates.filter((g) => !nats.isDown(g.node)));
    })();
    return released;
  };
  sentinel.done.then(detach, detach);
  ref.tell({ type: 'sentinel.start', first: gates[0] as ActorRef<GateMessage>, last: gates[gates.length - 1] as ActorRef<GateMessage> });
  return {
    ref,
    get directory() {
      return directory;
    },
    get gates() {
      return gates;
    },
    done: sentinel.done,
    events,
    detach,
  };
}
