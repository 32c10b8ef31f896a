/**
 * How parameters are spread over parameter shards: whole tensors, or row ranges of a large one,
 * balanced by size (DistBelief's parameter server is "sharded across many machines", each
 * shard applying the updates of its own slice; Dean et al., NIPS 2012, §4.1).
 */
import * as tf from '@tensorflow/tfjs';
import { InvalidArgumentError } from '../errors.js';
import type { NamedTensor } from '../optim/index.js';
import type { ShardPart } from '../protocol/index.js';

/** The name of rows `[from, to)` of `param` on a shard. */
export const partName = (param: string, rows?: readonly [number, number]): string => (rows ? `${param}[${rows[0]}:${rows[1]}]` : param);

/**
 * Assigns parameters (name and shape) to `shards` shards, balanced by element count: a
 * parameter larger than an even share, with more than one row, is cut into row ranges (first
 * axis) of about that share; then parts go, largest first, to the shard with the fewest elements
 * (greedy longest-processing-time). Deterministic for the same input.
 * @throws InvalidArgumentError for `shards` < 1 or a name given twice.
 */
export function planShards(params: readonly { name: string; shape: readonly number[] }[], shards: number): ShardPart[][] {
  if (!Number.isInteger(shards) || shards < 1) throw new InvalidArgumentError(`Give at least one parameter shard, got ${shards}.`);
  const names = new Set<string>();
  for (const p of params) {
    if (names.has(p.name)) throw new InvalidArgumentError(`Parameter '${p.name}' is named twice; parameter names must be unique.`);
    names.add(p.name);
  }
  const size = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);
  const total = params.reduce((n, p) => n + size(p.shape), 0);
  const share = Math.max(1, Math.ceil(total / shards));
  const parts: { part: ShardPart; elements: number }[] = [];
  for (const p of params) {
    const elements = size(p.shape);
    const rows = p.shape[0] ?? 1;
    if (shards === 1 || elements <= share || p.shape.length === 0 || rows < 2) {
      parts.push({ part: { name: p.name, param: p.name }, elements });
      continue;
    }
    const rowSize = elements / rows;
    const pieces = Math.min(rows, Math.ceil(elements / share));
    for (let i = 0; i < pieces; i++) {
      const from = Math.floor((i * rows) / pieces);
      const to = Math.floor(((i + 1) * rows) / pieces);
      const range = [from, to] as const;
      parts.push({ part: { name: partName(p.name, range), param: p.name, rows: range }, elements: (to - from) * rowSize });
    }
  }
  const plan: ShardPart[][] = Array.from({ length: shards }, () => []);
  const load = new Array<number>(shards).fill(0);
  const order = parts.map((p, i) => ({ ...p, i })).sort((a, b) => b.elements - a.elements || a.i - b.i);
  for (const { part, elements } of order) {
    const target = load.indexOf(Math.min(...load));
    plan[target]?.push(part);
    load[target] = (load[target] as number) + elements;
  }
  return plan;
}

/** The tensor of one part cut from its whole parameter (a new tensor; the caller owns it). */
export function cutPart(whole: tf.Tensor, part: ShardPart): tf.Tensor {
  if (!part.rows) return tf.clone(whole);
  const [from, to] = part.rows;
  return tf.slice(whole, from, to - from);
}

/**
 * Cuts named parameters into the parts of one shard (new tensors; the caller owns them).
 * @throws InvalidArgumentError when a part's parameter is missing.
 */
export function cutParts(params: ReadonlyMap<string, tf.Tensor>, parts: readonly ShardPart[]): NamedTensor[] {
  return parts.map((part) => {
    const whole = params.get(part.param);
    if (!whole) throw new InvalidArgumentError(`Parameter '${part.param}' of shard part '${part.name}' is missing.`);
    return { name: part.name, tensor: cutPart(whole, part) };
  });
}

/**
 * Joins parts (from every shard) back into whole parameters, disposing the parts.
 * @throws InvalidArgumentError when the row ranges of a parameter do not join up.
 */
export function joinParts(parts: readonly { part: ShardPart; tensor: tf.Tensor }[]): Map<string, tf.Tensor> {
  const byParam = new Map<string, { part: ShardPart; tensor: tf.Tensor }[]>();
  for (const p of parts) byParam.set(p.part.param, [...(byParam.get(p.part.param) ?? []), p]);
  const out = new Map<string, tf.Tensor>();
  for (const [param, pieces] of byParam) {
    if (pieces.length === 1 && !pieces[0]?.part.rows) {
      out.set(param, (pieces[0] as { tensor: tf.Tensor }).tensor);
      continue;
    }
    pieces.sort((a, b) => (a.part.rows?.[0] ?? 0) - (b.part.rows?.[0] ?? 0));
    let next = 0;
    for (const { part } of pieces) {
      if (!part.rows || part.rows[0] !== next) throw new InvalidArgumentError(`The row ranges of parameter '${param}' do not join up at row ${next}.`);
      next = part.rows[1];
    }
    out.set(param, tf.concat(pieces.map((p) => p.tensor), 0));
    pieces.forEach((p) => p.tensor.dispose());
  }
  return out;
}
