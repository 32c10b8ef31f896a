/**
 * Networks as data: a {@link NetworkDescription} holds a network's input shape, its gates as
 * tfjs-layers configs (class name and `getConfig()`, rebuilt through tfjs's serialization
 * registry) and its optimizer spec. It is plain JSON, so a network process, a worker thread or
 * another machine can build the same gates from it. Descriptions are loaded from files on the
 * node's own disk ({@link loadNetworkDescription}); no code ever crosses the wire.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { z } from 'zod';
import { InvalidArgumentError } from '../errors.js';
import { createLayer, type GateSpec, layerConfig, type LayerConfig } from '../gate/index.js';
import { DEFAULT_OPTIMIZER, type OptimizerSpec } from '../optim/index.js';
import { MNIST_MODELS, type MnistModelName, mnistModel } from './mnist.js';

/** A network as JSON: per-sample input shape, gates as layer configs, optimizer spec. */
export interface NetworkDescription {
  /** The model's name; with a fingerprint of the gates it identifies the model on a NATS registry. */
  name: string;
  /** Per-sample input shape of gate 0, e.g. `[784]`. */
  inputShape: number[];
  gates: { name: string; layers: LayerConfig[] }[];
  /** Every gate's optimizer; default {@link DEFAULT_OPTIMIZER}. */
  optimizer?: OptimizerSpec;
}

/** What {@link describeNetwork} takes: gates with built or unbuilt tfjs layers. */
export interface DescribeOptions {
  name: string;
  inputShape: number[];
  gates: GateSpec[];
  optimizer?: OptimizerSpec;
  /**
   * Seed for initializers that have none (`seed: null` in their config): layer i of the network
   * gets `seed + i`, so every process that builds the description starts from the same weights.
   * Default 1.
   */
  seed?: number;
}

const shape = z.array(z.number().int().min(1).max(2 ** 24)).min(1).max(8);
const descriptionSchema = z.object({
  name: z.string().min(1).max(100),
  inputShape: shape,
  gates: z
    .array(z.object({ name: z.string().min(1).max(100), layers: z.array(z.object({ className: z.string().min(1).max(100), config: z.record(z.string(), z.unknown()) })).min(1).max(64) }))
    .min(1)
    .max(256),
  optimizer: z.object({ type: z.enum(['sgd', 'adam', 'adagrad', 'dcasgd']) }).passthrough().optional(),
});

/** Sets `seed` on every initializer config with a null or missing seed; returns a copy. */
function seeded(config: Record<string, unknown>, seed: number): Record<string, unknown> {
  const out: Record<string, unknown> = { ...config };
  for (const [key, value] of Object.entries(config)) {
    const init = value as { className?: unknown; config?: Record<string, unknown> } | null;
    if (key.endsWith('Initializer') && init && typeof init === 'object' && init.config && 'seed' in init.config && (init.config.seed === null || init.config.seed === undefined)) {
      out[key] = { ...init, config: { ...init.config, seed } };
    }
  }
  return out;
}

/**
 * Describes a network as data: each layer as its class name and `getConfig()`, initializers
 * without a seed seeded.
 * @throws InvalidArgumentError for a gate with an optimizer of its own (a description gives one
 *   optimizer spec for every gate), or a description that does not validate.
 */
export function describeNetwork(options: DescribeOptions): NetworkDescription {
  let i = options.seed ?? 1;
  const gates = options.gates.map((gate, g) => {
    if (gate.optimizer !== undefined) throw new InvalidArgumentError(`Gate ${gate.name ?? g} has its own optimizer; a description gives one optimizer spec for all gates.`);
    return {
      name: gate.name ?? `gate-${g}`,
      layers: gate.layers.map((layer) => {
        const { className, config } = layerConfig(layer);
        return { className, config: seeded(config, i++) };
      }),
    };
  });
  return validateDescription({ name: options.name, inputShape: options.inputShape, gates, ...(options.optimizer ? { optimizer: options.optimizer } : {}) }, `network '${options.name}'`);
}

/**
 * Checks that a value is a network description (shapes, names, layer configs as objects). The
 * layers themselves are checked when they are built ({@link networkGates}).
 * @throws InvalidArgumentError naming `source` and the first problem.
 */
export function validateDescription(value: unknown, source: string): NetworkDescription {
  const parsed = descriptionSchema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new InvalidArgumentError(`${source} is not a network description: ${issue?.path.join('.') || 'value'}: ${issue?.message}. Export describeNetwork({ name, inputShape, gates, optimizer }).`);
  }
  const names = parsed.data.gates.map((g) => g.name);
  const twice = names.find((n, i) => names.indexOf(n) !== i);
  if (twice) throw new InvalidArgumentError(`${source}: two gates are named '${twice}'; gate names must be unique.`);
  return value as NetworkDescription;
}

/**
 * Builds the gates of a description (fresh tfjs layers, not yet built).
 * @throws InvalidArgumentError for a layer class tfjs does not know.
 */
export function networkGates(description: NetworkDescription): GateSpec[] {
  return description.gates.map((gate) => ({ name: gate.name, layers: gate.layers.map(createLayer) }));
}

/** A copy of a config without the keys that do not change the architecture: layer names and initializer seeds. */
function architecture(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(architecture);
  if (value === null || typeof value !== 'object') return value;
  return Object.fromEntries(Object.entries(value).filter(([key]) => key !== 'name' && key !== 'seed').map(([key, v]) => [key, architecture(v)]));
}

/**
 * A short fingerprint of a description's architecture (input shape, layer classes and configs,
 * without layer names and initializer seeds): two hosts of one network name must agree on it.
 */
export function describeFingerprint(description: NetworkDescription): string {
  const json = JSON.stringify(architecture({ inputShape: description.inputShape, layers: description.gates.map((g) => g.layers) }));
  return createHash('sha256').update(json).digest('hex').slice(0, 12);
}

/** The description of a built-in MNIST model (`'mlp'` or `'cnn'`), input `[784]`. */
export function mnistDescription(name: MnistModelName, seed = 1): NetworkDescription {
  return describeNetwork({ name, inputShape: [784], gates: mnistModel(name, seed), seed });
}

/**
 * Loads a network description from this node's disk: a built-in name (`mlp`, `cnn`), a `.json`
 * file, or a JavaScript/TypeScript module whose `default` (or `network`) export is a description
 * or a function of the seed returning one.
 * @throws InvalidArgumentError when the file cannot be read or imported, or holds no valid description.
 */
export async function loadNetworkDescription(model: string, seed = 1): Promise<NetworkDescription> {
  if ((MNIST_MODELS as readonly string[]).includes(model)) return mnistDescription(model as MnistModelName, seed);
  const file = path.resolve(model);
  let value: unknown;
  try {
    if (file.endsWith('.json')) {
      value = JSON.parse(await readFile(file, 'utf8'));
    } else {
      const module = (await import(pathToFileURL(file).href)) as Record<string, unknown>;
      value = module.default ?? module.network;
      if (typeof value === 'function') value = await (value as (seed: number) => unknown)(seed);
    }
  } catch (error) {
    throw new InvalidArgumentError(`Cannot load the network description ${model}: ${(error as Error).message}. Give ${MNIST_MODELS.join(' or ')}, a .json file, or a module exporting describeNetwork(...).`, { cause: error });
  }
  return validateDescription(value, model);
}

/** The optimizer spec of a description, or the default one. */
export function descriptionOptimizer(description: NetworkDescription): OptimizerSpec {
  return description.optimizer ?? DEFAULT_OPTIMIZER;
}
