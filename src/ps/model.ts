/**
 * What a model replica trains: DeepDist's API for any model (a set of named tensors), with
 * `gradient(model, batch) → update` run on replicas against a local copy of the parameters and
 * `descent(model, update)` run on the parameter shards; and {@link chainModel}, which makes one
 * from a chain of gates (layer configs) with the gates' own forward and backward arithmetic.
 */
import { pathToFileURL } from 'node:url';
import type * as tf from '@tensorflow/tfjs';
import { allowedPath, type Batch, type DataAccess } from '../data/index.js';
import { InvalidArgumentError } from '../errors.js';
import { createLayer, GateModule } from '../gate/index.js';
import type { NamedTensor } from '../optim/index.js';
import type { ModelSpec } from '../protocol/index.js';
import { type Loss, lossByName } from '../sentinel/index.js';

/**
 * DeepDist's `descent(model, update)` (run on the parameter shards): the new values of the
 * shard's parts from their current values and a pushed update (the replica's summed gradients),
 * by part name. Runs inside the shard's update; it must not dispose its inputs, and returns new
 * tensors of the same names and shapes, which the shard then owns.
 */
export type Descent = (params: ReadonlyMap<string, tf.Tensor>, update: ReadonlyMap<string, tf.Tensor>, info: { replica: string; staleness: number }) => NamedTensor[];

/**
 * A model for Downpour SGD: any set of named float32 tensors. Loaded on each node from its own
 * disk (a module's export, see `ModelSpec`); nothing executable crosses the wire.
 */
export interface DownpourModel {
  /** Every parameter's name and initial value (the caller owns them). */
  init(): NamedTensor[];
  /**
   * DeepDist's `gradient(model, batch)`: the gradient of the batch's mean loss at `params` (by
   * name; the caller owns the returned tensors, one per parameter, same shapes), and that loss.
   * Must not dispose `params` or the batch.
   */
  gradient(params: ReadonlyMap<string, tf.Tensor>, batch: Batch): { grads: NamedTensor[]; loss: number };
  /** Outputs for `x` (`[batch, ...inputShape]`) at `params`, e.g. logits `[batch, classes]`; the caller owns them. */
  predict?(params: ReadonlyMap<string, tf.Tensor>, x: tf.Tensor): tf.Tensor;
  /** DeepDist's `descent`; without it the shards apply their optimizer. */
  descent?: Descent;
  /** Frees what the model holds. */
  dispose?(): void;
}

/**
 * A model from a chain of gates given as layer configs (a `NetworkDescription`'s gates): forward
 * through each gate's layers, the loss on the last output, backward through them. Parameters are
 * named `<gate>/<layer>/<weight>`. Its `gradient` copies new parameters into the gates only when
 * it is given a different map than last time (after a fetch).
 * @throws InvalidArgumentError for an unknown loss or layer class; ShapeMismatchError for layers
 *   that do not chain.
 */
export function chainModel(spec: Extract<ModelSpec, { kind: 'layers' }>): DownpourModel {
  const loss: Loss = lossByName(spec.loss ?? 'softmaxCrossEntropy');
  let shape = spec.inputShape;
  const modules = spec.gates.map((gate, i) => {
    const module = new GateModule(gate.layers.map(createLayer), shape, (spec.seed ?? 1) * 1000 + i);
    shape = module.outputShape;
    return { name: gate.name, module };
  });
  const names = modules.map(({ name, module }) => module.paramNames.map((p) => `${name}/${p}`));
  let installed: ReadonlyMap<string, tf.Tensor> | undefined;
  const install = (params: ReadonlyMap<string, tf.Tensor>) => {
    if (params === installed) return;
    modules.forEach(({ module }, g) =>
      module.params.replace(
        (names[g] as string[]).map((name) => {
          const t = params.get(name);
          if (!t) throw new InvalidArgumentError(`Parameter '${name}' is missing from the fetched parameters.`);
          return t.clone();
        }),
      ),
    );
    installed = params;
  };
  return {
    init: () => modules.flatMap(({ module }, g) => module.params.current.tensors.map((t, i) => ({ name: (names[g] as string[])[i] as string, tensor: t.clone() }))),
    gradient(params, batch) {
      install(params);
      const states = [];
      let h = batch.x;
      for (const { module } of modules) {
        const { y, state } = module.forward(h);
        if (h !== batch.x) h.dispose();
        states.push(state);
        h = y;
      }
      const { value, gradient } = loss.compute(h, batch.y, true);
      h.dispose();
      const grads: NamedTensor[][] = [];
      let dy = gradient as tf.Tensor;
      for (let g = modules.length - 1; g >= 0; g--) {
        const { module } = modules[g] as (typeof modules)[number];
        const state = states[g] as (typeof states)[number];
        const out = module.backward(dy, state, g > 0);
        module.release(state);
        dy.dispose();
        grads[g] = out.grads.map((t, i) => ({ name: (names[g] as string[])[i] as string, tensor: t }));
        dy = out.dx as tf.Tensor;
      }
      return { grads: grads.flat(), loss: value };
    },
    predict(params, x) {
      install(params);
      let h = x;
      for (const { module } of modules) {
        const y = module.predict(h);
        if (h !== x) h.dispose();
        h = y;
      }
      return h;
    },
    dispose() {
      for (const { module } of modules) {
        module.dispose();
        module.layers.forEach((layer) => {
          try {
            layer.dispose();
          } catch {
            layer.weights.forEach((v) => v.dispose());
          }
        });
      }
    },
  };
}

const isModel = (value: unknown): value is DownpourModel =>
  typeof value === 'object' && value !== null && typeof (value as DownpourModel).init === 'function' && typeof (value as DownpourModel).gradient === 'function';

/**
 * The model a {@link ModelSpec} names, built on this node: a chain of gates, or a module from
 * this node's disk whose export (default `default`) is a {@link DownpourModel} or a function
 * (maybe async) returning one. `access` limits modules as it limits data modules.
 * @throws InvalidArgumentError for a module outside `access`, one that does not import, or an
 *   export that is not a model.
 */
export async function modelFromSpec(spec: ModelSpec, access: DataAccess = {}): Promise<DownpourModel> {
  if (spec.kind === 'layers') return chainModel(spec);
  if (access.roots !== undefined && !access.modules) {
    throw new InvalidArgumentError(`Model module ${spec.path} is refused: this node runs no modules for other nodes (start it with --data-modules to allow modules under its --data-root).`);
  }
  const file = allowedPath(spec.path, access);
  const exportName = spec.export ?? 'default';
  let module: Record<string, unknown>;
  try {
    module = (await import(pathToFileURL(file).href)) as Record<string, unknown>;
  } catch (error) {
    throw new InvalidArgumentError(`Cannot import the model module ${file}: ${(error as Error).message}`, { cause: error });
  }
  const value = Object.hasOwn(module, exportName) ? module[exportName] : undefined;
  const model = typeof value === 'function' ? await (value as () => unknown)() : value;
  if (!isModel(model)) throw new InvalidArgumentError(`The export '${exportName}' of ${file} is not a DownpourModel (an object with init() and gradient()) or a function returning one.`);
  return model;
}
