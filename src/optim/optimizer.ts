/**
 * The optimizer interface shared by every gate. An optimizer is functional on parameters: it
 * takes the current parameters, their gradients and the parameter version that the batch's
 * forward pass used, and returns new parameter tensors, so that a gate can keep older versions
 * alive for weight stashing. Per-parameter state (momentum, moments) lives in named slots.
 */
import * as tf from '@tensorflow/tfjs';
import { CheckpointMismatchError, InvalidArgumentError, ShapeMismatchError } from '../errors.js';

/** A tensor with a stable name, as stored in checkpoints. */
export interface NamedTensor {
  name: string;
  tensor: tf.Tensor;
}

/** Validates that a hyper-parameter is a finite number inside `[min, max]`, or throws. */
export function checkRange(name: string, value: number, min: number, max = Infinity, openMin = false): number {
  const tooLow = openMin ? value <= min : value < min;
  if (!Number.isFinite(value) || tooLow || value > max) {
    const lower = openMin ? `> ${min}` : `>= ${min}`;
    const upper = max === Infinity ? '' : ` and <= ${max}`;
    throw new InvalidArgumentError(`Invalid ${name}: ${value}. It must be a finite number ${lower}${upper}.`);
  }
  return value;
}

/** Learning rate as a function of the number of updates applied so far (0-based). */
export type LearningRateSchedule = (iteration: number) => number;

/**
 * Cosine decay (Loshchilov & Hutter, SGDR, ICLR 2017, Eq. 5, one cycle) from `initial` to
 * `final` over `steps` updates, then constant at `final`, after an optional linear warm-up of
 * `warmup` updates from `initial / 10`.
 * @throws InvalidArgumentError for non-positive `initial` or `steps`.
 */
export function cosineDecay(options: { initial: number; steps: number; final?: number; warmup?: number }): LearningRateSchedule {
  const { initial, steps } = options;
  const final = options.final ?? 0;
  const warmup = options.warmup ?? 0;
  checkRange('initial learning rate', initial, 0, Infinity, true);
  checkRange('decay steps', steps, 0, Infinity, true);
  return (t) => {
    if (t < warmup) return initial * (0.1 + (0.9 * t) / warmup);
    const progress = Math.min(1, (t - warmup) / Math.max(1, steps - warmup));
    return final + 0.5 * (initial - final) * (1 + Math.cos(Math.PI * progress));
  };
}

/**
 * Base class of all optimizers: owns the step count, the learning rate, the slots and their
 * serialisation. Subclasses implement only {@link Optimizer.updateParam}.
 */
export abstract class Optimizer {
  /** Short identifier, e.g. `'dcasgd'`, stored in checkpoints. */
  abstract readonly name: string;
  /** Number of updates applied so far. */
  iterations = 0;
  private lr: number | LearningRateSchedule;
  private readonly slots = new Map<string, tf.Tensor>();

  /** @throws InvalidArgumentError for a learning rate that is not a finite number > 0. */
  constructor(learningRate: number | LearningRateSchedule) {
    this.lr = typeof learningRate === 'function' ? learningRate : checkRange('learning rate', learningRate, 0, Infinity, true);
  }

  /** The step size η of the next update (a schedule is evaluated at `iterations − 1` during an update). */
  get learningRate(): number {
    if (typeof this.lr === 'number') return this.lr;
    return checkRange('scheduled learning rate', this.lr(Math.max(0, this.iterations - 1)), 0);
  }

  /** Sets a constant learning rate or a schedule. */
  set learningRate(value: number | LearningRateSchedule) {
    this.lr = typeof value === 'function' ? value : checkRange('learning rate', value, 0, Infinity, true);
  }

  /**
   * Applies one update and returns the new parameters; the caller owns them. Inputs are not
   * disposed. `forwardParams[i]` is the version of `params[i]` that the forward pass of the
   * batch used (equal to `params[i]` when nothing was stale).
   *
   * @throws ShapeMismatchError when the three lists or their shapes disagree.
   */
  update(params: tf.Tensor[], grads: tf.Tensor[], forwardParams: tf.Tensor[] = params): tf.Tensor[] {
    if (grads.length !== params.length || forwardParams.length !== params.length) {
      throw new ShapeMismatchError(
        `Optimizer got ${params.length} parameters, ${grads.length} gradients and ${forwardParams.length} forward parameters; they must match.`,
      );
    }
    params.forEach((w, i) => {
      const g = grads[i] as tf.Tensor;
      if (!tf.util.arraysEqual(w.shape, g.shape)) {
        throw new ShapeMismatchError(`Gradient ${i} has shape [${g.shape}] but its parameter has [${w.shape}].`);
      }
    });
    this.iterations++;
    return tf.tidy(() =>
      params.map((w, i) => this.updateParam(i, w, grads[i] as tf.Tensor, forwardParams[i] as tf.Tensor)),
    );
  }

  /** Computes the new value of parameter `index`; runs inside `tf.tidy`. */
  protected abstract updateParam(index: number, w: tf.Tensor, g: tf.Tensor, wForward: tf.Tensor): tf.Tensor;

  /** Reads a slot, creating it with `init` (kept outside the current tidy) on first use. */
  protected slot(index: number, name: string, init: () => tf.Tensor): tf.Tensor {
    const key = `${index}/${name}`;
    let value = this.slots.get(key);
    if (!value) {
      value = tf.keep(init());
      this.slots.set(key, value);
    }
    return value;
  }

  /** Replaces a slot's value, keeping the new tensor and disposing the old. */
  protected setSlot(index: number, name: string, value: tf.Tensor): void {
    const key = `${index}/${name}`;
    const old = this.slots.get(key);
    this.slots.set(key, tf.keep(value));
    if (old && old !== value) old.dispose();
  }

  /** Snapshot of the optimizer state (copies; the caller owns them), named `slot/<index>/<name>`. */
  getState(): NamedTensor[] {
    const state: NamedTensor[] = [{ name: 'iterations', tensor: tf.scalar(this.iterations, 'int32') }];
    for (const [key, value] of this.slots) state.push({ name: `slot/${key}`, tensor: tf.clone(value) });
    return state;
  }

  /**
   * Restores state saved by {@link getState}; tensors are copied.
   * @throws CheckpointMismatchError for a name this optimizer does not use.
   */
  setState(state: NamedTensor[]): void {
    const next = new Map<string, tf.Tensor>();
    let iterations = 0;
    for (const { name, tensor } of state) {
      if (name === 'iterations') iterations = tensor.dataSync()[0] as number;
      else if (name.startsWith('slot/')) next.set(name.slice(5), tf.keep(tf.clone(tensor)));
      else {
        next.forEach((t) => t.dispose());
        throw new CheckpointMismatchError(`Optimizer state '${name}' is not known to the ${this.name} optimizer.`);
      }
    }
    this.dispose();
    next.forEach((t, k) => this.slots.set(k, t));
    this.iterations = iterations;
  }

  /** Frees every slot. */
  dispose(): void {
    this.slots.forEach((t) => t.dispose());
    this.slots.clear();
  }
}
