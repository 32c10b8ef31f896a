/**
 * Summarises a handler trace written with `AKKORDEON_TRACE=DIR`: per thread, the share of time
 * spent in handlers, the time per actor and message type, and what each thread waited between
 * which two handlers.
 *
 *   AKKORDEON_TRACE=/tmp/trace npm run simple -- --placement auto
 *   npm run trace -- /tmp/trace [--after 5] [--until 20] [--top 8]
 */
import { Command } from 'commander';
import { formatTraceSummary, readTrace, summarizeTrace } from '../src/actor/trace.js';
import { nonNegative, positiveInt } from '../src/apps/flags.js';
import { describeError } from '../src/errors.js';

const program = new Command()
  .name('trace')
  .description('Summarise a handler trace (AKKORDEON_TRACE=DIR) per thread.')
  .argument('<dir>', 'the trace directory')
  .option('--after <s>', 'skip the first s seconds of the trace (warm-up)', nonNegative('--after'), 0)
  .option('--until <s>', 'stop s seconds after the trace starts (default: its end)', nonNegative('--until'))
  .option('--top <n>', 'rows of handlers and of gaps per thread', positiveInt('--top'), 8)
  .parse();

const [dir] = program.args as [string];
const options = program.opts<{ after: number; until?: number; top: number }>();
try {
  const records = readTrace(dir);
  const origin = records.reduce((first, r) => Math.min(first, r.start), Infinity); // no spread: a trace can hold millions of records
  const summaries = summarizeTrace(records, { fromMs: origin + options.after * 1000, toMs: options.until === undefined ? undefined : origin + options.until * 1000 });
  console.log(`${records.length} handled messages in ${dir}; window from ${options.after} s${options.until === undefined ? '' : ` to ${options.until} s`} after the first`);
  console.log(formatTraceSummary(summaries, options.top));
} catch (error) {
  console.error(describeError(error));
  process.exitCode = 1;
}
