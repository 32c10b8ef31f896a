// Over 400 lines: the placement cost model and deployGates share the plan types and shard arithmetic.
/**
 * Placement of a network's gates on the main thread, in worker threads or in child processes,
 * whole or split by output units into shards. `'auto'` cuts the chain into shares of about equal
 * cost (a FLOPs proxy from the layers' parameter counts and output sizes), one per worker thread
 * (one per spare core) and a smaller one for the main thread, which takes the gates next to the
 * sentinels; a cut inside a Dense gate splits it (see {@link balancedPlacement}).
 */
import { availableParallelism } from 'node:os';
import * as tf from '@tensorflow/tfjs';
import type { ActorRef, ActorSystem } from '../actor/index.js';
import { fromErrorInfo, InvalidArgumentError, TransportError } from '../errors.js';
import { createLayer, Gate, type GateConfig, type GateSpec, type LayerConfig, layerConfig } from '../gate/index.js';
import { createOptimizer, DEFAULT_OPTIMIZER, type NamedTensor, Optimizer, type OptimizerSpec } from '../optim/index.js';
import type { GateMessage, GateStateSet, ShardInfo } from '../protocol/index.js';
import type { NodeOptions, RemoteNode } from '../transport/index.js';
import type { HostMessage, HostReply } from './host.js';
import { spawnProcessNode, spawnWorkerNode } from './nodes.js';

/** What planning gates reads of a network's options (`NetworkOptions` satisfies it). */
export interface PlanOptions {
  gates: GateSpec[];
  optimizer?: OptimizerSpec | (() => Optimizer);
  seed?: number;
  checkFinite?: boolean;
}

/** A place: the main thread, or a worker thread / child process shared by its `group`. */
export type Place = { kind: 'main' } | { kind: 'worker' | 'process'; group?: string };

/** One shard of a gate split by output units: where it runs and how many units it computes. */
export type ShardSpec = Place & { units: number };

/**
 * Where one gate runs. With `shards`, a gate of one Dense layer is split by output units
 * (tensor parallelism): each shard computes its `units` columns wherever it is placed, and the
 * gate itself (at its own place) computes the remaining units, which come first.
 */
export type PlacementSpec = Place & { shards?: ShardSpec[] };

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

/**
 * Where each gate runs, in words, e.g. `dense-512: worker auto-0; dense-256: main thread` or,
 * for a split gate, `dense-512: 384 units in worker w, the rest on the main thread`.
 * @param names the gates' names, in order; a gate without one is called `gate <index>`.
 */
export function describePlacement(specs: PlacementSpec[], names: (string | undefined)[]): string {
  const where = (p: Place) => (p.kind === 'main' ? 'main thread' : `${p.kind} ${p.group ?? ''}`.trim());
  return specs
    .map((p, i) => {
      const name = names[i] ?? `gate ${i}`;
      if (!p.shards) return `${name}: ${where(p)}`;
      return `${name}: ${p.shards.map((s) => `${s.units} units in ${where(s)}`).join(', ')}, the rest on the ${where(p)}`;
    })
    .join('; ');
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
 * portable; then it balances the chain over `cores − 1` worker threads and the main thread
 * (see {@link gateCosts}, {@link balancedPlacement}). `'worker'` and `'process'` give each gate
 * its own thread or process.
 * @throws InvalidArgumentError for a list of the wrong length, an unknown kind, or shards that
 *   {@link checkShards} refuses.
 */
export function resolvePlacement(placement: Placement, context: PlacementContext): PlacementSpec[] {
  const n = context.gates.length;
  if (Array.isArray(placement)) {
    if (placement.length !== n) throw new InvalidArgumentError(`Got ${placement.length} placement specs for ${n} gates; give one per gate.`);
    placement.forEach((spec, i) => {
      if (!isPlace(spec)) {
        throw new InvalidArgumentError(`Placement of gate ${i} is ${JSON.stringify(spec)}; use { kind: 'main' | 'worker' | 'process', group?, shards? }.`);
      }
      if (spec.shards !== undefined) checkShards(i, spec.shards, context.gates[i]?.layers ?? []);
    });
    return placement;
  }
  if (placement === 'main') return context.gates.map(() => ({ kind: 'main' }));
  if (placement === 'worker' || placement === 'process') return context.gates.map((_, i) => ({ kind: placement, group: `gate-${i}` }));
  if (placement !== 'auto') throw new InvalidArgumentError(`Unknown placement '${String(placement)}'; use 'auto', 'main', 'worker', 'process' or one spec per gate.`);
  const cores = context.cores ?? availableParallelism();
  if (!['wasm', 'cpu'].includes(context.backend) || cores < 2 || !context.portable) return context.gates.map(() => ({ kind: 'main' }));
  const units = context.gates.map((g) => shardableUnits(g.layers));
  if (n < 2 && units[0] === undefined) return context.gates.map(() => ({ kind: 'main' }));
  return balancedPlacement(gateCosts(context.gates, context.inputShape), units, cores);
}

const isPlace = (spec: unknown): spec is PlacementSpec => ['main', 'worker', 'process'].includes((spec as { kind?: string })?.kind ?? '');

/** Output units of a gate that can be split by units (one Dense layer), else undefined. */
export function shardableUnits(layers: tf.layers.Layer[]): number | undefined {
  if (layers.length !== 1 || layers[0]?.getClassName() !== 'Dense') return undefined;
  return (layers[0].getConfig() as { units: number }).units;
}

/**
 * Checks the shards of gate `index`.
 * @throws InvalidArgumentError when the gate is not one Dense layer, a shard is not a place with
 *   a positive integer `units`, or the shards leave the gate itself no unit.
 */
export function checkShards(index: number, shards: ShardSpec[], layers: tf.layers.Layer[]): void {
  const units = shardableUnits(layers);
  if (units === undefined) {
    throw new InvalidArgumentError(`Gate ${index} cannot be split into shards: only a gate of exactly one Dense layer can be split by output units. Remove its 'shards', or make it a gate of its own.`);
  }
  if (!Array.isArray(shards) || shards.length === 0) throw new InvalidArgumentError(`Gate ${index} has an empty 'shards' list; give at least one { kind, units }, or leave 'shards' out.`);
  let given = 0;
  shards.forEach((shard, j) => {
    if (!isPlace(shard) || !Number.isInteger(shard.units) || shard.units < 1) {
      throw new InvalidArgumentError(`Shard ${j} of gate ${index} is ${JSON.stringify(shard)}; use { kind: 'main' | 'worker' | 'process', group?, units } with units a positive integer.`);
    }
    given += shard.units;
  });
  if (given >= units) {
    throw new InvalidArgumentError(`The shards of gate ${index} take ${given} of its ${units} units; they must leave at least one unit to the gate itself.`);
  }
}

/**
 * The share of gate work the main thread takes in auto placement, relative to a worker thread:
 * it also runs the sentinels (batches, loss, metrics), routes the messages between threads and
 * joins split gates. With it, a split of the MNIST MLP's first gate on 2 cores would give its
 * worker shard 452 of the 512 units.
 */
export const MAIN_THREAD_SHARE = 0.7;

/** Auto placement does not split a Dense gate narrower than this many units. */
export const MIN_SPLIT_UNITS = 32;

/**
 * Extra work a split gate costs, as a fraction of the split-off part's own cost: each shard and
 * the gate's own part pay it (input copies and messages, the output join, the gradient slices,
 * a second optimizer step, smaller and less efficient matrix products). 0.25 is what the split
 * of the MNIST MLP's first gate cost on 2 cores in `npm run bench` (wasm, fused optimizer
 * kernels): its two threads used 17% more CPU per sample than gate 0 whole in a worker thread.
 */
export const SPLIT_OVERHEAD = 0.25;

/**
 * Estimated time per sample of the busiest place of `specs`, in cost units: each place's cost
 * divided by its capacity (1 for a worker, `mainShare` for the main thread); the parts of a
 * split gate cost `1 + splitOverhead` times their share of the gate.
 */
export function placementBottleneck(specs: PlacementSpec[], costs: number[], units: (number | undefined)[], mainShare = MAIN_THREAD_SHARE, splitOverhead = SPLIT_OVERHEAD): number {
  const load = new Map<string, number>();
  const add = (p: Place, cost: number) => {
    const key = p.kind === 'main' ? 'main' : `${p.kind}/${p.group ?? ''}`;
    load.set(key, (load.get(key) ?? 0) + cost / (p.kind === 'main' ? mainShare : 1));
  };
  specs.forEach((spec, g) => {
    const cost = costs[g] as number;
    if (!spec.shards) return add(spec, cost);
    const all = units[g] as number;
    const split = cost * (1 + splitOverhead);
    let own = all;
    for (const shard of spec.shards) {
      add(shard, (split * shard.units) / all);
      own -= shard.units;
    }
    add(spec, (split * own) / all);
  });
  return Math.max(...load.values());
}

/**
 * Balances a chain over `places` places (one worker thread per spare core, plus the main thread
 * last, next to the sentinels). Two candidates are compared by {@link placementBottleneck}, and
 * the faster is returned:
 * - whole gates: the contiguous partition that minimises the largest group's cost, the last
 *   group on the main thread;
 * - splits: the chain's cumulative cost is cut into shares, one per worker and `mainShare` of
 *   one for the main thread. A cut that falls inside a gate of one Dense layer of at least
 *   {@link MIN_SPLIT_UNITS} units splits that gate by output units, with the gate itself at the
 *   later place (nearer the sentinels) and a shard at the earlier one; any other cut moves to
 *   the nearer gate boundary. Slivers under 5% of a gate are not split off. A split pays
 *   `splitOverhead` ({@link SPLIT_OVERHEAD}), so it wins only where whole gates balance badly.
 * @param costs each gate's cost ({@link gateCosts}); `units` each gate's output units when it
 *   can be split ({@link shardableUnits}), else undefined; `places` threads, the main one last.
 */
export function balancedPlacement(costs: number[], units: (number | undefined)[], places: number, mainShare = MAIN_THREAD_SHARE, splitOverhead = SPLIT_OVERHEAD): PlacementSpec[] {
  const n = costs.length;
  const groups = Math.min(places, n);
  const whole: PlacementSpec[] = partition(costs, groups).map((g) => (g === groups - 1 ? { kind: 'main' } : { kind: 'worker', group: `auto-${g}` }));
  const split = splitPlacement(costs, units, places, mainShare);
  if (!split) return whole;
  const time = (specs: PlacementSpec[]) => placementBottleneck(specs, costs, units, mainShare, splitOverhead);
  return time(split) < time(whole) ? split : whole;
}

/**
 * The split candidate of {@link balancedPlacement} on its own, or undefined when no cut falls
 * inside a gate (then whole gates balance best). `hostGates` uses it: its worker threads take
 * only shards.
 */
export function splitPlacement(costs: number[], units: (number | undefined)[], places: number, mainShare = MAIN_THREAD_SHARE): PlacementSpec[] | undefined {
  const n = costs.length;
  const prefix = [0];
  costs.forEach((c, i) => prefix.push((prefix[i] as number) + c));
  const total = prefix[n] as number;
  // Cut positions in gate coordinates: b is the boundary before gate b, g + f a split of gate g.
  const cuts = [0];
  for (let k = 1; k < places; k++) {
    const target = (k * total) / (places - 1 + mainShare);
    let g = 0;
    while (g < n - 1 && (prefix[g + 1] as number) <= target) g++;
    const f = (target - (prefix[g] as number)) / (costs[g] as number);
    const divisible = (units[g] ?? 0) >= MIN_SPLIT_UNITS;
    const position = divisible && f >= 0.05 && f <= 0.95 ? g + f : f < 0.5 ? g : g + 1;
    cuts.push(Math.max(position, cuts[cuts.length - 1] as number));
  }
  cuts.push(n);
  if (cuts.every(Number.isInteger)) return undefined;
  const placeOf = (p: number): Place => (p === places - 1 ? { kind: 'main' } : { kind: 'worker', group: `auto-${p}` });
  return costs.map((_, g) => {
    const pieces: [number, number][] = []; // [place, fraction of gate g]
    for (let p = 0; p < places; p++) {
      const overlap = Math.min(g + 1, cuts[p + 1] as number) - Math.max(g, cuts[p] as number);
      if (overlap > 1e-9) pieces.push([p, overlap]);
    }
    const [primaryPlace] = pieces[pieces.length - 1] as [number, number];
    if (pieces.length === 1) return placeOf(primaryPlace);
    const all = units[g] as number;
    const shards = pieces.slice(0, -1).map(([p, fraction]) => ({ ...placeOf(p), units: Math.max(1, Math.round(fraction * all)) }));
    // Rounding must leave the gate itself at least one unit.
    for (let excess = shards.reduce((n, s) => n + s.units, 0) - (all - 1); excess > 0; excess--) {
      const widest = shards.reduce((a, b) => (b.units > a.units ? b : a));
      widest.units--;
    }
    return { ...placeOf(primaryPlace), shards };
  });
}

/**
 * Resolves each gate's optimizer for its place: an instance on the main thread (built from the
 * spec or factory), the spec elsewhere.
 * @throws InvalidArgumentError for a gate off the main thread whose optimizer is a factory.
 */
export function planGates(options: PlanOptions, specs: PlacementSpec[]): GatePlan[] {
  const shared = options.optimizer ?? DEFAULT_OPTIMIZER;
  return options.gates.map((gate, i) => {
    const main = specs[i]?.kind === 'main';
    if (!main && !gate.optimizer && typeof shared === 'function') {
      throw new InvalidArgumentError(`Gate ${i} runs in a ${specs[i]?.kind} but NetworkOptions.optimizer is a function; pass an OptimizerSpec such as { type: 'dcasgd', learningRate: 0.03, momentum: 0.9 } so that it can be built there.`);
    }
    const spec = gate.optimizer ?? shared;
    const optimizer = !main || spec instanceof Optimizer ? spec : typeof spec === 'function' ? spec() : createOptimizer(spec);
    return {
      name: gate.name ?? `gate-${i}`,
      layers: gate.layers,
      optimizer: optimizer as Optimizer | OptimizerSpec,
      spec: spec instanceof Optimizer || typeof spec === 'function' ? undefined : spec,
      seed: (options.seed ?? 0) + i,
      checkFinite: options.checkFinite,
    };
  });
}

/** Whether every gate can travel as data: optimizer specs only, layers not built yet. */
export const isPortable = (options: PlanOptions): boolean =>
  typeof options.optimizer !== 'function' && options.gates.every((g) => !(g.optimizer instanceof Optimizer) && g.layers.every((l) => !l.built));

/** One gate, ready to be placed: an optimizer instance for the main thread, a spec elsewhere. */
export interface GatePlan {
  name: string;
  layers: tf.layers.Layer[];
  optimizer: Optimizer | OptimizerSpec;
  /** The optimizer as a spec, when it was given as one (shards build their own optimizers from it). */
  spec?: OptimizerSpec;
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
  /** The shards of each split gate, by gate index. */
  shards: Map<number, ShardInfo[]>;
  /** The gate objects of the gates spawned on the main thread (their own part, for a split gate), by gate index. */
  local: Map<number, Gate>;
}

/**
 * Starts the worker threads and child processes that `specs` ask for (one per group, in
 * parallel), then spawns the gates in order, chaining their shapes: main-thread gates locally,
 * the others through their node's host (`host.spawnGate`). A gate with shards is spawned after
 * its shards, told about them, and given the initial weights of the whole layer. On failure
 * everything started is stopped again.
 * @throws InvalidArgumentError for a non-main gate without an optimizer spec; TransportError
 *   when a node does not start; the host's named error when a gate does not build there.
 */
export async function deployGates(system: ActorSystem, plans: GatePlan[], inputShape: number[], specs: PlacementSpec[], options: NodeOptions & { askTimeoutMs?: number } = {}): Promise<Deployment> {
  const keys = new Map<string, 'worker' | 'process'>();
  const placeKey = (place: Place, fallback: string): string | undefined => (place.kind === 'main' ? undefined : `${place.kind}:${place.group ?? fallback}`);
  specs.forEach((spec, i) => {
    const plan = plans[i] as GatePlan;
    if (spec.shards) {
      checkShards(i, spec.shards, plan.layers);
      if (!plan.spec) throw new InvalidArgumentError(`Gate ${i} (${plan.name}) is split into shards but its optimizer is not an OptimizerSpec; pass a spec such as { type: 'dcasgd', learningRate: 0.03, momentum: 0.9 } so that each shard can build its own.`);
      spec.shards.forEach((shard, j) => {
        const key = placeKey(shard, `${plan.name}-shard-${j}`);
        if (key) keys.set(key, shard.kind as 'worker' | 'process');
      });
    }
    if (spec.kind === 'main' && !spec.shards) return;
    const built = plan.layers.find((l) => l.built);
    if (built) throw new InvalidArgumentError(`Gate ${i} (${plan.name}) is placed in a ${spec.kind}${spec.shards ? ' and split into shards' : ''} but its layer ${built.name} is already built; its weights would not travel. Pass fresh layers, or place the gate on 'main'.`);
    if (spec.kind === 'main') return;
    if (plan.optimizer instanceof Optimizer) {
      throw new InvalidArgumentError(`Gate ${i} (${plan.name}) is placed in a ${spec.kind} but its optimizer is an instance; pass an OptimizerSpec such as { type: 'dcasgd', learningRate: 0.03, momentum: 0.9 } so that it can be built there.`);
    }
    keys.set(placeKey(spec, `gate-${i}`) as string, spec.kind);
  });
  const starts = await Promise.allSettled(
    [...keys].map(([key, kind]) => (kind === 'worker' ? spawnWorkerNode : spawnProcessNode)(system, { ...options, name: key.slice(kind.length + 1) })),
  );
  const nodes = starts.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
  const failed = starts.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  const byKey = new Map([...keys.keys()].map((key, i) => [key, starts[i]?.status === 'fulfilled' ? starts[i].value : undefined]));
  const gates: ActorRef<GateMessage>[] = [];
  const spawned: ActorRef<GateMessage>[] = [];
  const gateNodes = new Map<string, string[]>();
  const shards = new Map<number, ShardInfo[]>();
  const local = new Map<number, Gate>();

  /** Spawns one gate at `place`; returns its ref and per-sample output shape. */
  const spawnAt = async (place: Place, fallback: string, config: GateConfig, optimizer: Optimizer | OptimizerSpec, layers?: tf.layers.Layer[]) => {
    const key = placeKey(place, fallback);
    if (!key) {
      const gate = new Gate({ name: config.name, layers: layers ?? config.layers.map(createLayer), inputShape: config.inputShape, optimizer: optimizer instanceof Optimizer ? optimizer : createOptimizer(optimizer), seed: config.seed, checkFinite: config.checkFinite });
      const ref = system.spawn(() => gate, { name: gate.name, supervision: 'resume' });
      spawned.push(ref);
      return { ref, outputShape: gate.module.outputShape, gate };
    }
    const node = byKey.get(key) as RemoteNode;
    const reply = await system.ask<HostReply, HostMessage>(node.host, (replyTo) => ({ type: 'host.spawnGate', config, replyTo }), options.askTimeoutMs ?? 60_000);
    if (reply.type !== 'host.gateSpawned') throw reply.type === 'host.failed' ? fromErrorInfo(reply.error) : new TransportError(`Unexpected reply '${reply.type}' from ${node.host.name}.`);
    spawned.push(reply.gate);
    gateNodes.set(node.node, [...(gateNodes.get(node.node) ?? []), config.name]);
    return { ref: reply.gate, outputShape: reply.outputShape, gate: undefined };
  };

  try {
    if (failed) throw failed.reason;
    let shape = inputShape;
    for (const [i, plan] of plans.entries()) {
      const spec = specs[i] as PlacementSpec;
      const config: GateConfig = { name: plan.name, layers: plan.layers.map(layerConfig), inputShape: shape, optimizer: (plan.spec ?? plan.optimizer) as OptimizerSpec, seed: plan.seed, checkFinite: plan.checkFinite };
      if (!spec.shards) {
        const { ref, outputShape, gate } = await spawnAt(spec, `gate-${i}`, config, plan.optimizer, plan.layers);
        if (gate) local.set(i, gate);
        gates.push(ref);
        shape = outputShape;
        continue;
      }
      const whole = config.layers[0] as LayerConfig;
      const total = (whole.config as { units: number }).units;
      const withUnits = (units: number, suffix: string): LayerConfig => ({ className: whole.className, config: { ...whole.config, units, name: `${String(whole.config.name)}${suffix}` } });
      const infos: ShardInfo[] = [];
      for (const [j, shard] of spec.shards.entries()) {
        const shardConfig: GateConfig = { ...config, name: `${plan.name}/shard-${j}`, layers: [withUnits(shard.units, `_shard${j}`)], checkFinite: false };
        const { ref } = await spawnAt(shard, `${plan.name}-shard-${j}`, shardConfig, plan.spec as OptimizerSpec);
        infos.push({ ref, units: shard.units });
      }
      const ownUnits = total - spec.shards.reduce((n, s) => n + s.units, 0);
      const { ref, outputShape, gate } = await spawnAt(spec, `gate-${i}`, { ...config, layers: [withUnits(ownUnits, '')] }, plan.spec as OptimizerSpec);
      if (gate) local.set(i, gate);
      infos.forEach((info, j) => info.ref.tell({ type: 'gate.connect', primary: { ref, index: j, needDx: i > 0 } }));
      gates.push(ref);
      shards.set(i, infos);
      // The split gate starts from the weights the whole layer would have had (its initialiser
      // sees the whole shape); it splits them over its shards, so it must know them first.
      ref.tell({ type: 'gate.connect', shards: infos });
      const weights = initialWeightsOf(whole, shape);
      const reply = await system.ask<GateStateSet, GateMessage>(ref, (replyTo) => ({ type: 'gate.setState', weights, replyTo }), options.askTimeoutMs ?? 60_000);
      if (reply.error) throw fromErrorInfo(reply.error);
      shape = [...outputShape.slice(0, -1), total];
    }
    return { gates, outputShape: shape, nodes, gateNodes, shards, local };
  } catch (error) {
    spawned.forEach((gate) => system.stop(gate));
    await Promise.all(nodes.map((n) => n.close()));
    throw error;
  }
}

/** The initial weights of a layer built from `config` for inputs `[batch, ...inputShape]`, named as a gate names them. */
function initialWeightsOf(config: LayerConfig, inputShape: number[]): NamedTensor[] {
  const layer = createLayer(config);
  layer.build([null, ...inputShape]);
  const named = layer.weights.map((v) => ({ name: `layer0/${v.originalName.split('/').pop() ?? v.originalName}`, tensor: tf.clone(v.read()) }));
  layer.weights.forEach((v) => v.dispose());
  return named;
}
