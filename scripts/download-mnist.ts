/**
 * Downloads the four MNIST `.gz` files into `data/mnist` (or `--dir DIR`, or `$MNIST_DIR`) if they
 * are missing, verifying each file's official MD5 sum.
 *
 *   npx tsx scripts/download-mnist.ts [--dir DIR] [--mirror URL ...]
 */
import { Command } from 'commander';
import { ensureMnist, MNIST_MIRRORS } from '../src/data/download.js';
import { resolveMnistDir } from '../src/data/mnist.js';
import { describeError } from '../src/errors.js';

const program = new Command()
  .name('download-mnist')
  .description('Download the MNIST dataset (4 gzipped IDX files, ~11 MB) and verify MD5 sums.')
  .option('--dir <DIR>', 'target directory (default: $MNIST_DIR, else data/mnist)')
  .option(
    '--mirror <URL>',
    `base URL to download from; repeat to try several in order (default: ${MNIST_MIRRORS.join(', ')})`,
    (url: string, previous: string[] = []) => [...previous, url],
  )
  .parse();

const options = program.opts<{ dir?: string; mirror?: string[] }>();
const dir = resolveMnistDir(options.dir);

try {
  console.log(`MNIST directory: ${dir}`);
  await ensureMnist(dir, { mirrors: options.mirror ?? MNIST_MIRRORS });
  console.log('MNIST is ready.');
} catch (error) {
  console.error(describeError(error));
  process.exitCode = 1;
}
