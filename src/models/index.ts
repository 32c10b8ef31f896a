/** Ready-made networks, split into gates: the MNIST MLP and CNN. */
export { MNIST_MODELS, mnistCnn, mnistMlp, mnistModel, type MnistModelName } from './mnist.js';
