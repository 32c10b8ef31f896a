/**
 * Placement of a network's gates on the main thread, in worker threads or in child processes.
 * `'auto'` splits the chain into contiguous groups of about equal cost (a FLOPs proxy from the
 * layers' parameter counts and output sizes) over one worker thread per spare core plus the
 * main thread, which takes the last group (the one next to the sentinels).
 */
import { availableParallelism } from 'node:os';
import type * as tf from '@tensorflow/tfjs';
import type { ActorRef, ActorSystem } from '../actor/index.js';
import { fromErrorInfo, InvalidArgumentError, TransportError } from '../errors.js';
import { createLayer, Gate, type GateConfig, layerConfig } from '../gate/index.js';
import { createOptimizer, Optimizer, type OptimizerSpec } from '../optim/index.js';
import type { GateMessage } from '../protocol.js';
import type { NodeOptions, RemoteNode } from '../transport/channel.js';
import { spawnProcessNode } from '../transport/process.js';
import { spawnWorkerNode } from '../transport/worker.js';
import type { HostMessage, HostReply } from './host.js';
import type { NetworkOptions } from './network.js';

/** Where one gate runs: the main thread, or a worker thread / child process shared by its `group`. */
export type PlacementSpec = { kind: 'main' } | { kind: 'worker' | 'process'; group?: string };

/** Placement of a whole network: a rule for every gate, or one spec per gate. */
export type Placement = 'auto' | 'main' | 'worker' | 'process' | PlacementSpec[];

/**
 * Estimated training cost of each gate, in multiply-accumulates per sample: for every layer,
 * parameters × output positions (1 for dense, H×W for convolutions) plus output elements;
 * ×3 for forward + two backward products, ×2 for the first gate (it computes no input gradient).
 * Layers are rebuilt from their configs for counting; the given layers are not touched.
 * @throws ShapeMismatchError-like errors from tfjs when a layer cannot take its input shape.
 */
export function gateCosts(gates: { layers: tf.layers.Layer[] }[], inputShape: number[]): number[] {
  let shape: (number | null)[] = [null, ...inputShape];
  return gates.map((gate, g) => {
    let cost = 0;
    for (const layer of gate.layers) {
      const clone = createLayer(layerConfig(layer));
      try {
        clone.build(shape);
        const out = clone.computeOutputShape(shape) as (number | null)[];
        const elements = out.slice(1).reduce<number>((n, d) => n * (d ?? 1), 1);
        const positions = out.length > 2 ? out.slice(1, -1).reduce<number>((n, d) => n * (d ?? 1), 1) : 1;
        cost += clone.countParams() * positions * (g === 0 ? 2 : 3) + elements;
        shape = out;
      } finally {
        clone.weights.forEach((w) => w.dispose());
      }
    }
    return cost;
  });
}

/**
 * Splits `costs` into `groups` contiguous, non-empty runs that minimise the largest run's sum
 * (linear partition by dynamic programming, O(groups × n²)); returns the group of each item.
 * @throws InvalidArgumentError when `groups` is not in `[1, costs.length]`.
 */
export function partition(costs: number[], groups: number): number[] {
  const n = costs.length;
  if (!Number.isInteger(groups) || groups < 1 || groups > n) throw new InvalidArgumentError(`Cannot split ${n} gates into ${groups} groups; use 1 to ${n}.`);
  const prefix = [0];
  costs.forEach((c, i) => prefix.push((prefix[i] as number) + c));
  const sum = (i: number, j: number) => (prefix[j] as number) - (prefix[i] as number);
  // best[k][j]: smallest max-run over the first j items in k runs; cut[k][j]: where the last run starts.
  const best = Array.from({ length: groups + 1 }, () => new Array<number>(n + 1).fill(Infinity));
  const cut = Array.from({ length: groups + 1 }, () => new Array<number>(n + 1).fill(0));
  (best[0] as number[])[0] = 0;
  for (let k = 1; k <= groups; k++) {
    for (let j = k; j <= n; j++) {
      for (let i = k - 1; i < j; i++) {
        const value = Math.max((best[k - 1] as number[])[i] as number, sum(i, j));
        if (value < ((best[k] as number[])[j] as number)) {
          (best[k] as number[])[j] = value;
          (cut[k] as number[])[j] = i;
        }
      }
    }
  }
  const group = new Array<number>(n).fill(0);
  for (let k = groups, j = n; k >= 1; k--) {
    const i = (cut[k] as number[])[j] as number;
    for (let m = i; m < j; m++) group[m] = k - 1;
    j = i;
  }
  return group;
}

/** What {@link resolvePlacement} needs to know about the network and the machine. */
export interface PlacementContext {
  gates: { layers: tf.layers.Layer[] }[];
  inputShape: number[];
  /** The main thread's backend, e.g. `'wasm'`. */
  backend: string;
  /** Whether every gate can be sent as data (layer configs, optimizer spec). */
  portable: boolean;
  /** Cores available; default `os.availableParallelism()`. */
  cores?: number;
}

/**
 * Turns a placement into one spec per gate. `'auto'` places everything on the main thread
 * unless the backend is wasm or cpu, more than one core is available and the gates are
 * portable; then it uses `min(cores − 1, gates − 1)` worker threads (see {@link gateCosts},
 * {@link partition}). `'worker'` and `'process'` give each gate its own thread or process.
 * @throws InvalidArgumentError for a list of the wrong length or an unknown kind.
 */
export function resolvePlacement(placement: Placement, context: PlacementContext): PlacementSpec[] {
  const n = context.gates.length;
  if (Array.isArray(placement)) {
    if (placement.length !== n) throw new InvalidArgumentError(`Got ${placement.length} placement specs for ${n} gates; give one per gate.`);
    placement.forEach((spec, i) => {
      if (!['main', 'worker', 'process'].includes((spec as { kind?: string })?.kind ?? '')) {
        throw new InvalidArgumentError(`Placement of gate ${i} is ${JSON.stringify(spec)}; use { kind: 'main' | 'worker' | 'process', group? }.`);
      }
    });
    return placement;
  }
  if (placement === 'main') return context.gates.map(() => ({ kind: 'main' }));
  if (placement === 'worker' || placement === 'process') return context.gates.map((_, i) => ({ kind: placement, group: `gate-${i}` }));
  if (placement !== 'auto') throw new InvalidArgumentError(`Unknown placement '${String(placement)}'; use 'auto', 'main', 'worker', 'process' or one spec per gate.`);
  const cores = context.cores ?? availableParallelism();
  if (!['wasm', 'cpu'].includes(context.backend) || cores < 2 || n < 2 || !context.portable) return context.gates.map(() => ({ kind: 'main' }));
  const groups = Math.min(cores, n);
  const group = partition(gateCosts(context.gates, context.inputShape), groups);
  return group.map((g) => (g === groups - 1 ? { kind: 'main' } : { kind: 'worker', group: `auto-${g}` }));
}

/**
 * Resolves each gate's optimizer for its place: an instance on the main thread (built from the
 * spec or factory), the spec elsewhere.
 * @throws InvalidArgumentError for a gate off the main thread whose optimizer is a factory.
 */
export function planGates(options: NetworkOptions, specs: PlacementSpec[]): GatePlan[] {
  const shared = options.optimizer ?? { type: 'dcasgd', learningRate: 0.1 };
  return options.gates.map((gate, i) => {
    const main = specs[i]?.kind === 'main';
    if (!main && !gate.optimizer && typeof shared === 'function') {
      throw new InvalidArgumentError(`Gate ${i} runs in a ${specs[i]?.kind} but NetworkOptions.optimizer is a function; pass an OptimizerSpec such as { type: 'dcasgd', learningRate: 0.1 } so that it can be built there.`);
    }
    const spec = gate.optimizer ?? shared;
    const optimizer = !main || spec instanceof Optimizer ? spec : typeof spec === 'function' ? spec() : createOptimizer(spec);
    return { name: gate.name ?? `gate-${i}`, layers: gate.layers, optimizer: optimizer as Optimizer | OptimizerSpec, seed: (options.seed ?? 0) + i, checkFinite: options.checkFinite };
  });
}

/** Whether every gate can travel as data: optimizer specs only, layers not built yet. */
export const isPortable = (options: NetworkOptions): boolean =>
  typeof options.optimizer !== 'function' && options.gates.every((g) => !(g.optimizer instanceof Optimizer) && g.layers.every((l) => !l.built));

/** One gate, ready to be placed: an optimizer instance for the main thread, a spec elsewhere. */
export interface GatePlan {
  name: string;
  layers: tf.layers.Layer[];
  optimizer: Optimizer | OptimizerSpec;
  seed: number;
  checkFinite?: boolean;
}

/** Gates placed and spawned, and the nodes started for them. */
export interface Deployment {
  gates: ActorRef<GateMessage>[];
  /** Per-sample output shape of the last gate. */
  outputShape: number[];
  /** Worker threads and child processes started for the gates, in group order. */
  nodes: RemoteNode[];
  /** The gates' names by the id of the node that hosts them (main-thread gates excluded). */
  gateNodes: Map<string, string[]>;
}

/**
 * Starts the worker threads and child processes that `specs` ask for (one per group, in
 * parallel), then spawns the gates in order, chaining their shapes: main-thread gates locally,
 * the others through their node's host (`host.spawnGate`). On failure everything started is
 * stopped again.
 * @throws InvalidArgumentError for a non-main gate without an optimizer spec; TransportError
 *   when a node does not start; the host's named error when a gate does not build there.
 */
export async function deployGates(system: ActorSystem, plans: GatePlan[], inputShape: number[], specs: PlacementSpec[], options: NodeOptions & { askTimeoutMs?: number } = {}): Promise<Deployment> {
  const keys = new Map<string, 'worker' | 'process'>();
  specs.forEach((spec, i) => {
    if (spec.kind === 'main') return;
    if (plans[i]?.optimizer instanceof Optimizer) {
      throw new InvalidArgumentError(`Gate ${i} (${plans[i]?.name}) is placed in a ${spec.kind} but its optimizer is an instance; pass an OptimizerSpec such as { type: 'dcasgd', learningRate: 0.1 } so that it can be built there.`);
    }
    const built = plans[i]?.layers.find((l) => l.built);
    if (built) throw new InvalidArgumentError(`Gate ${i} (${plans[i]?.name}) is placed in a ${spec.kind} but its layer ${built.name} is already built; its weights would not travel. Pass fresh layers, or place the gate on 'main'.`);
    keys.set(`${spec.kind}:${spec.group ?? `gate-${i}`}`, spec.kind);
  });
  const starts = await Promise.allSettled(
    [...keys].map(([key, kind]) => (kind === 'worker' ? spawnWorkerNode : spawnProcessNode)(system, { ...options, name: key.slice(kind.length + 1) })),
  );
  const nodes = starts.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
  const failed = starts.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  const byKey = new Map([...keys.keys()].map((key, i) => [key, starts[i]?.status === 'fulfilled' ? starts[i].value : undefined]));
  const gates: ActorRef<GateMessage>[] = [];
  const gateNodes = new Map<string, string[]>();
  try {
    if (failed) throw failed.reason;
    let shape = inputShape;
    for (const [i, plan] of plans.entries()) {
      const spec = specs[i] as PlacementSpec;
      if (spec.kind === 'main') {
        const gate = new Gate({ ...plan, inputShape: shape, optimizer: plan.optimizer as Optimizer });
        gates.push(system.spawn(() => gate, { name: gate.name, supervision: 'resume' }));
        shape = gate.module.outputShape;
        continue;
      }
      const node = byKey.get(`${spec.kind}:${spec.group ?? `gate-${i}`}`) as RemoteNode;
      const config: GateConfig = { name: plan.name, layers: plan.layers.map(layerConfig), inputShape: shape, optimizer: plan.optimizer as OptimizerSpec, seed: plan.seed, checkFinite: plan.checkFinite };
      const reply = await system.ask<HostReply, HostMessage>(node.host, (replyTo) => ({ type: 'host.spawnGate', config, replyTo }), options.askTimeoutMs ?? 60_000);
      if (reply.type !== 'host.gateSpawned') throw reply.type === 'host.failed' ? fromErrorInfo(reply.error) : new TransportError(`Unexpected reply '${reply.type}' from ${node.host.name}.`);
      gates.push(reply.gate);
      gateNodes.set(node.node, [...(gateNodes.get(node.node) ?? []), plan.name]);
      shape = reply.outputShape;
    }
    return { gates, outputShape: shape, nodes, gateNodes };
  } catch (error) {
    gates.forEach((gate) => system.stop(gate));
    await Promise.all(nodes.map((n) => n.close()));
    throw error;
  }
}
