/**
 * Run-time choice of the tfjs backend: `tensorflow` (native, from the optional
 * `@tensorflow/tfjs-node`) where it loads, else `wasm`, else `cpu`.
 */
import { createRequire } from 'node:module';
import { isMainThread } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs';
import { BackendError, InvalidArgumentError } from './errors.js';
import { loadFusedKernels } from './kernels/index.js';

/** The backends akkordeon knows how to start, in order of preference. */
export const BACKENDS = ['tensorflow', 'wasm', 'cpu'] as const;
/** One of {@link BACKENDS}. */
export type BackendName = (typeof BACKENDS)[number];

const require = createRequire(import.meta.url);

async function tryBackend(name: BackendName): Promise<boolean> {
  try {
    if (name === 'tensorflow') {
      // tfjs-node is not context-aware: it must never be loaded in a worker thread.
      if (!isMainThread) return false;
      require('@tensorflow/tfjs-node');
    } else if (name === 'wasm') {
      await import('@tensorflow/tfjs-backend-wasm');
    }
    return await tf.setBackend(name);
  } catch {
    return false;
  }
}

/**
 * Selects and initialises a tfjs backend and returns its name.
 *
 * On wasm it also compiles the fused kernels (`loadFusedKernels`): optimizer steps, finiteness
 * checks and transposes.
 *
 * @param requested a backend name, or `'auto'`/undefined for the first that works of
 *   `tensorflow`, `wasm`, `cpu`. Defaults to the `AKKORDEON_BACKEND` environment variable (which
 *   mirrors the `--backend` flag), then `'auto'`.
 * @throws InvalidArgumentError for an unknown name; BackendError when the requested backend
 *   (or, for `'auto'`, every backend) fails to start.
 */
export async function initBackend(requested?: string): Promise<BackendName> {
  const choice = requested ?? process.env.AKKORDEON_BACKEND ?? 'auto';
  if (choice !== 'auto' && !(BACKENDS as readonly string[]).includes(choice)) {
    throw new InvalidArgumentError(
      `Unknown backend '${choice}'. Use one of: auto, ${BACKENDS.join(', ')}.`,
    );
  }
  const candidates = choice === 'auto' ? BACKENDS : [choice as BackendName];
  for (const name of candidates) {
    if (tf.getBackend() === name || (await tryBackend(name))) {
      await tf.ready();
      await loadFusedKernels();
      return name;
    }
  }
  throw new BackendError(
    choice === 'auto'
      ? 'No tfjs backend could be started (tried tensorflow, wasm, cpu). Reinstall dependencies with `npm install`.'
      : `Backend '${choice}' could not be started. Omit --backend to choose automatically, or install its package.`,
  );
}

/**
 * Whether the active backend copies the values of `tf.tensor(values)` at once, so that the
 * caller may reuse `values` (true on wasm, which copies them into its heap; the cpu backend
 * keeps a reference).
 */
export const backendCopiesData = (): boolean => tf.getBackend() === 'wasm';
