/**
 * Runs a command-line program's main function: prints a failure as one line
 * (`DataFormatError: …`) instead of a stack dump, and exits with status 1.
 */
import { describeError } from '../errors.js';

/** Awaits `main`; on failure prints the error (with stack when `AKKORDEON_DEBUG` is set) and exits 1. */
export async function runMain(main: () => Promise<void>): Promise<void> {
  try {
    await main();
  } catch (error) {
    console.error(process.env.AKKORDEON_DEBUG && error instanceof Error ? error.stack : describeError(error));
    process.exit(1);
  }
}
