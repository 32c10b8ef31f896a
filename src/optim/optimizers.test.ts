/**
 * The optimizers against hand-computed values (DC-ASGD: Zheng et al., ICML 2017, Algorithm 2;
 * SGD momentum and Nesterov in PyTorch's form) and against `tf.train.adam`, plus hyper-parameter
 * validation, state round trips and tensor hygiene.
 */
import * as tf from '@tensorflow/tfjs';
import { setupBackend } from '../../test/helpers.js';
import { CheckpointMismatchError, InvalidArgumentError } from '../errors.js';
import type { Optimizer } from './optimizer.js';
import { AdaGrad, Adam, DCASGD, SGD } from './optimizers.js';

beforeAll(setupBackend);

const W = [1, 2];
const W_FWD = [0.5, 2.5];
/** One gradient per step, so that the adaptive mean square accumulates over steps. */
const GRADS = [
  [0.2, -0.4],
  [0.1, 0.3],
  [-0.5, 0.05],
];
const LR = 0.1;

/**
 * Runs `steps` updates with the forward weights fixed at `W_FWD` (a batch that is always stale
 * against the same old version) and returns the weights after each step.
 */
function run(optimizer: Optimizer, steps = GRADS.length, wFwd: number[] | 'same' = W_FWD): number[][] {
  let w: tf.Tensor = tf.tensor1d(W);
  const forward = wFwd === 'same' ? undefined : tf.tensor1d(wFwd);
  const trace: number[][] = [];
  for (let s = 0; s < steps; s++) {
    const g = tf.tensor1d(GRADS[s] as number[]);
    const [next] = optimizer.update([w], [g], forward ? [forward] : undefined) as [tf.Tensor];
    trace.push(Array.from(next.dataSync()));
    tf.dispose([w, g]);
    w = next;
  }
  tf.dispose([w, forward]);
  return trace;
}

/** Reference DC-ASGD in plain JS (float64): constant or adaptive λ, optional momentum. */
function referenceDCASGD(variant: 'constant' | 'adaptive', momentum = 0, wFwd: number[] | 'same' = W_FWD): number[][] {
  const lambda = 0.04;
  const [lambda0, m, eps] = [2, 0.95, 1e-7];
  let w = [...W];
  let meanSquare = [0, 0];
  let v = [0, 0];
  const trace: number[][] = [];
  for (const g of GRADS) {
    const fwd = wFwd === 'same' ? w : wFwd;
    meanSquare = meanSquare.map((ms, i) => m * ms + (1 - m) * g[i]! ** 2);
    const compensated = g.map((gi, i) => {
      const lambdaT = variant === 'constant' ? lambda : lambda0 / Math.sqrt(meanSquare[i]! + eps);
      return gi + lambdaT * gi * gi * (w[i]! - fwd[i]!);
    });
    v = v.map((vi, i) => momentum * vi + compensated[i]!);
    w = w.map((wi, i) => wi - LR * (momentum > 0 ? v[i]! : compensated[i]!));
    trace.push(w);
  }
  return trace;
}

function expectClose(actual: number[][], expected: number[][], tolerance = 1e-6): void {
  expect(actual).toHaveLength(expected.length);
  actual.forEach((row, s) => row.forEach((value, i) => expect(Math.abs(value - expected[s]![i]!)).toBeLessThan(tolerance)));
}

describe('DC-ASGD', () => {
  test('constant variant: one step by hand', () => {
    // g̃ = g + λ g² (w − w_fwd) = [0.2 + 0.04·0.04·0.5, −0.4 + 0.04·0.16·(−0.5)] = [0.2008, −0.4032]
    // w ← w − 0.1 g̃ = [0.97992, 2.04032]
    expectClose(run(new DCASGD({ learningRate: LR, variant: 'constant' }), 1), [[0.97992, 2.04032]]);
  });

  test('adaptive variant: one step by hand', () => {
    // ms = 0.05 g² = [0.002, 0.008]; λ_t = 2/√(ms+1e-7)
    // g̃0 = 0.2 + (2/√0.0020001)·0.04·0.5, g̃1 = −0.4 + (2/√0.0080001)·0.16·(−0.5)
    const g0 = 0.2 + (2 / Math.sqrt(0.0020001)) * 0.04 * 0.5;
    const g1 = -0.4 + (2 / Math.sqrt(0.0080001)) * 0.16 * -0.5;
    expectClose(run(new DCASGD({ learningRate: LR, variant: 'adaptive' }), 1), [[1 - 0.1 * g0, 2 - 0.1 * g1]], 1e-5);
  });

  test.each(['constant', 'adaptive'] as const)('%s variant over three steps', (variant) => {
    const tolerance = variant === 'adaptive' ? 1e-5 : 1e-6;
    expectClose(run(new DCASGD({ learningRate: LR, variant })), referenceDCASGD(variant), tolerance);
  });

  test.each(['constant', 'adaptive'] as const)('%s variant with momentum 0.9 over three steps', (variant) => {
    const optimizer = new DCASGD({ learningRate: LR, variant, momentum: 0.9 });
    expectClose(run(optimizer), referenceDCASGD(variant, 0.9), 1e-5);
  });

  test.each(['constant', 'adaptive'] as const)('%s variant without staleness is plain SGD', (variant) => {
    // w_fwd = w: no compensation; the adaptive mean square still accumulates (checked below).
    const optimizer = new DCASGD({ learningRate: LR, variant });
    expectClose(run(optimizer, 3, 'same'), referenceDCASGD(variant, 0, 'same'));
    if (variant === 'adaptive') {
      const state = optimizer.getState();
      const ms = state.find((s) => s.name === 'slot/0/meanSquare');
      const expected = GRADS.reduce((acc, g) => acc.map((a, i) => 0.95 * a + 0.05 * g[i]! ** 2), [0, 0]);
      expectClose([Array.from(ms?.tensor.dataSync() ?? [])], [expected], 1e-7);
      state.forEach((s) => s.tensor.dispose());
    }
  });
});

describe('SGD', () => {
  test('momentum 0.9 by hand', () => {
    // v1 = g1; v2 = 0.9 v1 + g2; v3 = 0.9 v2 + g3; w ← w − η v
    const v1 = [0.2, -0.4];
    const v2 = [0.9 * 0.2 + 0.1, 0.9 * -0.4 + 0.3];
    const v3 = [0.9 * v2[0]! - 0.5, 0.9 * v2[1]! + 0.05];
    const w1 = [1 - 0.1 * v1[0]!, 2 - 0.1 * v1[1]!];
    const w2 = [w1[0]! - 0.1 * v2[0]!, w1[1]! - 0.1 * v2[1]!];
    const w3 = [w2[0]! - 0.1 * v3[0]!, w2[1]! - 0.1 * v3[1]!];
    expectClose(run(new SGD({ learningRate: LR, momentum: 0.9 })), [w1, w2, w3]);
  });

  test('Nesterov momentum 0.9 by hand', () => {
    // v ← μ v + g;  w ← w − η (g + μ v)
    let v = [0, 0];
    let w = [...W];
    const expected = GRADS.map((g) => {
      v = v.map((vi, i) => 0.9 * vi + g[i]!);
      w = w.map((wi, i) => wi - 0.1 * (g[i]! + 0.9 * v[i]!));
      return w;
    });
    expect(expected[0]).toEqual([1 - 0.1 * (0.2 + 0.18), 2 - 0.1 * (-0.4 - 0.36)]);
    expectClose(run(new SGD({ learningRate: LR, momentum: 0.9, nesterov: true })), expected);
  });

  test('plain SGD ignores the forward weights', () => {
    expectClose(run(new SGD({ learningRate: LR }), 1), [[1 - 0.02, 2 + 0.04]]);
  });
});

test('AdaGrad by hand (Dean et al. 2012, §4.1: η_i = γ / sqrt(Σ g_i²), accumulator from 0.1)', () => {
  // G ← G + g²; w ← w − γ g / sqrt(G)
  let G = [0.1, 0.1];
  let w = [...W];
  const expected = GRADS.map((g) => {
    G = G.map((Gi, i) => Gi + g[i]! * g[i]!);
    w = w.map((wi, i) => wi - (0.1 * g[i]!) / Math.sqrt(G[i]!));
    return w;
  });
  expect(expected[0]![0]).toBeCloseTo(1 - (0.1 * 0.2) / Math.sqrt(0.14), 12);
  expectClose(run(new AdaGrad({ learningRate: LR })), expected);
  expect(() => new AdaGrad({ learningRate: 0.1, initialAccumulatorValue: 0 })).toThrow(/initial accumulator value: 0/);
});

test('Adam matches tf.train.adam on the same gradients within 1e-6', () => {
  const [lr, beta1, beta2, epsilon] = [0.01, 0.9, 0.999, 1e-8];
  const ours = run(new Adam({ learningRate: lr, beta1, beta2, epsilon }));
  const variable = tf.variable(tf.tensor1d(W));
  const reference = tf.train.adam(lr, beta1, beta2, epsilon);
  const expected = GRADS.map((g) => {
    const grad = tf.tensor1d(g);
    reference.applyGradients([{ name: variable.name, tensor: grad }]);
    grad.dispose();
    return Array.from(variable.dataSync());
  });
  expect(Math.abs(expected[2]![0]! - W[0]!)).toBeGreaterThan(1e-2); // the weights did move
  expectClose(ours, expected, 1e-6);
  reference.dispose();
  variable.dispose();
});

describe('invalid hyper-parameters throw InvalidArgumentError naming the value', () => {
  const cases: [string, () => unknown, string][] = [
    ['negative learning rate', () => new SGD({ learningRate: -0.1 }), 'learning rate: -0.1.'],
    ['zero learning rate', () => new DCASGD({ learningRate: 0 }), 'learning rate: 0.'],
    ['NaN learning rate', () => new Adam({ learningRate: NaN }), 'learning rate: NaN.'],
    ['infinite learning rate', () => new SGD({ learningRate: Infinity }), 'learning rate: Infinity.'],
    ['momentum 1', () => new SGD({ learningRate: 0.1, momentum: 1 }), 'momentum: 1.'],
    ['DC-ASGD momentum 1', () => new DCASGD({ learningRate: 0.1, momentum: 1 }), 'momentum: 1.'],
    ['negative momentum', () => new SGD({ learningRate: 0.1, momentum: -0.5 }), 'momentum: -0.5.'],
    ['unknown variant', () => new DCASGD({ learningRate: 0.1, variant: 'fancy' as 'constant' }), "'fancy'"],
    ['negative lambda', () => new DCASGD({ learningRate: 0.1, lambda: -1 }), 'lambda: -1.'],
    ['NaN lambda0', () => new DCASGD({ learningRate: 0.1, lambda0: NaN }), 'lambda0: NaN.'],
    ['mean-square decay above 1', () => new DCASGD({ learningRate: 0.1, meanSquareDecay: 1.5 }), 'meanSquareDecay: 1.5.'],
    ['zero epsilon', () => new Adam({ epsilon: 0 }), 'epsilon: 0.'],
    ['beta1 1', () => new Adam({ beta1: 1 }), 'beta1: 1.'],
    ['setting a negative learning rate', () => (new SGD({ learningRate: 0.1 }).learningRate = -3), 'learning rate: -3.'],
  ];
  test.each(cases)('%s', (_name, make, value) => {
    expect(make).toThrow(InvalidArgumentError);
    expect(make).toThrow(value);
  });

  test('Nesterov without momentum', () => {
    expect(() => new SGD({ learningRate: 0.1, nesterov: true })).toThrow(InvalidArgumentError);
  });
});

describe('state', () => {
  const makers: [string, () => Optimizer][] = [
    ['dcasgd adaptive + momentum', () => new DCASGD({ learningRate: LR, momentum: 0.9 })],
    ['sgd momentum', () => new SGD({ learningRate: LR, momentum: 0.5 })],
    ['adam', () => new Adam({ learningRate: 0.01 })],
    ['adagrad', () => new AdaGrad({ learningRate: 0.1 })],
  ];

  test.each(makers)('%s: getState/setState round trip continues identically', (_name, make) => {
    const original = make();
    const full = run(original, 3);
    const early = make();
    run(early, 2);
    const state = early.getState();
    const restored = make();
    restored.setState(state);
    state.forEach((s) => s.tensor.dispose());
    expect(restored.iterations).toBe(2);
    // The third step of the restored optimizer from the second step's weights equals the original's.
    const w2 = tf.tensor1d(full[1] as number[]);
    const g3 = tf.tensor1d(GRADS[2] as number[]);
    const fwd = tf.tensor1d(W_FWD);
    const [w3] = restored.update([w2], [g3], [fwd]) as [tf.Tensor];
    expectClose([Array.from(w3.dataSync())], [full[2] as number[]], 1e-6);
    tf.dispose([w2, g3, fwd, w3]);
    [original, early, restored].forEach((o) => o.dispose());
  });

  test('setState with an unknown name throws CheckpointMismatchError and changes nothing', () => {
    const optimizer = new DCASGD({ learningRate: LR, momentum: 0.9 });
    run(optimizer, 2);
    const before = optimizer.getState();
    const tensors = tf.memory().numTensors;
    const bad = [
      { name: 'iterations', tensor: tf.scalar(7, 'int32') },
      { name: 'slot/0/momentum', tensor: tf.tensor1d([9, 9]) },
      { name: 'velocity', tensor: tf.tensor1d([1, 1]) },
    ];
    expect(() => optimizer.setState(bad)).toThrow(CheckpointMismatchError);
    expect(() => optimizer.setState(bad)).toThrow('velocity');
    bad.forEach((s) => s.tensor.dispose());
    expect(tf.memory().numTensors).toBe(tensors); // nothing half-loaded is left behind
    const after = optimizer.getState();
    expect(optimizer.iterations).toBe(2);
    expect(after.map((s) => s.name)).toEqual(before.map((s) => s.name));
    after.forEach((s, i) => expect(Array.from(s.tensor.dataSync())).toEqual(Array.from(before[i]!.tensor.dataSync())));
    [...before, ...after].forEach((s) => s.tensor.dispose());
    optimizer.dispose();
  });
});

describe('tensor hygiene', () => {
  const makers: [string, () => Optimizer][] = [
    ['sgd', () => new SGD({ learningRate: LR })],
    ['sgd nesterov', () => new SGD({ learningRate: LR, momentum: 0.9, nesterov: true })],
    ['adam', () => new Adam()],
    ['adagrad', () => new AdaGrad({ learningRate: LR })],
    ['dcasgd constant', () => new DCASGD({ learningRate: LR, variant: 'constant', momentum: 0.9 })],
    ['dcasgd adaptive', () => new DCASGD({ learningRate: LR })],
  ];

  test.each(makers)('%s: no tensor leaks per update, none after dispose', (_name, make) => {
    const start = tf.memory().numTensors;
    const optimizer = make();
    const params = [tf.tensor2d([[1, 2], [3, 4]]), tf.tensor1d([0.5, -0.5])];
    const forward = params.map((p) => tf.add(p, 0.1));
    const grads = params.map((p) => tf.onesLike(p));
    let current: tf.Tensor[] = params.map((p) => tf.clone(p));
    const step = () => {
      const next = optimizer.update(current, grads, forward);
      tf.dispose(current);
      current = next;
    };
    step(); // creates the slots
    const baseline = tf.memory().numTensors;
    for (let i = 0; i < 5; i++) step();
    expect(tf.memory().numTensors).toBe(baseline);
    optimizer.dispose();
    tf.dispose([...params, ...forward, ...grads, ...current]);
    expect(tf.memory().numTensors).toBe(start);
  });
});
