/**
 * The command-line programs: `npm run simple` ({@link trainMnistMain}), `npm run network`
 * ({@link networkMain}), `npm run sentinel` ({@link sentinelMain}), and their helpers: flag
 * parsing and terminal reporting (epoch lines, progress bars).
 */
export { parseTrainingArgs, type TrainingArgs } from './args.js';
export { Reporter, type ReporterOptions } from './report.js';
export { runMain } from './main.js';
export { mnistModelName, nonNegative, positiveInt } from './flags.js';
export { trainMnistMain } from './train-mnist.js';
export { downpourMain } from './downpour.js';
export { addNatsFlags, logConnection, natsOptions, networkMain, onStopSignal, type NatsFlags } from './network-app.js';
export { sentinelMain } from './sentinel-app.js';
export { natsConfigMain } from './nats-config.js';
