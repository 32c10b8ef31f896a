/**
 * `npm run xor`: the XOR task of DistBelief's examples, a 2-2-1 sigmoid network over two gates,
 * trained asynchronously until all four cases are right; prints the truth table.
 */
import * as tf from '@tensorflow/tfjs';
import { ArrayProvider, DCASGD, Network, Sentinel, initBackend } from 'akkordeon';
import { runMain } from 'akkordeon/apps';

await runMain(async () => {
  console.log(`backend: ${await initBackend()}`);
  const inputs = [0, 0, 0, 1, 1, 0, 1, 1];
  const targets = [0, 1, 1, 0];
  const init = (seed: number) => tf.initializers.randomUniform({ minval: -1, maxval: 1, seed });
  const network = new Network({
    inputShape: [2],
    gates: [
      { layers: [tf.layers.dense({ units: 2, activation: 'sigmoid', kernelInitializer: init(3), biasInitializer: init(4) })] },
      { layers: [tf.layers.dense({ units: 1, activation: 'sigmoid', kernelInitializer: init(5), biasInitializer: init(6) })] },
    ],
    optimizer: () => new DCASGD({ learningRate: 2, momentum: 0.9 }),
  });
  const data = new ArrayProvider({ x: inputs, y: targets, inputShape: [2], targetShape: [1] });
  const trainer = new Sentinel({
    name: 'xor', mode: 'train', data, batchSize: 4, concurrency: 1, loss: 'meanSquaredError',
    epochs: 5000, target: { metric: 'loss', atMost: 0.005 },
  });
  network.attach(trainer);
  const summary = await trainer.done;
  console.log(`stopped after ${summary.epochs.length} epochs (${summary.stoppedBy}), loss ${summary.epochs.at(-1)?.loss.toFixed(4)}`);

  const x = tf.tensor2d(inputs, [4, 2]);
  const y = await network.predict(x);
  const outputs = y.dataSync();
  console.log(' a  b | a xor b | output');
  targets.forEach((t, i) => console.log(` ${inputs[2 * i]}  ${inputs[2 * i + 1]} |    ${t}    | ${outputs[i]?.toFixed(3)} ${Math.round(outputs[i] ?? 0) === t ? 'ok' : 'WRONG'}`));
  tf.dispose([x, y]);
  await network.dispose();
});
