/**
 * `npm run simple`: the MNIST trainer with flags (src/apps/train-mnist.ts): the MLP over three
 * gates, a training and a validation sentinel, then the test pass. `npm run simple -- --help`.
 */
import { runMain, trainMnistMain } from 'akkordeon/apps';

await runMain(() => trainMnistMain(process.argv));
