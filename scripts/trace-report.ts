/**
 * Summarises a handler trace written with `AKKORDEON_TRACE=DIR`: per thread, the share of time
 * spent in handlers, the time per actor and message type, and what each thread waited between
 * which two handlers.
 *
 *   AKKORDEON_TRACE=/tmp/trace npm run simple -- --placement auto
 *   npm run trace -- /tmp/trace [--after 5] [--until 20] [--top 8]
 */
import { Command, InvalidArgumentError as CliError } from 'commander';
import { formatTraceSummary, readTrace, summarizeTrace } from '../src/actor/trace.js';
import { describeError } from '../src/errors.js';

const seconds = (name: string) => (value: string) => {
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0) throw new CliError(`${name} takes seconds >= 0, not '${value}'.`);
  return n;
};

const count = (value: string) => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new CliError(`--top takes a whole number >= 1, not '${value}'.`);
  return n;
};

const program = new Command()
  .name('trace')
  .description('Summarise a handler trace (AKKORDEON_TRACE=DIR) per thread.')
  .argument('<dir>', 'the trace directory')
  .option('--after <s>', 'skip the first s seconds of the trace (warm-up)', seconds('--after'), 0)
  .option('--until <s>', 'stop s seconds after the trace starts (default: its end)', seconds('--until'))
  .option('--top <n>', 'rows of handlers and of gaps per thread', count, 8)
  .parse();

const [dir] = program.args as [string];
const options = program.opts<{ after: number; until?: number; top: number }>();
try {
  const records = readTrace(dir);
  const origin = Math.min(...records.map((r) => r.start));
  const summaries = summarizeTrace(records, { fromMs: origin + options.after * 1000, toMs: options.until === undefined ? undefined : origin + options.until * 1000 });
  console.log(`${records.length} handled messages in ${dir}; window from ${options.after} s${options.until === undefined ? '' : ` to ${options.until} s`} after the first`);
  console.log(formatTraceSummary(summaries, options.top));
} catch (error) {
  console.error(describeError(error));
  process.exitCode = 1;
}
