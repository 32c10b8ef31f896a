/** Command-line helpers: flag parsing and terminal reporting (epoch lines, progress bars). */
export { parseTrainingArgs, type TrainingArgs } from './args.js';
export { Reporter, type ReporterOptions } from './report.js';
export { runMain } from './main.js';
export { mnistModelName, nonNegative, positiveInt } from './flags.js';
