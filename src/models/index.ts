/**
 * Models: networks described as data ({@link NetworkDescription}: layer configs, input shape,
 * optimizer spec), loaded from a file on this node or built from layers, and the ready-made
 * MNIST MLP and CNN split into gates.
 */
export { MNIST_MODELS, mnistCnn, mnistMlp, mnistModel, type MnistModelName } from './mnist.js';
export {
  describeFingerprint,
  describeNetwork,
  descriptionOptimizer,
  loadNetworkDescription,
  mnistDescription,
  networkGates,
  validateDescription,
  type DescribeOptions,
  type NetworkDescription,
} from './describe.js';
