/**
 * A gate's computation without its actor: a chain of built tfjs-layers layers, their versioned
 * trainable parameters, and forward / backward / update at explicit versions.
 */
import * as tf from '@tensorflow/tfjs';
import { CheckpointMismatchError, ShapeMismatchError } from '../errors.js';
import type { NamedTensor, Optimizer } from '../optim/index.js';
import { createOp, type LayerOp, type Saved, type SeedSource } from './ops.js';
import { ParamStore, type ParamVersion } from './params.js';

/** The forward state of one in-flight training batch. */
export interface ForwardState {
  readonly version: ParamVersion;
  readonly saved: Saved[];
  /** Output shape `[batch, ...outputShape]`, which the gradient must match. */
  readonly outputShape: number[];
}

function shortName(variable: tf.LayerVariable): string {
  return variable.originalName.split('/').pop() ?? variable.originalName;
}

/** Layers, parameters and the forward/backward/update arithmetic of one gate. */
export class GateModule {
  readonly ops: LayerOp[];
  readonly params: ParamStore;
  /** Per-sample output shape, e.g. `[10]`. */
  readonly outputShape: number[];
  /** Stable names of the trainable parameters, `layer<i>/<weight>`, in parameter order. */
  readonly paramNames: string[];
  private readonly offsets: number[] = [];
  private seed: number;

  /**
   * Builds the layers for inputs of per-sample shape `inputShape` (e.g. `[784]`).
   * @throws ShapeMismatchError when a layer cannot take the previous layer's output.
   */
  constructor(
    readonly layers: tf.layers.Layer[],
    readonly inputShape: number[],
    seed = 0,
  ) {
    this.seed = seed;
    const seeds: SeedSource = { nextSeed: () => (this.seed = (this.seed * 1103515245 + 12345) % 2147483648) };
    let shape: (number | null)[] = [null, ...inputShape];
    this.ops = layers.map((layer, i) => {
      try {
        const rank = shape.length;
        if (!layer.built) layer.build(shape);
        shape = layer.computeOutputShape(shape) as (number | null)[];
        return createOp(layer, rank, seeds);
      } catch (error) {
        throw new ShapeMismatchError(
          `Layer ${i} (${layer.getClassName()}) cannot take input of shape [${shape}]: ${(error as Error).message}`,
          { cause: error },
        );
      }
    });
    this.outputShape = shape.slice(1) as number[];
    const initial: tf.Tensor[] = [];
    this.paramNames = [];
    this.ops.forEach((op, i) => {
      this.offsets.push(initial.length);
      for (const v of op.weights) {
        initial.push(tf.clone(v.read()));
        this.paramNames.push(`layer${i}/${shortName(v)}`);
      }
    });
    this.offsets.push(initial.length);
    this.params = new ParamStore(initial);
  }

  private slice(tensors: tf.Tensor[], op: number): tf.Tensor[] {
    return tensors.slice(this.offsets[op], this.offsets[op + 1]);
  }

  /** Training forward at the current version; the caller owns `y` and the returned state. */
  forward(x: tf.Tensor): { y: tf.Tensor; state: ForwardState } {
    const version = this.params.acquire();
    const saved: Saved[] = [];
    let h = x;
    this.ops.forEach((op, i) => {
      const out = op.forward(h, this.slice(version.tensors, i), true);
      if (h !== x) h.dispose();
      saved.push(out.saved);
      h = out.y;
    });
    return { y: h === x ? tf.clone(x) : h, state: { version, saved, outputShape: h.shape } };
  }

  /** Evaluation forward at the current version (dropout off); the caller owns the result. */
  predict(x: tf.Tensor): tf.Tensor {
    const w = this.params.current.tensors;
    let h = x;
    this.ops.forEach((op, i) => {
      const out = op.forward(h, this.slice(w, i), false);
      if (h !== x) h.dispose();
      out.saved.tensors.forEach((t) => t.dispose());
      h = out.y;
    });
    return h === x ? tf.clone(x) : h;
  }

  /**
   * Gradients at the version the forward used (weight stashing). Frees the saved activations
   * but keeps the version held; pass it to {@link update} or {@link release}.
   */
  backward(dy: tf.Tensor, state: ForwardState, needDx: boolean): { dx?: tf.Tensor; grads: tf.Tensor[] } {
    const grads: tf.Tensor[][] = [];
    let g = dy;
    for (let i = this.ops.length - 1; i >= 0; i--) {
      const op = this.ops[i] as LayerOp;
      const out = op.backward(g, state.saved[i] as Saved, this.slice(state.version.tensors, i), needDx || i > 0);
      if (g !== dy) g.dispose();
      grads[i] = out.grads;
      g = out.dx as tf.Tensor;
    }
    this.freeSaved(state);
    const flat = grads.flat();
    if (!needDx) return { grads: flat };
    return { dx: g === dy ? tf.clone(dy) : g, grads: flat };
  }

  /** Applies the optimizer with the forward version as `w_fwd`, then releases that version. */
  update(optimizer: Optimizer, grads: tf.Tensor[], state: ForwardState): void {
    const next = optimizer.update(this.params.current.tensors, grads, state.version.tensors);
    this.params.replace(next);
    this.release(state);
    this.syncVariables();
  }

  /** Frees a batch's forward state without updating (abort, detach). */
  release(state: ForwardState): void {
    this.freeSaved(state);
    this.params.release(state.version);
  }

  private freeSaved(state: ForwardState): void {
    for (const saved of state.saved) {
      saved.tensors.forEach((t) => t.dispose());
      saved.tensors.length = 0;
    }
  }

  /** Points the layers' variables at the current version (for autograd layers and export). */
  private syncVariables(): void {
    const current = this.params.current.tensors;
    this.ops.forEach((op, i) => op.weights.forEach((v, j) => v.write(current[(this.offsets[i] as number) + j] as tf.Tensor)));
  }

  /** Copies of all weights by stable name: trainable (current version) and non-trainable. */
  getWeights(): NamedTensor[] {
    const current = this.params.current.tensors;
    const named = this.paramNames.map((name, i) => ({ name, tensor: tf.clone(current[i] as tf.Tensor) }));
    this.layers.forEach((layer, i) => {
      for (const v of layer.nonTrainableWeights) named.push({ name: `layer${i}/${shortName(v)}`, tensor: tf.clone(v.read()) });
    });
    return named;
  }

  /**
   * Replaces all weights (copies), after checking every name and shape; all or nothing.
   * @throws CheckpointMismatchError listing missing, unexpected and mis-shaped weights.
   */
  setWeights(weights: NamedTensor[]): void {
    const expected = new Map<string, number[]>();
    this.paramNames.forEach((name, i) => expected.set(name, (this.params.current.tensors[i] as tf.Tensor).shape));
    const nonTrainable = new Map<string, tf.LayerVariable>();
    this.layers.forEach((layer, i) =>
      layer.nonTrainableWeights.forEach((v) => {
        nonTrainable.set(`layer${i}/${shortName(v)}`, v);
        expected.set(`layer${i}/${shortName(v)}`, v.shape as number[]);
      }),
    );
    const given = new Map(weights.map((w) => [w.name, w.tensor]));
    const problems: string[] = [];
    for (const [name, shape] of expected) {
      const t = given.get(name);
      if (!t) problems.push(`missing '${name}' [${shape}]`);
      else if (!tf.util.arraysEqual(t.shape, shape)) problems.push(`'${name}' has shape [${t.shape}], expected [${shape}]`);
    }
    for (const name of given.keys()) if (!expected.has(name)) problems.push(`unexpected '${name}'`);
    if (problems.length > 0) {
      throw new CheckpointMismatchError(
        `Weights do not match this gate's architecture: ${problems.join('; ')}. Load a checkpoint saved from the same network definition.`,
      );
    }
    this.params.replace(this.paramNames.map((name) => tf.clone(given.get(name) as tf.Tensor)));
    for (const [name, v] of nonTrainable) {
      const copy = tf.clone(given.get(name) as tf.Tensor);
      v.write(copy); // the variable now shares the copy's buffer
      copy.dispose();
    }
    this.syncVariables();
  }

  /** Frees every parameter version. Layers' variables are freed with the layers. */
  dispose(): void {
    this.params.dispose();
  }
}
