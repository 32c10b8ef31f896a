/**
 * The optimizers, in increasing complexity: SGD with momentum, Adam, and delay-compensated
 * ASGD (DC-ASGD) in its constant and adaptive variants.
 */
import * as tf from '@tensorflow/tfjs';
import { InvalidArgumentError } from '../errors.js';
import { type FusedArgs, type FusedKernelName, runFused } from '../kernels/index.js';
import { checkRange, type LearningRateSchedule, Optimizer } from './optimizer.js';

/** Options of {@link SGD}. */
export interface SGDOptions {
  /** Step size η (> 0), or a schedule of it. */
  learningRate: number | LearningRateSchedule;
  /** Momentum μ in [0, 1); 0 is plain SGD. Default 0. */
  momentum?: number;
  /** Use Nesterov momentum. Default false. */
  nesterov?: boolean;
  /** L2 penalty coefficient added to the gradient (`g + wd * w`). Default 0. */
  weightDecay?: number;
}

/**
 * Stochastic gradient descent with optional (Nesterov) momentum, in the form of Sutskever et
 * al. (ICML 2013) as implemented by PyTorch:
 * `v ← μ v + g;  w ← w − η v` (Nesterov: `w ← w − η (g + μ v)`).
 */
export class SGD extends Optimizer {
  readonly name: string = 'sgd';
  readonly momentum: number;
  readonly nesterov: boolean;
  readonly weightDecay: number;

  constructor(options: SGDOptions) {
    super(options.learningRate);
    this.momentum = checkRange('momentum', options.momentum ?? 0, 0, 0.999999);
    this.nesterov = options.nesterov ?? false;
    this.weightDecay = checkRange('weight decay', options.weightDecay ?? 0, 0);
    if (this.nesterov && this.momentum === 0) {
      throw new InvalidArgumentError('Nesterov momentum needs momentum > 0; set momentum or drop nesterov.');
    }
  }

  /** Applies the optional weight decay and the momentum buffer to a gradient. */
  protected direction(index: number, w: tf.Tensor, g: tf.Tensor): tf.Tensor {
    const grad = this.weightDecay > 0 ? tf.add(g, tf.mul(w, this.weightDecay)) : g;
    if (this.momentum === 0) return grad;
    const v = tf.add(tf.mul(this.slot(index, 'momentum', () => tf.zerosLike(w)), this.momentum), grad);
    this.setSlot(index, 'momentum', v);
    return this.nesterov ? tf.add(grad, tf.mul(v, this.momentum)) : v;
  }

  protected updateParam(index: number, w: tf.Tensor, g: tf.Tensor, _wForward?: tf.Tensor): tf.Tensor {
    if (this.weightDecay === 0 && !this.nesterov) {
      const fused = this.fusedStep(index, 'sgd', { w, g }, {});
      if (fused) return fused;
    }
    return tf.sub(w, tf.mul(this.direction(index, w, g), this.learningRate));
  }

  /**
   * One fused step (see `fused.ts`) of `kernel`, or of its `_momentum` form when momentum is on
   * (the momentum slot is read and replaced here); returns the new parameter, or undefined when
   * no fused kernel can run. Then no slot was replaced; a missing momentum slot may have been
   * created as zeros, as the tfjs path would create it.
   */
  protected fusedStep(
    index: number,
    kernel: 'sgd' | 'dc_constant' | 'dc_adaptive' | 'dc_adaptive_stale',
    inputs: { w: tf.Tensor; g: tf.Tensor; wf?: tf.Tensor; ms?: tf.Tensor },
    args: Omit<FusedArgs, 'lr' | 'mu'>,
  ): tf.Tensor | undefined {
    const momentum = this.momentum > 0;
    const v = momentum ? this.slot(index, 'momentum', () => tf.zerosLike(inputs.w)) : undefined;
    const name = (momentum ? `${kernel}_momentum` : kernel) as FusedKernelName;
    const out = runFused(name, { ...inputs, v }, { ...args, mu: this.momentum, lr: this.learningRate });
    if (!out) return undefined;
    if (out.v) this.setSlot(index, 'momentum', out.v);
    if (out.ms) this.setSlot(index, 'meanSquare', out.ms);
    return out.w;
  }
}

/** Options of {@link Adam}. */
export interface AdamOptions {
  learningRate?: number | LearningRateSchedule;
  beta1?: number;
  beta2?: number;
  epsilon?: number;
}

/**
 * Adam (Kingma & Ba, ICLR 2015, Algorithm 1): `m ← β1 m + (1−β1) g`, `v ← β2 v + (1−β2) g²`,
 * `w ← w − η m̂ / (√v̂ + ε)` with bias-corrected `m̂ = m / (1−β1^t)`, `v̂ = v / (1−β2^t)`.
 * Defaults η 0.001, β1 0.9, β2 0.999, ε 1e-8.
 */
export class Adam extends Optimizer {
  readonly name = 'adam';
  readonly beta1: number;
  readonly beta2: number;
  readonly epsilon: number;

  constructor(options: AdamOptions = {}) {
    super(options.learningRate ?? 0.001);
    this.beta1 = checkRange('beta1', options.beta1 ?? 0.9, 0, 0.999999);
    this.beta2 = checkRange('beta2', options.beta2 ?? 0.999, 0, 0.999999);
    this.epsilon = checkRange('epsilon', options.epsilon ?? 1e-8, 0, Infinity, true);
  }

  protected updateParam(index: number, w: tf.Tensor, g: tf.Tensor): tf.Tensor {
    const t = this.iterations;
    const stepSize = (this.learningRate * Math.sqrt(1 - this.beta2 ** t)) / (1 - this.beta1 ** t);
    const fused = runFused(
      'adam',
      { w, g, ms: this.slot(index, 'm', () => tf.zerosLike(w)), v: this.slot(index, 'v', () => tf.zerosLike(w)) },
      { a: this.beta1, b: 1 - this.beta1, c: this.beta2, d: 1 - this.beta2, eps: this.epsilon, lr: stepSize },
    );
    if (fused?.ms && fused.v) {
      this.setSlot(index, 'm', fused.ms);
      this.setSlot(index, 'v', fused.v);
      return fused.w;
    }
    const m = tf.add(tf.mul(this.slot(index, 'm', () => tf.zerosLike(w)), this.beta1), tf.mul(g, 1 - this.beta1));
    const v = tf.add(
      tf.mul(this.slot(index, 'v', () => tf.zerosLike(w)), this.beta2),
      tf.mul(tf.square(g), 1 - this.beta2),
    );
    this.setSlot(index, 'm', m);
    this.setSlot(index, 'v', v);
    return tf.sub(w, tf.mul(tf.div(m, tf.add(tf.sqrt(v), this.epsilon)), stepSize));
  }
}

/** Options of {@link DCASGD}. */
export interface DCASGDOptions {
  /** Step size η (> 0), or a schedule of it. */
  learningRate: number | LearningRateSchedule;
  /** `'constant'` (DC-ASGD-c) or `'adaptive'` (DC-ASGD-a). Default `'adaptive'`. */
  variant?: 'constant' | 'adaptive';
  /** λ of the constant variant. Default 0.04. */
  lambda?: number;
  /** λ0 of the adaptive variant. Default 2. */
  lambda0?: number;
  /** Decay m of the adaptive variant's mean square. Default 0.95. */
  meanSquareDecay?: number;
  /** ε of the adaptive variant. Default 1e-7. */
  epsilon?: number;
  /** Momentum μ applied to the compensated gradient (0 = none). Default 0. */
  momentum?: number;
}

/**
 * Delay-compensated ASGD (Zheng et al., "Asynchronous Stochastic Gradient Descent with Delay
 * Compensation", ICML 2017, Algorithm 2). A gradient `g` computed at the stale weights `w_fwd`
 * (those the batch's forward pass used) is corrected towards the current weights `w` with a
 * cheap diagonal approximation of the Hessian, `λ g ⊙ g`:
 *
 * `g̃ = g + λ · g ⊙ g ⊙ (w − w_fwd)`,   `w ← w − η g̃`.
 *
 * Constant variant (DC-ASGD-c): λ fixed (default 0.04). Adaptive variant (DC-ASGD-a):
 * `meanSquare ← m · meanSquare + (1 − m) · g ⊙ g`, `λ_t = λ0 / √(meanSquare + ε)` elementwise
 * (defaults λ0 2, m 0.95, ε 1e-7). With `momentum` μ > 0 the compensated gradient feeds a
 * momentum buffer (`v ← μ v + g̃`, `w ← w − η v`), an extension beyond the paper.
 */
export class DCASGD extends SGD {
  override readonly name = 'dcasgd';
  readonly variant: 'constant' | 'adaptive';
  readonly lambda: number;
  readonly lambda0: number;
  readonly meanSquareDecay: number;
  readonly epsilon: number;

  constructor(options: DCASGDOptions) {
    super({ learningRate: options.learningRate, momentum: options.momentum ?? 0 });
    const variant = options.variant ?? 'adaptive';
    if (variant !== 'constant' && variant !== 'adaptive') {
      throw new InvalidArgumentError(`Unknown DC-ASGD variant '${String(variant)}'; use 'constant' or 'adaptive'.`);
    }
    this.variant = variant;
    this.lambda = checkRange('lambda', options.lambda ?? 0.04, 0);
    this.lambda0 = checkRange('lambda0', options.lambda0 ?? 2, 0);
    this.meanSquareDecay = checkRange('meanSquareDecay', options.meanSquareDecay ?? 0.95, 0, 0.999999);
    this.epsilon = checkRange('epsilon', options.epsilon ?? 1e-7, 0, Infinity, true);
  }

  /** The delay-compensated gradient `g̃` (updates the adaptive mean square). */
  compensate(index: number, w: tf.Tensor, g: tf.Tensor, wForward: tf.Tensor): tf.Tensor {
    if (this.variant === 'constant' && w === wForward) return g;
    const g2 = tf.square(g);
    let scaled: tf.Tensor;
    if (this.variant === 'constant') {
      scaled = tf.mul(g2, this.lambda);
    } else {
      const m = this.meanSquareDecay;
      const meanSquare = tf.add(
        tf.mul(this.slot(index, 'meanSquare', () => tf.zerosLike(w)), m),
        tf.mul(g2, 1 - m),
      );
      this.setSlot(index, 'meanSquare', meanSquare); // tracks every gradient, stale or not
      if (w === wForward) return g;
      scaled = tf.mul(tf.div(g2, tf.sqrt(tf.add(meanSquare, this.epsilon))), this.lambda0);
    }
    return tf.add(g, tf.mul(scaled, tf.sub(w, wForward)));
  }

  protected override updateParam(index: number, w: tf.Tensor, g: tf.Tensor, wForward: tf.Tensor = w): tf.Tensor {
    const stale = w !== wForward;
    const fused =
      this.variant === 'constant'
        ? stale
          ? this.fusedStep(index, 'dc_constant', { w, g, wf: wForward }, { a: this.lambda })
          : this.fusedStep(index, 'sgd', { w, g }, {})
        : this.fusedStep(
            index,
            stale ? 'dc_adaptive_stale' : 'dc_adaptive',
            { w, g, wf: stale ? wForward : undefined, ms: this.slot(index, 'meanSquare', () => tf.zerosLike(w)) },
            { a: this.meanSquareDecay, b: 1 - this.meanSquareDecay, c: this.lambda0, eps: this.epsilon },
          );
    return fused ?? super.updateParam(index, w, this.compensate(index, w, g, wForward));
  }
}

/** Options of {@link AdaGrad}. */
export interface AdaGradOptions {
  /** γ, the base learning rate. */
  learningRate: number | LearningRateSchedule;
  /** Starting value of every accumulator `G` (> 0; keeps the first steps finite). Default 0.1, as tf.keras and tfjs. */
  initialAccumulatorValue?: number;
}

/**
 * AdaGrad (Duchi, Hazan & Singer, JMLR 2011), the per-parameter learning rate Downpour SGD used
 * on its parameter server (Dean et al., "Large Scale Distributed Deep Networks", NIPS 2012, §4.1:
 * `η_i,K = γ / sqrt(Σ_{j≤K} Δw_i,j²)`): `G ← G + g²; w ← w − γ g / sqrt(G)`, with `G` starting at
 * `initialAccumulatorValue`. The slot is `accumulator`.
 */
export class AdaGrad extends Optimizer {
  readonly name: string = 'adagrad';
  readonly initialAccumulatorValue: number;

  /** @throws InvalidArgumentError for a learning rate or initial accumulator that is not > 0. */
  constructor(options: AdaGradOptions) {
    super(options.learningRate);
    this.initialAccumulatorValue = checkRange('initial accumulator value', options.initialAccumulatorValue ?? 0.1, 0, Infinity, true);
  }

  protected updateParam(index: number, w: tf.Tensor, g: tf.Tensor): tf.Tensor {
    const accumulator = tf.add(this.slot(index, 'accumulator', () => tf.fill(w.shape, this.initialAccumulatorValue)), tf.square(g));
    this.setSlot(index, 'accumulator', accumulator);
    return tf.sub(w, tf.div(tf.mul(g, this.learningRate), tf.sqrt(accumulator)));
  }
}
