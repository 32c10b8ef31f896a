/**
 * Checkpoints of a network: every gate's weights and optimizer state in one directory, a
 * `manifest.json` that names and places every tensor and a `weights.bin` with their raw
 * little-endian values. Saving is atomic (write to a sibling temp directory, fsync, rename);
 * loading checks the whole architecture before it changes anything.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { CheckpointMismatchError, DataFormatError, describeError, InvalidArgumentError } from '../errors.js';
import type { NamedTensor } from '../optim/index.js';
import { disposeStates } from '../gate/index.js';
import { findCheckpoint, writeDirectoryAtomically } from './atomic.js';

export { findCheckpoint, writeDirectoryAtomically };
import type { GateState } from '../protocol/index.js';

/**
 * Whatever holds gates whose state can be saved and restored: a `Network`, or the slice a
 * network process hosts (`HostedGates`).
 */
export interface Checkpointable {
  /** Copies of every gate's weights, optimizer state and layer configs, in gate order; the caller owns them. */
  getState(): Promise<GateState[]>;
  /** Replaces every gate's weights (and optimizer state, if given); consumes the tensors. */
  setState(states: { weights: NamedTensor[]; optimizer?: NamedTensor[] }[]): Promise<void>;
}

/** Value of `manifest.format` in every checkpoint. */
export const CHECKPOINT_FORMAT = 'akkordeon-checkpoint';
/** The checkpoint layout version this code writes and reads. */
export const CHECKPOINT_VERSION = 1;

/** Where one tensor lies in `weights.bin`: byte `offset` and `length`, row-major values. */
export interface TensorEntry {
  name: string;
  dtype: 'float32' | 'int32' | 'bool';
  shape: number[];
  offset: number;
  length: number;
}

/** One gate in a checkpoint manifest. */
export interface GateEntry {
  name: string;
  inputShape: number[];
  outputShape: number[];
  optimizerName: string;
  /** tfjs-layers configs of the gate's layers, for information and export. */
  layers: { className: string; config: Record<string, unknown> }[];
  weights: TensorEntry[];
  optimizer: TensorEntry[];
}

/** The contents of `manifest.json`. */
export interface CheckpointManifest {
  format: typeof CHECKPOINT_FORMAT;
  version: typeof CHECKPOINT_VERSION;
  /** Size of `weights.bin` in bytes. */
  byteLength: number;
  gates: GateEntry[];
}

const BYTES: Record<TensorEntry['dtype'], number> = { float32: 4, int32: 4, bool: 1 };
const ARRAYS = { float32: Float32Array, int32: Int32Array, bool: Uint8Array } as const;

const isDir = (p: string) => fs.stat(p).then((s) => s.isDirectory(), () => false);

/** Appends tensors to the byte chunks of `weights.bin` (each padded to 4 bytes) and describes them. */
async function pack(tensors: NamedTensor[], chunks: Uint8Array[], at: { offset: number }): Promise<TensorEntry[]> {
  const entries: TensorEntry[] = [];
  for (const { name, tensor } of tensors) {
    const dtype = tensor.dtype;
    if (dtype !== 'float32' && dtype !== 'int32' && dtype !== 'bool') {
      throw new InvalidArgumentError(`Cannot checkpoint '${name}' of dtype ${dtype}; only float32, int32 and bool tensors are supported.`);
    }
    const values = await tensor.data();
    const bytes = dtype === 'bool' ? Uint8Array.from(values as ArrayLike<number>) : new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
    entries.push({ name, dtype, shape: tensor.shape, offset: at.offset, length: bytes.byteLength });
    const padded = new Uint8Array(Math.ceil(bytes.byteLength / 4) * 4);
    padded.set(bytes);
    chunks.push(padded);
    at.offset += padded.byteLength;
  }
  return entries;
}

/**
 * Saves every gate's weights and optimizer state to directory `dir` (`manifest.json` +
 * `weights.bin`), atomically: a failure midway leaves the previous checkpoint in `dir` intact.
 * @throws InvalidArgumentError when `dir` exists but is not a checkpoint; the file system's
 *   error when writing fails.
 */
export async function saveCheckpoint(network: Checkpointable, dir: string): Promise<void> {
  const states = await network.getState();
  try {
    const chunks: Uint8Array[] = [];
    const at = { offset: 0 };
    const gates: GateEntry[] = [];
    for (const state of states) {
      gates.push({
        name: state.gate,
        inputShape: state.inputShape,
        outputShape: state.outputShape,
        optimizerName: state.optimizerName,
        layers: state.layers,
        weights: await pack(state.weights, chunks, at),
        optimizer: await pack(state.optimizer, chunks, at),
      });
    }
    const manifest: CheckpointManifest = { format: CHECKPOINT_FORMAT, version: CHECKPOINT_VERSION, byteLength: at.offset, gates };
    const weights = Buffer.concat(chunks, at.offset);
    await writeDirectoryAtomically(dir, { 'manifest.json': JSON.stringify(manifest, null, 1), 'weights.bin': weights });
  } finally {
    disposeStates(states);
  }
}

const isShape = (s: unknown): s is number[] => Array.isArray(s) && s.every((d) => Number.isInteger(d) && d >= 0);

/** Checks the manifest's structure and that every tensor lies inside `weights.bin`. */
function validateManifest(value: unknown, file: string, fileSize: number): CheckpointManifest {
  const bad = (what: string) => new DataFormatError(`${file}: ${what}. The checkpoint is corrupt; save it again or use another one.`);
  const m = value as Partial<CheckpointManifest> | null;
  if (typeof m !== 'object' || m === null || m.format !== CHECKPOINT_FORMAT) {
    throw new DataFormatError(`${file} is not an akkordeon checkpoint manifest (format must be '${CHECKPOINT_FORMAT}'). Point loadCheckpoint at a directory written by saveCheckpoint.`);
  }
  if (m.version !== CHECKPOINT_VERSION) {
    throw new DataFormatError(`${file} has checkpoint version ${String(m.version)}; this akkordeon reads version ${CHECKPOINT_VERSION}. Use the akkordeon version that wrote it.`);
  }
  if (!Array.isArray(m.gates) || typeof m.byteLength !== 'number') throw bad('gates or byteLength are missing');
  if (m.byteLength !== fileSize) {
    throw bad(`weights.bin has ${fileSize} bytes but the manifest expects ${m.byteLength} (truncated or from another checkpoint)`);
  }
  m.gates.forEach((g, i) => {
    if (typeof g?.name !== 'string' || !Array.isArray(g.weights) || !Array.isArray(g.optimizer)) throw bad(`gate ${i} is malformed`);
    for (const e of [...g.weights, ...g.optimizer]) {
      const bytes = BYTES[e?.dtype as TensorEntry['dtype']];
      const ok = typeof e?.name === 'string' && bytes !== undefined && isShape(e.shape) && Number.isInteger(e.offset) && e.offset >= 0;
      if (!ok || e.length !== e.shape.reduce((a, b) => a * b, 1) * bytes || e.offset + e.length > fileSize) {
        throw bad(`tensor '${String(e?.name)}' of gate ${g.name} has an invalid dtype, shape or byte range`);
      }
    }
  });
  return m as CheckpointManifest;
}

/** Reads and validates `manifest.json` and `weights.bin` of a checkpoint directory. */
async function readCheckpoint(dir: string): Promise<{ manifest: CheckpointManifest; data: Buffer }> {
  const missing = (what: string) =>
    new CheckpointMismatchError(`${what}. Check the path, or save a checkpoint there first with saveCheckpoint.`);
  if (!(await isDir(dir))) throw missing(`No checkpoint directory at ${path.resolve(dir)}`);
  const manifestFile = path.join(dir, 'manifest.json');
  const text = await fs.readFile(manifestFile, 'utf8').catch(() => undefined);
  if (text === undefined) throw missing(`${manifestFile} is missing (not a checkpoint, or an incomplete copy)`);
  const data = await fs.readFile(path.join(dir, 'weights.bin')).catch(() => undefined);
  if (data === undefined) throw missing(`${path.join(dir, 'weights.bin')} is missing`);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new DataFormatError(`${manifestFile} is not valid JSON (${(error as Error).message}). The checkpoint is corrupt; save it again.`, { cause: error });
  }
  return { manifest: validateManifest(json, manifestFile, data.byteLength), data };
}

/** Lists the differences between a gate's tensors and a checkpoint's, as `gate: problem` lines. */
function compare(gate: string, what: string, have: NamedTensor[], saved: TensorEntry[]): string[] {
  const problems: string[] = [];
  const savedByName = new Map(saved.map((e) => [e.name, e]));
  for (const { name, tensor } of have) {
    const entry = savedByName.get(name);
    if (!entry) problems.push(`${gate}: ${what} '${name}' [${tensor.shape}] is missing from the checkpoint`);
    else if (!tf.util.arraysEqual(entry.shape, tensor.shape)) {
      problems.push(`${gate}: '${name}' has shape [${tensor.shape}], checkpoint has [${entry.shape}]`);
    }
  }
  const names = new Set(have.map((t) => t.name));
  for (const e of saved) if (!names.has(e.name)) problems.push(`${gate}: checkpoint has ${what} '${e.name}' [${e.shape}], which this network does not have`);
  return problems;
}

/** Optimizer slots (`slot/<param index>/<name>`) must have the shape of the weight they belong to. */
function checkSlots(gate: string, entry: GateEntry): string[] {
  return entry.optimizer.flatMap((e) => {
    const index = /^slot\/(\d+)\//.exec(e.name)?.[1];
    const weight = index === undefined ? undefined : entry.weights[Number(index)];
    if (index !== undefined && (!weight || !tf.util.arraysEqual(weight.shape, e.shape))) {
      return [`${gate}: optimizer state '${e.name}' [${e.shape}] does not fit weight ${index} of the checkpoint`];
    }
    return [];
  });
}

function toTensor(e: TensorEntry, data: Buffer): tf.Tensor {
  const copy = new Uint8Array(data.subarray(e.offset, e.offset + e.length)).buffer; // an aligned copy
  return tf.tensor(new ARRAYS[e.dtype](copy), e.shape, e.dtype);
}

/** The names of float32 entries that hold NaN or ±Infinity. */
function nonFinite(entries: TensorEntry[], data: Buffer): string[] {
  return entries.filter((e) => {
    if (e.dtype !== 'float32') return false;
    const view = new DataView(data.buffer, data.byteOffset + e.offset, e.length); // read in place: no copy before toTensor's
    for (let at = 0; at < e.length; at += 4) if (!Number.isFinite(view.getFloat32(at, true))) return true;
    return false;
  }).map((e) => e.name);
}

/**
 * Loads a checkpoint written by {@link saveCheckpoint} into `network`: weights, and optimizer
 * state unless `options.optimizer` is false. Every value is checked before anything changes:
 * gates and tensors are matched by name (never by position), shapes, dtypes and sizes must fit,
 * and every float32 value must be finite. It applies all or nothing: when a gate still refuses
 * its state, the gates already changed get their previous state back. When a save crashed
 * between its two renames, the previous complete checkpoint is loaded and `options.log` says so.
 * @throws CheckpointMismatchError when the directory or a file is missing, or when the gates,
 *   weight names, shapes or optimizer differ (all mismatches in one message); DataFormatError
 *   for a corrupt manifest, an unknown format or version, a truncated `weights.bin`, or values
 *   that are NaN or ±Infinity.
 */
export async function loadCheckpoint(network: Checkpointable, dir: string, options: { optimizer?: boolean; log?: (line: string) => void } = {}): Promise<void> {
  const withOptimizer = options.optimizer ?? true;
  const found = await findCheckpoint(dir);
  if (found?.recovered) options.log?.(`checkpoint ${dir} is missing, but a save was cut off after moving it aside: loading the previous complete checkpoint from ${found.dir}`);
  const { manifest, data } = await readCheckpoint(found?.dir ?? dir);
  const states: GateState[] = await network.getState();
  try {
    const problems: string[] = [];
    if (manifest.gates.length !== states.length) {
      problems.push(`the network has ${states.length} gates, the checkpoint has ${manifest.gates.length}`);
    }
    states.forEach((state, i) => {
      const entry = manifest.gates[i];
      if (!entry) return;
      if (entry.name !== state.gate) problems.push(`gate ${i} is '${state.gate}', the checkpoint's gate ${i} is '${entry.name}'`);
      problems.push(...compare(state.gate, 'weight', state.weights, entry.weights), ...checkSlots(state.gate, entry));
      if (withOptimizer && entry.optimizerName !== state.optimizerName) {
        problems.push(`${state.gate}: the network uses optimizer '${state.optimizerName}', the checkpoint has '${entry.optimizerName}' (load with { optimizer: false } to take only the weights)`);
      }
    });
    if (problems.length > 0) {
      throw new CheckpointMismatchError(
        `Checkpoint ${dir} does not fit this network: ${problems.join('; ')}. Load a checkpoint saved from the same network definition.`,
      );
    }
    const bad = manifest.gates.flatMap((g) => nonFinite([...g.weights, ...(withOptimizer ? g.optimizer : [])], data).map((name) => `${g.name}: '${name}'`));
    if (bad.length > 0) throw new DataFormatError(`Checkpoint ${dir} holds NaN or Infinity in ${bad.join(', ')}; it was saved from a diverged network or is corrupt. Load an earlier checkpoint.`);
    // Without optimizer state the gates keep theirs (`optimizer: undefined`).
    try {
      await network.setState(
        states.map((state, i) => ({
          weights: (manifest.gates[i] as GateEntry).weights.map((e) => ({ name: e.name, tensor: toTensor(e, data) })),
          optimizer: withOptimizer ? (manifest.gates[i] as GateEntry).optimizer.map((e) => ({ name: e.name, tensor: toTensor(e, data) })) : undefined,
        })),
      );
    } catch (error) {
      // A gate refused (the others may have taken theirs): put every gate back as it was.
      const previous = states.map((state) => ({ weights: state.weights.map((w) => ({ name: w.name, tensor: tf.clone(w.tensor) })), optimizer: state.optimizer.map((o) => ({ name: o.name, tensor: tf.clone(o.tensor) })) }));
      await network.setState(previous).catch(() => undefined);
      throw error;
    }
  } finally {
    disposeStates(states);
  }
}

/** What one save of {@link PeriodicCheckpoints} did. */
export type CheckpointSaveOutcome = 'saved' | 'unchanged' | 'failed';

/** Periodic, atomic checkpoints of a network or slice, started by {@link periodicCheckpoints}. */
export interface PeriodicCheckpoints {
  /**
   * Saves now (waiting for a save in progress first): `'unchanged'` without writing when no
   * gate has made an optimizer update since the checkpoint in the directory was written or
   * loaded; `'failed'` when writing failed (logged; the previous checkpoint stays intact).
   * `why` goes into the log line (e.g. `'periodic'`, `'on stop'`).
   */
  save(why: string): Promise<CheckpointSaveOutcome>;
  /** Stops the timer, waits for a save in progress, then saves once more (`'on stop'`). */
  stop(): Promise<CheckpointSaveOutcome>;
}

/**
 * The optimizer updates each gate has applied (its `iterations` state), e.g. `'120,120,118'`;
 * undefined when a gate has no such state, so that a save is never skipped on a guess.
 */
function updateCounts(states: GateState[]): string | undefined {
  const counts = states.map((s) => s.optimizer.find((t) => t.name === 'iterations')?.tensor.dataSync()[0]);
  return counts.every((c) => c !== undefined) ? counts.join(',') : undefined;
}

/**
 * Saves `target` to `dir` with {@link saveCheckpoint} every `everyMs` milliseconds (the timer
 * does not keep the process alive), never two saves at once. A save is skipped when no gate has
 * made an optimizer update since the checkpoint in `dir` was written, so an idle network does
 * not rewrite the same weights every period. A checkpoint already in `dir` (its `manifest.json`)
 * when this starts counts as current: call this after loading that checkpoint into `target`, or
 * with a `dir` that holds none yet.
 * Failed saves are logged through `log` and leave the previous checkpoint intact.
 *
 * @param everyMs period in ms (e.g. 60_000); 0 saves only when asked (`save`, `stop`).
 * @throws InvalidArgumentError for a negative or non-finite `everyMs`.
 */
export async function periodicCheckpoints(target: Checkpointable, dir: string, everyMs: number, log: (line: string) => void = () => {}): Promise<PeriodicCheckpoints> {
  if (!Number.isFinite(everyMs) || everyMs < 0) throw new InvalidArgumentError(`Invalid checkpoint period: ${everyMs} ms. Use a number of milliseconds >= 0 (0: only on request).`);
  let onDisk: string | undefined;
  if (await fs.access(path.join(dir, 'manifest.json')).then(() => true, () => false)) {
    const states = await target.getState();
    onDisk = updateCounts(states);
    disposeStates(states);
  }
  let saving: Promise<CheckpointSaveOutcome> | undefined;
  const saveOnce = async (why: string): Promise<CheckpointSaveOutcome> => {
    const started = performance.now();
    try {
      const states = await target.getState();
      const counts = updateCounts(states);
      if (counts !== undefined && counts === onDisk) {
        disposeStates(states);
        return 'unchanged';
      }
      await saveCheckpoint({ getState: async () => states, setState: target.setState.bind(target) }, dir);
      onDisk = counts;
      log(`checkpoint saved to ${dir} (${why}, ${Math.round(performance.now() - started)} ms)`);
      return 'saved';
    } catch (error) {
      log(`checkpoint NOT saved to ${dir} (${why}): ${describeError(error)}; the previous one is intact`);
      return 'failed';
    }
  };
  const save = async (why: string): Promise<CheckpointSaveOutcome> => {
    while (saving) await saving;
    saving = saveOnce(why).finally(() => (saving = undefined));
    return saving;
  };
  const timer = everyMs > 0 ? setInterval(() => void (saving ?? save('periodic')), everyMs) : undefined;
  timer?.unref();
  return {
    save,
    stop: async () => {
      clearInterval(timer);
      return save('on stop');
    },
  };
}
