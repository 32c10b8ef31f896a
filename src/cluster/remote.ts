/**
 * Networks spread over processes through NATS: {@link hostGates} runs a slice of a named model's
 * gates in this process, lists them on the network's registry subject and wires them to the
 * neighbouring slices (retrying until those exist, re-wiring when they restart); it frees the
 * cached tensors of every sentinel whose node goes down (missed heartbeats). Sentinels attach
 * with `attachRemote` (see discovery.ts).
 */
import { promises as fs } from 'node:fs';
import type { Subscription } from '@nats-io/transport-node';
import type * as tf from '@tensorflow/tfjs';
import { EventEmitter } from 'eventemitter3';
import type { ActorRef } from '../actor/index.js';
import type { DataAccess } from '../data/index.js';
import { describeError, InvalidArgumentError } from '../errors.js';
import { Gate } from '../gate/index.js';
import { GateChain } from '../network/index.js';
import { describeFingerprint, mnistDescription, type MnistModelName, type NetworkDescription, networkGates } from '../models/index.js';
import { createOptimizer, DEFAULT_OPTIMIZER, type OptimizerSpec } from '../optim/index.js';
import { balancedPlacement, deployGates, gateCosts, type PlacementSpec, shardableUnits } from '../deploy/index.js';
import type { NamedTensor } from '../optim/index.js';
import type { GateMessage, GateState, ShardInfo } from '../protocol/index.js';
import { type Checkpointable, findCheckpoint, loadCheckpoint } from '../persist/index.js';
import type { NatsNode } from '../transport/index.js';
import { announceSubject, type DiscoveredGate, discoverNetwork, listSlices, parseSlice, type RegistrySlice, serveRegistry, sliceConflict } from './discovery.js';


/** Options of {@link hostGates}. */
export interface HostGatesOptions {
  /**
   * The network: a {@link NetworkDescription} (any input shape and layers, e.g. from
   * `loadNetworkDescription`), or the name of a built-in MNIST model (input `[784]`).
   */
  model: NetworkDescription | MnistModelName;
  /** First and last gate index hosted here (inclusive); default the whole network. */
  from?: number;
  to?: number;
  /** Each gate's optimizer; default the description's, else `DEFAULT_OPTIMIZER`. */
  optimizer?: OptimizerSpec;
  /** Seed of gate i's dropout (seed + i), and of a built-in model's initial weights. Default 1. */
  seed?: number;
  checkFinite?: boolean;
  /** How often wiring asks the registry for missing neighbours, ms. Default 500. */
  retryMs?: number;
  /**
   * Before hosting, listen this long (ms) for the processes that already host gates of the
   * network: none may host one of these gates or another model under the name
   * (GateConflictError). Default 300; 0 skips the check.
   */
  probeMs?: number;
  /**
   * Threads of this process the hosted gates use: the main thread plus `threads − 1` worker
   * threads, placed as `Network.create`'s `'auto'` does (`balancedPlacement`): whole gates in
   * workers, or a Dense gate split by output units where that balances better. A gate in a
   * worker is served on NATS under the worker's node (`NatsNode.serve`), and the worker checks
   * every message like a process does. Default 1 (main only).
   */
  threads?: number;
  /**
   * A checkpoint directory of this slice (`saveCheckpoint` of an earlier `HostedGates` with the
   * same model and gates): when it exists, the gates' weights and optimizer state are loaded
   * from it before the slice is listed on the registry. A directory that does not exist or is
   * empty is skipped (the gates start from their initial weights).
   */
  checkpoint?: string;
  /**
   * What sentinels that other nodes have this process's hosts build (`host.spawnSentinel`, on
   * the main thread and in the worker threads of `threads`) may read from its disk. Default
   * `{ roots: [] }`: no files or modules, only tensors sent along or MNIST from its default place.
   */
  dataAccess?: DataAccess;
  /** Timeout of each gate's reply to a state or detach request (`getState`, `setState`, `gate.detach`), ms. Default 30000. */
  stateTimeoutMs?: number;
  /** Where log lines go; default `console.log`. */
  log?: (line: string) => void;
}

/** One hosted gate. */
export interface HostedGate {
  index: number;
  ref: ActorRef<GateMessage>;
  /** The gate object when it runs on this thread (for a split gate, its main-thread part); undefined for a gate in a worker thread. */
  gate?: Gate;
  /** Per-sample input and output shapes of the whole gate. */
  inputShape: number[];
  outputShape: number[];
  /** Its shards in worker threads, when it is split. */
  shards: ShardInfo[];
}

/** Events of {@link HostedGates}. */
export interface HostedGatesEvents {
  /** Every hosted gate knows its neighbours. */
  wired: () => void;
  /** A node went down (left, or missed heartbeats); `dropped` batches of its sentinels were freed. */
  nodeLost: (node: string, dropped: number) => void;
}

/** What {@link hostGates} returns; a {@link Checkpointable}, so `saveCheckpoint(hosted, dir)` saves the slice. */
export interface HostedGates extends Checkpointable {
  readonly network: string;
  readonly total: number;
  readonly gates: HostedGate[];
  readonly events: EventEmitter<HostedGatesEvents>;
  /** Resolves once every hosted gate has been wired to its neighbours. */
  readonly wired: Promise<void>;
  /** Batches whose backward pass has not arrived yet, over the hosted gates on this thread (not those in worker threads). */
  inFlight(): number;
  /** Frees every batch of sentinels on `node`; returns how many were dropped. */
  detachNode(node: string): Promise<number>;
  /** Copies of the hosted gates' weights and optimizer state, in gate order; the caller owns them. */
  getState(): Promise<GateState[]>;
  /**
   * Replaces the hosted gates' weights (and optimizer state, if given); consumes the tensors.
   * @throws InvalidArgumentError for the wrong number of gates; a gate's named error (e.g.
   *   CheckpointMismatchError for a wrong shape), in which case that gate is unchanged.
   */
  setState(states: { weights: NamedTensor[]; optimizer?: NamedTensor[] }[]): Promise<void>;
  /** Stops answering the registry and stops the gates (the NATS connection stays open). */
  close(): Promise<void>;
}

/** Whether `dir` is a directory with anything in it. */
const hasEntries = (dir: string) => fs.readdir(dir).then((entries) => entries.length > 0, () => false);

/** Per-sample shapes along a model's gates: `shapes[i]` is gate i's input; the last is the output. */
function chainShapes(specs: { layers: tf.layers.Layer[] }[], inputShape: number[]): number[][] {
  const shapes = [inputShape];
  let shape: (number | null)[] = [null, ...inputShape];
  for (const spec of specs) {
    for (const layer of spec.layers) shape = layer.computeOutputShape(shape) as (number | null)[];
    shapes.push(shape.slice(1) as number[]);
  }
  return shapes;
}

/**
 * Hosts gates `from..to` of a named model in `nats.system`, registers them under the network
 * `nats.namespace`, and wires them to the other slices as those appear. A host that appears
 * later and claims one of these gates (two started at once both pass `probeMs`) is logged as a
 * conflict, and sentinels refuse the network until one of the two stops.
 * @throws InvalidArgumentError for a gate range outside the model; GateConflictError when a
 *   live process already hosts one of these gates, or the network name as another model;
 *   CheckpointMismatchError or DataFormatError when `checkpoint` does not fit these gates or
 *   is corrupt (nothing is hosted then).
 */
export async function hostGates(nats: NatsNode, options: HostGatesOptions): Promise<HostedGates> {
  const { system, namespace: network } = nats;
  const log = options.log ?? ((line: string) => console.log(line));
  const seed = options.seed ?? 1;
  const description = typeof options.model === 'string' ? mnistDescription(options.model, seed) : options.model;
  // A built-in model keeps its name on the registry; any other is named with its fingerprint, so that two hosts of different architectures under one name conflict.
  const model = typeof options.model === 'string' ? options.model : `${description.name}#${describeFingerprint(description)}`;
  const specs = networkGates(description);
  const total = specs.length;
  const from = options.from ?? 0;
  const to = options.to ?? total - 1;
  if (!(Number.isInteger(from) && Number.isInteger(to) && from >= 0 && from <= to && to < total)) {
    throw new InvalidArgumentError(`Gates ${from}-${to} are not in model '${model}', which has gates 0-${total - 1}.`);
  }
  const threads = options.threads ?? 1;
  if (!Number.isInteger(threads) || threads < 1) throw new InvalidArgumentError(`threads must be a positive integer, got ${threads}.`);
  const probeMs = options.probeMs ?? 300;
  if (probeMs > 0) {
    const planned = { node: system.node, model, total, from, to };
    const conflict = sliceConflict(network, nats.servers.join(', '), planned, await listSlices(nats, network, probeMs));
    if (conflict) throw conflict;
  }
  const shapes = chainShapes(specs, description.inputShape);
  const optimizer = options.optimizer ?? description.optimizer ?? DEFAULT_OPTIMIZER;
  const hosted = specs.slice(from, to + 1);
  const placement: PlacementSpec[] =
    threads > 1 ? balancedPlacement(gateCosts(hosted, shapes[from] as number[]), hosted.map((g) => shardableUnits(g.layers)), threads) : hosted.map(() => ({ kind: 'main' }));
  const plans = hosted.map((spec, i) => ({
    name: spec.name ?? `gate-${from + i}`,
    layers: spec.layers,
    optimizer: placement[i]?.kind === 'main' ? createOptimizer(optimizer) : optimizer, // a worker builds its own from the spec
    spec: optimizer,
    seed: seed + from + i,
    checkFinite: options.checkFinite,
  }));
  // Workers receive frames relayed from NATS, so they validate them as a process would.
  const deployment = await deployGates(system, plans, shapes[from] as number[], placement, { validate: true, dataAccess: options.dataAccess ?? { roots: [] } });
  const gates: HostedGate[] = deployment.gates.map((ref, i) => ({
    index: from + i,
    ref,
    gate: deployment.local.get(i),
    inputShape: shapes[from + i] as number[],
    outputShape: shapes[from + i + 1] as number[],
    shards: deployment.shards.get(i) ?? [],
  }));
  const chain = new GateChain(system, gates.map((g) => g.ref), { askTimeoutMs: options.stateTimeoutMs ?? 30_000, owner: `this slice (gates ${from}-${to})` });
  const getState = () => chain.getState();
  const setState = (states: { weights: NamedTensor[]; optimizer?: NamedTensor[] }[]) => chain.setState(states);
  const saved = options.checkpoint === undefined ? undefined : await findCheckpoint(options.checkpoint);
  if (options.checkpoint !== undefined && saved && (saved.recovered || (await hasEntries(saved.dir)))) {
    try {
      await loadCheckpoint({ getState, setState }, options.checkpoint, { log: (line) => log(`network ${network}: ${line}`) });
    } catch (error) {
      gates.forEach(({ ref, shards }) => [ref, ...shards.map((shard) => shard.ref)].forEach((r) => system.stop(r)));
      await Promise.all(deployment.nodes.map((node) => node.close()));
      throw error;
    }
    log(`network ${network}: gates ${from}-${to} loaded from checkpoint ${options.checkpoint}`);
  }
  // Gates in worker threads are reached from other processes through this connection.
  const workerNodes = [...new Set(gates.map((g) => g.ref.node).filter((node) => node !== system.node))];
  const unserve = workerNodes.map((node) => nats.serve(node, `${network} gates ${deployment.gateNodes.get(node)?.join(', ') ?? ''}`.trim()));
  const events = new EventEmitter<HostedGatesEvents>();
  const neighbours: { previous?: DiscoveredGate; next?: DiscoveredGate } = {};
  const needed = [from - 1, to + 1].filter((i) => i >= 0 && i < total);
  let closed = false;
  const stopSearch = new AbortController();
  let wired = false;
  let markWired!: () => void;
  const wiredOnce = new Promise<void>((resolve) => (markWired = resolve));

  const slice = (): RegistrySlice => ({
    node: system.node,
    total,
    wired,
    model,
    gates: gates.map(({ index, ref, inputShape, outputShape }) => ({ index, id: ref.id, name: ref.name, inputShape, outputShape, ...(ref.node !== system.node ? { node: ref.node } : {}) })),
  });
  const remote = (g?: DiscoveredGate) => (g ? system.ref<GateMessage>(g.id, g.name, g.node) : undefined);
  const apply = () => {
    chain.wire({ previous: remote(neighbours.previous), next: remote(neighbours.next) }, (i) => gates[i]?.shards);
    const now = (from === 0 || neighbours.previous !== undefined) && (to === total - 1 || neighbours.next !== undefined);
    if (now && !wired) {
      wired = true;
      const describe = (g?: DiscoveredGate) => (g ? `gate ${g.index} on ${g.node}` : 'none');
      log(`network ${network}: gates ${from}-${to} wired (previous: ${describe(neighbours.previous)}, next: ${describe(neighbours.next)})`);
      markWired();
      events.emit('wired');
      registry.announce();
    }
  };
  const warned = new Set<string>();
  const warnConflict = (s: RegistrySlice) => {
    const conflict = sliceConflict(network, nats.servers.join(', '), { node: system.node, model, total, from, to }, [s], true);
    if (!conflict || warned.has(s.node)) return;
    warned.add(s.node);
    log(`network ${network}: CONFLICT: ${conflict.message} Sentinels refuse this network until then.`);
  };
  const learn = (s: RegistrySlice): boolean => {
    warnConflict(s);
    let changed = false;
    for (const g of s.gates) {
      const key = g.index === from - 1 ? 'previous' : g.index === to + 1 ? 'next' : undefined;
      const known = key && neighbours[key];
      const node = g.node ?? s.node;
      if (key && (!known || known.node !== node || known.id !== g.id) && s.total === total && (s.model === undefined || s.model === model)) {
        neighbours[key] = { ...g, node };
        changed = true;
      }
    }
    return changed;
  };

  let searching = false;
  const missing = () => needed.some((i) => (i === from - 1 ? !neighbours.previous : !neighbours.next));
  const search = async () => {
    if (searching) return;
    searching = true;
    let reported = false;
    while (!closed && missing()) {
      try {
        const found = await discoverNetwork(nats, network, { need: needed, requireWired: false, timeoutMs: 5000, retryMs: options.retryMs ?? 500, signal: stopSearch.signal });
        if (!closed) {
          found.slices.forEach((s) => s.node !== system.node && learn(s));
          found.mismatched.forEach(warnConflict);
        }
      } catch (error) {
        if (!reported && !closed && missing()) log(`network ${network}: waiting for neighbouring gates: ${describeError(error)}`);
        reported = true;
      }
    }
    searching = false;
    if (!closed) apply();
  };

  const registry = serveRegistry(nats, slice);
  const announcements: Subscription = nats.nc.subscribe(announceSubject(network), {
    callback: (error, msg) => {
      const s = error ? undefined : parseSlice(msg.data);
      if (s && s.node !== system.node && !closed && learn(s)) apply();
    },
  });
  const names = new Map<string, string | undefined>();
  const reasons = new Map<string, 'left' | 'timeout'>();
  const onPeerUp = (node: string, name: string | undefined) => {
    names.set(node, name);
    log(`network ${network}: node ${node}${name ? ` (${name})` : ''} joined`);
  };
  const onPeerDown = (node: string, reason: 'left' | 'timeout') => reasons.set(node, reason);
  const detachNode = (node: string): Promise<number> => chain.freeNode(node);
  const onNodeDown = (node: string) => {
    if (closed) return;
    for (const key of ['previous', 'next'] as const) {
      if (neighbours[key]?.node === node) {
        log(`network ${network}: the node hosting gate ${neighbours[key]?.index} (${node}) is gone; waiting for it to come back`);
        neighbours[key] = undefined;
        wired = false;
        void search();
      }
    }
    void detachNode(node).then((dropped) => {
      const how = reasons.get(node) === 'timeout' ? 'missed its heartbeats' : 'left';
      log(`network ${network}: node ${node}${names.get(node) ? ` (${names.get(node)})` : ''} ${how}; freed ${dropped} cached batch${dropped === 1 ? '' : 'es'}`);
      names.delete(node);
      reasons.delete(node);
      events.emit('nodeLost', node, dropped);
    });
  };
  nats.events.on('peerUp', onPeerUp);
  nats.events.on('peerDown', onPeerDown);
  system.events.on('nodeDown', onNodeDown);
  setImmediate(() => (closed ? undefined : needed.length === 0 ? apply() : void search())); // after the caller's own lines

  return {
    network,
    total,
    gates,
    events,
    wired: wiredOnce,
    inFlight: () => gates.reduce((n, g) => n + (g.gate?.inFlight ?? 0), 0),
    detachNode,
    getState,
    setState,
    close: async () => {
      if (closed) return;
      closed = true;
      stopSearch.abort();
      registry.subscription.unsubscribe();
      announcements.unsubscribe();
      nats.events.off('peerUp', onPeerUp);
      nats.events.off('peerDown', onPeerDown);
      system.events.off('nodeDown', onNodeDown);
      await chain.settled();
      unserve.forEach((stop) => stop());
      gates.forEach(({ ref, shards }) => [ref, ...shards.map((shard) => shard.ref)].forEach((r) => system.stop(r)));
      await Promise.all(deployment.nodes.map((node) => node.close()));
    },
  };
}
