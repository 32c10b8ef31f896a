/**
 * `npm run xor-downpour`: DistBelief's XOR example as AkkaDistBelief published it, trained by
 * Downpour SGD: 50,000 samples split over 25 model replicas of 2,000 each, a 2-2-1 sigmoid
 * network, learning rate 0.5 on the parameter server. Prints what the original never did: the
 * loss and the learned truth table. Each replica pushes after every sample, as the original
 * did (`--batch-size 10` is about 7x faster, and stops short of XOR in 50,000 samples).
 */
import * as tf from '@tensorflow/tfjs';
import { initBackend, trainDistributed, type ModelSpec } from 'akkordeon';
import { chainModel } from 'akkordeon/ps';
import { runMain } from 'akkordeon/apps';

await runMain(async () => {
  const batchArg = process.argv.indexOf('--batch-size');
  const batchSize = batchArg > 0 ? Number(process.argv[batchArg + 1]) : 1;
  console.log(`backend: ${await initBackend()}`);
  const init = (seed: number) => ({ className: 'RandomUniform', config: { minval: -1, maxval: 1, seed } });
  const model: ModelSpec = {
    kind: 'layers',
    inputShape: [2],
    gates: [{ name: 'xor', layers: [
      { className: 'Dense', config: { units: 2, activation: 'sigmoid', kernelInitializer: init(3), biasInitializer: init(4) } },
      { className: 'Dense', config: { units: 1, activation: 'sigmoid', kernelInitializer: init(5), biasInitializer: init(6) } },
    ] }],
    loss: 'meanSquaredError',
  };
  const cases = [[0, 0, 0], [0, 1, 1], [1, 0, 1], [1, 1, 0]];
  const replicaData = (r: number) => {
    const rows = Array.from({ length: 2000 }, (_, i) => cases[(i * 7 + r * 3 + Math.floor(i / 4)) % 4] as number[]);
    return { kind: 'tensors' as const, x: tf.tensor2d(rows.map((c) => [c[0] as number, c[1] as number])), y: tf.tensor2d(rows.map((c) => [c[2] as number])), seed: r + 1 };
  };
  const result = await trainDistributed({ model, data: replicaData, replicas: 25, optimizer: { type: 'sgd', learningRate: 0.5 }, batchSize, epochs: 1 });
  const losses = result.replicas.map((r) => ('loss' in r ? r.loss : NaN));
  console.log(`${result.replicas.length} replicas, ${result.stats[0]?.pushes} pushes in ${result.seconds.toFixed(1)} s; mean loss of the replicas' last batches ${(losses.reduce((a, b) => a + b, 0) / losses.length).toFixed(4)}`);
  const net = chainModel(model as Extract<ModelSpec, { kind: 'layers' }>);
  const x = tf.tensor2d(cases.map((c) => [c[0] as number, c[1] as number]));
  const y = net.predict!(result.params, x);
  const out = y.dataSync();
  let right = 0;
  cases.forEach((c, i) => {
    const ok = Math.round(out[i] as number) === c[2];
    right += ok ? 1 : 0;
    console.log(`${c[0]} XOR ${c[1]} = ${(out[i] as number).toFixed(3)} (${ok ? 'right' : 'wrong'})`);
  });
  console.log(`${right}/4 right`);
  tf.dispose([x, y]);
  result.params.forEach((t) => t.dispose());
  net.dispose?.();
  if (right !== 4) process.exitCode = 1;
});
