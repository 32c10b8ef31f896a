/**
 * Competitor 2: the single-thread limit. A plain synchronous loop over the same shuffled batches
 * akkordeon's sentinel draws (`ArrayProvider`), forward `matMul + bias + relu`, backward written
 * out by hand with explicit transposes (`tf.matMul(tf.transpose(a), b)`; on wasm the
 * `transposeA/B` flags of `matMul` fall back to a slow scalar loop), plain SGD (learning rate
 * 0.1) on `tf.Variable`s. No loss read-back, no metrics, no finiteness checks: nothing but the
 * arithmetic of one training step.
 */
import * as tf from '@tensorflow/tfjs';
import { type BenchData, type BenchResult, type Competitor, LAYER_SIZES, stopwatch, testAccuracy, trainProvider } from './common.js';

const LEARNING_RATE = 0.1;

/** `a · bᵀ` for 2-D tensors, transposing whichever side moves fewer elements. */
function matMulTransposeB(a: tf.Tensor2D, b: tf.Tensor2D): tf.Tensor2D {
  const [rows, inner] = a.shape;
  const cols = b.shape[0];
  if (cols * inner <= rows * (inner + cols)) return tf.matMul(a, tf.transpose(b));
  return tf.transpose(tf.matMul(b, tf.transpose(a))) as tf.Tensor2D;
}

/** The MLP's parameters: weights `[in, out]` (Glorot uniform, as tfjs dense) and zero biases `[out]`. */
class Mlp {
  readonly weights: tf.Variable<tf.Rank.R2>[] = [];
  readonly biases: tf.Variable<tf.Rank.R1>[] = [];
  private readonly lr = tf.scalar(LEARNING_RATE);

  constructor() {
    for (let i = 0; i + 1 < LAYER_SIZES.length; i++) {
      const [fanIn, fanOut] = [LAYER_SIZES[i] as number, LAYER_SIZES[i + 1] as number];
      const w = tf.initializers.glorotUniform({}).apply([fanIn, fanOut]) as tf.Tensor2D;
      this.weights.push(tf.variable(w));
      const b = tf.zeros([fanOut]) as tf.Tensor1D;
      this.biases.push(tf.variable(b));
      tf.dispose([w, b]); // a variable keeps its own reference to the data
    }
  }

  /** Logits `[batch, 10]` for images `[batch, 784]`; keeps the activations when `keep` is given. */
  forward(x: tf.Tensor2D, keep?: tf.Tensor2D[]): tf.Tensor2D {
    let h = x;
    const last = this.weights.length - 1;
    this.weights.forEach((w, i) => {
      const z = tf.add(tf.matMul(h, w), this.biases[i] as tf.Tensor1D) as tf.Tensor2D;
      h = i < last ? tf.relu(z) : z;
      if (i < last) keep?.push(h);
    });
    return h;
  }

  /** One SGD step on a batch: images `[batch, 784]` float32, labels `[batch]` int32. */
  step(x: tf.Tensor2D, labels: tf.Tensor1D): void {
    tf.tidy(() => {
      const activations: tf.Tensor2D[] = [x];
      const logits = this.forward(x, activations);
      // d(mean softmax cross-entropy)/d logits = (softmax − onehot) / batch.
      let dz = tf.div(tf.sub(tf.softmax(logits), tf.oneHot(labels, 10)), x.shape[0]) as tf.Tensor2D;
      for (let i = this.weights.length - 1; i >= 0; i--) {
        const input = activations[i] as tf.Tensor2D;
        const w = this.weights[i] as tf.Variable<tf.Rank.R2>;
        const dw = tf.matMul(tf.transpose(input), dz);
        const db = tf.sum(dz, 0);
        if (i > 0) dz = tf.mul(matMulTransposeB(dz, w), tf.step(input)) as tf.Tensor2D;
        w.assign(tf.sub(w, tf.mul(dw, this.lr)));
        const b = this.biases[i] as tf.Variable<tf.Rank.R1>;
        b.assign(tf.sub(b, tf.mul(db, this.lr)));
      }
    });
  }

  dispose(): void {
    tf.dispose([...this.weights, ...this.biases, this.lr]);
  }
}

/** A hand-written synchronous training loop with explicit transposes and plain SGD. */
export const handwrittenCompetitor: Competitor = {
  name: 'hand-written loop',
  key: 'hand',
  async train(data: BenchData, epochs: number): Promise<BenchResult> {
    const before = tf.memory().numTensors;
    const mlp = new Mlp();
    const run = (provider: ReturnType<typeof trainProvider>, epoch: number): number => {
      let samples = 0;
      const batches = provider.batches(epoch, data.batchSize, true);
      for (let next = batches.next(); !next.done; next = batches.next()) {
        const { x, y, size } = next.value;
        mlp.step(x as tf.Tensor2D, y as tf.Tensor1D);
        tf.dispose([x, y]);
        samples += size;
      }
      return samples;
    };

    if (data.warmupBatches > 0) run(trainProvider(data, data.warmupBatches * data.batchSize), 0);
    const provider = trainProvider(data);

    const elapsed = stopwatch();
    let samples = 0;
    for (let epoch = 1; epoch <= epochs; epoch++) samples += run(provider, epoch);
    await (mlp.weights[0] as tf.Variable).data(); // the last update has landed (async backends)
    const { seconds, cpuSeconds } = elapsed();

    const accuracy = await testAccuracy(data, (x) => tf.tidy(() => mlp.forward(x)));
    mlp.dispose();
    return { samplesPerSecond: samples / seconds, testAccuracy: accuracy, samples, seconds, cpuSeconds, leakedTensors: tf.memory().numTensors - before };
  },
};
