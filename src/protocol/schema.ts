/**
 * Validation of messages that arrive from other nodes (threads, processes, machines), with zod.
 * Every field is checked before an actor sees the message: its type, the dtype, rank and size
 * of each tensor, batch numbers, names and refs. A malformed or oversized message is rejected
 * with a ProtocolError; {@link answerInvalid} turns that into an error reply and a log line.
 */
import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import type { ActorRef, ActorSystem, Message } from '../actor/index.js';
import { ProtocolError } from '../errors.js';
import { type Limits, LIMITS } from '../wire/index.js';
import type { DataSpec } from '../data/index.js';
import type { GateDetached, GateMessage, GateState, GateStateSet, SentinelReply } from './messages.js';
import type { HostMessage, HostReply, SentinelControl, SentinelReport, SentinelSpec } from './nodes.js';
import type { PsMessage, PsReply, ReplicaReport } from './ps.js';

/** Limits a message from outside must respect: the wire's one set of {@link Limits}. */
export type SchemaLimits = Limits;

const ref = z.custom<ActorRef>(
  (v) => typeof v === 'object' && v !== null && typeof (v as ActorRef).tell === 'function' && typeof (v as ActorRef).id === 'string' && typeof (v as ActorRef).node === 'string',
  { message: 'expected an actor ref' },
);
const name = z.string().min(1).max(256);
/** A path on the receiving node (checked there against its data roots). */
const file = z.string().min(1).max(4096);
const column = z.union([name, z.number().int().min(0).max(65_535)]);
const classes = z.number().int().min(1).max(2 ** 24).optional();
const range = { from: z.number().int().min(0).optional(), to: z.number().int().min(1).optional(), seed: z.number().optional() };
const batch = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
const shape = z.array(z.number().int().min(1).max(2 ** 24)).max(8);
const errorInfo = z.object({ code: z.string().max(128), message: z.string().max(8192) });

const WIRE_DTYPES = new Set(['float32', 'int32', 'bool']);

/**
 * Whether `v` is a live tensor the codec decoded, judged by its own fields: own `dtype` (a wire
 * dtype), own `shape` (whole numbers ≥ 0), own `size` equal to their product, own `dataId`, not
 * disposed; and a `tf.Tensor`, so that the gates may use it as one. Inherited or getter values
 * (`rank`, `isDisposed`) are not trusted.
 */
export function isOwnTensor(v: unknown): v is tf.Tensor {
  if (typeof v !== 'object' || v === null || !(v instanceof tf.Tensor)) return false;
  for (const key of ['dtype', 'shape', 'size', 'dataId', 'isDisposedInternal']) if (!Object.hasOwn(v, key)) return false;
  const { dtype, shape, size, isDisposedInternal } = v as unknown as { dtype: unknown; shape: unknown; size: unknown; isDisposedInternal: unknown };
  if (typeof dtype !== 'string' || !WIRE_DTYPES.has(dtype) || isDisposedInternal !== false || !Array.isArray(shape)) return false;
  let product = 1;
  for (const d of shape) {
    if (!Number.isSafeInteger(d) || (d as number) < 0) return false;
    product *= d as number;
  }
  return size === product;
}

function tensor(limits: SchemaLimits, dtype: 'float32' | 'int32' | 'any', batched: boolean) {
  return z.custom<tf.Tensor>((v) => {
    if (!isOwnTensor(v)) return false;
    if (dtype !== 'any' && v.dtype !== dtype) return false;
    const rank = v.shape.length;
    if (rank > limits.maxRank || v.size > limits.maxTensorElements) return false;
    return !batched || (rank >= 1 && (v.shape[0] as number) >= 1 && (v.shape[0] as number) <= limits.maxBatch);
  }, { message: `expected a ${dtype === 'any' ? '' : `${dtype} `}tensor of rank <= ${limits.maxRank}, at most ${limits.maxTensorElements} elements${batched ? ` and 1..${limits.maxBatch} samples` : ''}` });
}

function schemas(limits: SchemaLimits) {
  const x = tensor(limits, 'float32', true);
  const named = z.array(z.object({ name, tensor: tensor(limits, 'any', false) })).max(10_000);
  const layer = z.object({ className: name, config: z.record(z.string(), z.unknown()) });
  const data = z.discriminatedUnion('kind', [
    z.object({ kind: z.literal('mnist'), split: z.enum(['train', 'test']), dir: z.string().max(4096).optional(), from: z.number().int().min(0).optional(), to: z.number().int().min(1).optional(), scale: z.number().finite().optional(), seed: z.number().optional() }).strict(),
    z.object({ kind: z.literal('tensors'), x, y: tensor(limits, 'any', true), numClasses: z.number().int().min(1).max(2 ** 24).optional(), seed: z.number().optional() }).strict(),
    z.object({ kind: z.literal('csv'), path: file, target: z.union([column, z.array(column).max(1024)]).optional(), features: z.array(column).max(65_536).optional(), classes, delimiter: z.string().min(1).max(4).optional(), header: z.boolean().optional(), ...range }).strict(),
    z.object({ kind: z.literal('jsonl'), path: file, x: name.optional(), y: name.optional(), classes, ...range }).strict(),
    z.object({ kind: z.literal('idx'), images: file, labels: file, scale: z.number().finite().optional(), classes, ...range }).strict(),
    z.object({ kind: z.literal('module'), path: file, export: name.optional(), options: z.record(z.string().max(100), z.union([z.string().max(4096), z.number(), z.boolean(), z.null()])).optional() }).strict(),
  ]);
  const count = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
  const shard = z.number().int().min(0).max(1023);
  const replica = name;
  const part = z.object({ name: z.string().min(1).max(512), param: name, rows: z.tuple([z.number().int().min(0), z.number().int().min(1)]).readonly().optional() }).strict();
  const model = z.discriminatedUnion('kind', [
    z.object({ kind: z.literal('layers'), inputShape: shape, gates: z.array(z.object({ name, layers: z.array(layer).min(1).max(1000) })).min(1).max(1000), loss: name.optional(), seed: z.number().optional() }).strict(),
    z.object({ kind: z.literal('module'), path: file, export: name.optional() }).strict(),
  ]);
  return z.discriminatedUnion('type', [
    z.object({ type: z.literal('gate.forward'), sentinel: ref, batch, x }),
    z.object({ type: z.literal('gate.backward'), sentinel: ref, batch, dy: x, staleness: z.number().int().min(0).optional() }),
    z.object({ type: z.literal('gate.predict'), sentinel: ref, batch, x }),
    z.object({ type: z.literal('gate.abort'), sentinel: ref, batch, error: errorInfo }),
    z.object({ type: z.literal('gate.detach'), sentinelId: name.optional(), node: name.optional(), replyTo: ref.optional() }),
    z.object({
      type: z.literal('gate.connect'),
      previous: ref.optional(),
      next: ref.optional(),
      shards: z.array(z.object({ ref, units: z.number().int().min(1).max(2 ** 24) })).max(1024).optional(),
      primary: z.object({ ref, index: z.number().int().min(0).max(1023), needDx: z.boolean() }).optional(),
    }),
    z.object({ type: z.literal('gate.shardOutput'), sentinel: ref, batch, shard: z.number().int().min(0).max(1023), predict: z.boolean(), y: x }),
    z.object({ type: z.literal('gate.shardGradient'), sentinel: ref, batch, shard: z.number().int().min(0).max(1023), dx: x }),
    z.object({ type: z.literal('gate.shardFailed'), sentinel: ref, batch, predict: z.boolean(), error: errorInfo }),
    z.object({ type: z.literal('gate.getState'), replyTo: ref }),
    z.object({ type: z.literal('gate.setState'), weights: named, optimizer: named.optional(), replyTo: ref }),
    z.object({ type: z.literal('gate.detached'), dropped: z.number().int().min(0) }),
    z.object({ type: z.literal('gate.state'), gate: name, weights: named, optimizer: named, optimizerName: name, layers: z.array(layer).max(1000), inputShape: shape, outputShape: shape }),
    z.object({ type: z.literal('gate.stateSet'), error: errorInfo.optional() }),
    z.object({ type: z.literal('sentinel.logits'), batch, logits: x }),
    z.object({ type: z.literal('sentinel.predictions'), batch, logits: x }),
    z.object({ type: z.literal('sentinel.backwardDone'), batch, staleness: z.number().int().min(0) }),
    z.object({ type: z.literal('sentinel.batchFailed'), batch, error: errorInfo }),
    z.object({ type: z.literal('sentinel.start'), first: ref, last: ref }),
    z.object({ type: z.literal('sentinel.requestPass') }),
    z.object({ type: z.literal('sentinel.finish') }),
    z.object({ type: z.literal('sentinel.failInFlight'), error: errorInfo }),
    z.object({
      type: z.literal('host.spawnGate'),
      config: z.object({ name, layers: z.array(layer).min(1).max(1000), inputShape: shape, optimizer: z.object({ type: z.enum(['sgd', 'adam', 'adagrad', 'dcasgd']) }).passthrough(), seed: z.number().optional(), checkFinite: z.boolean().optional() }),
      replyTo: ref,
    }),
    z.object({ type: z.literal('host.stopGate'), gate: ref, replyTo: ref.optional() }),
    z.object({ type: z.literal('host.ping'), replyTo: ref }),
    z.object({ type: z.literal('host.gateSpawned'), gate: ref, inputShape: shape, outputShape: shape }),
    z.object({ type: z.literal('host.gateStopped') }),
    z.object({ type: z.literal('host.pong'), node: name, backend: name, pid: z.number().int() }),
    z.object({ type: z.literal('host.failed'), error: errorInfo }),
    z.object({
      type: z.literal('host.spawnSentinel'),
      spec: z.object({
        name,
        mode: z.enum(['train', 'validate', 'test']),
        data,
        batchSize: z.number().int().min(1).max(limits.maxBatch).optional(),
        concurrency: z.number().int().min(1).max(1024).optional(),
        epochs: z.number().min(1).optional(),
        loss: name.optional(),
        target: z.object({ metric: name, atLeast: z.number().optional(), atMost: z.number().optional() }).optional(),
        timeLimitMs: z.number().positive().optional(),
        batchTimeoutMs: z.number().positive().optional(),
        trigger: z.enum(['auto', 'manual']).optional(),
        shuffle: z.boolean().optional(),
        onBatchError: z.enum(['stop', 'skip']).optional(),
      }).strict(),
      first: ref,
      last: ref,
      reporter: ref,
      replyTo: ref,
    }),
    z.object({ type: z.literal('host.sentinelSpawned'), sentinel: ref }),
    z.object({ type: z.literal('sentinel.report'), event: z.enum(['batch', 'epoch', 'batchError', 'done', 'failed']), payload: z.unknown() }),
    z.object({ type: z.literal('ps.fetch'), replica, clock: count, replyTo: ref }),
    z.object({ type: z.literal('ps.push'), replica, clock: count, version: count, grads: named, replyTo: ref.optional() }),
    z.object({ type: z.literal('ps.join'), replica, clock: count, node: name.optional() }),
    z.object({ type: z.literal('ps.leave'), replica }),
    z.object({ type: z.literal('ps.getState'), replyTo: ref }),
    z.object({ type: z.literal('ps.setState'), version: count, params: named, optimizer: named, replyTo: ref }),
    z.object({ type: z.literal('ps.getStats'), replyTo: ref }),
    z.object({ type: z.literal('ps.params'), shard, version: count, params: named }),
    z.object({ type: z.literal('ps.pushed'), shard, version: count, staleness: count }),
    z.object({ type: z.literal('ps.state'), shard, version: count, params: named, optimizer: named, optimizerName: name }),
    z.object({ type: z.literal('ps.stateSet'), error: errorInfo.optional() }),
    z.object({ type: z.literal('ps.stats'), shard, version: count, pushes: count, staleness: z.array(count).max(1024), refused: count, replicas: z.array(z.object({ replica, clock: count })).max(100_000) }),
    z.object({ type: z.literal('ps.failed'), error: errorInfo }),
    z.object({ type: z.literal('replica.report'), replica, event: z.enum(['step', 'done', 'failed']), payload: z.unknown() }),
    z.object({
      type: z.literal('host.spawnReplica'),
      spec: z.object({
        replica,
        model,
        data,
        batchSize: z.number().int().min(1).max(limits.maxBatch),
        epochs: z.number().int().min(1).max(1_000_000),
        nFetch: z.number().int().min(1).max(1_000_000).optional(),
        nPush: z.number().int().min(1).max(1_000_000).optional(),
        maxDelay: z.number().int().min(0).max(1_000_000).optional(),
        seed: z.number().optional(),
      }).strict(),
      shards: z.array(z.object({ ref, parts: z.array(part).max(100_000) })).min(1).max(1024),
      reporter: ref,
      replyTo: ref,
    }),
    z.object({ type: z.literal('host.replicaSpawned'), replica }),
  ]);
}

/*
 * The schemas and the declared types (messages.ts, nodes.ts) are checked against each other at
 * compile time: every message type that crosses between nodes has a schema, and each schema has
 * exactly the fields of its type (likewise a sentinel spec and each kind of its data). A field
 * added to one and not the other fails `tsc`, naming the message type.
 */
type Inferred = z.infer<ReturnType<typeof schemas>>;
type Declared = GateMessage | GateDetached | GateState | GateStateSet | SentinelReply | SentinelControl | HostMessage | HostReply | SentinelReport | PsMessage | PsReply | ReplicaReport;
/** Declared messages that never leave their node (self-sent timers, supervision, local control). */
type LocalOnly = 'sentinel.batchTimeout' | 'sentinel.hold' | 'sentinel.connect' | 'actor.failed';
type KeysOf<U, K extends string, V> = U extends Record<K, V> ? keyof U : never;
type Drift<A, B, K extends string, V> = [KeysOf<A, K, V>] extends [KeysOf<B, K, V>] ? ([KeysOf<B, K, V>] extends [KeysOf<A, K, V>] ? never : V) : V;
type Check<T> = [T] extends [never] ? true : { drifted: T };
type InferredSpec = Extract<Inferred, { type: 'host.spawnSentinel' }>['spec'];
const everyTypeHasASchema: Check<Exclude<Declared['type'], Inferred['type'] | LocalOnly>> = true;
const schemasHaveTheirTypesFields: Check<{ [T in Inferred['type']]: Drift<Declared, Inferred, 'type', T> }[Inferred['type']]> = true;
const specHasItsFields: Check<[keyof SentinelSpec] extends [keyof InferredSpec] ? ([keyof InferredSpec] extends [keyof SentinelSpec] ? never : 'SentinelSpec') : 'SentinelSpec'> = true;
const dataKindsHaveTheirFields: Check<{ [K in DataSpec['kind']]: Drift<DataSpec, InferredSpec['data'], 'kind', K> }[DataSpec['kind']]> = true;
void [everyTypeHasASchema, schemasHaveTheirTypesFields, specHasItsFields, dataKindsHaveTheirFields];

/**
 * Makes a validator for `ActorSystemOptions.validate`: accepts the akkordeon protocol (and the
 * message types in `extra`, checked only for their `type`), rejects anything else.
 * @throws ProtocolError from the returned function, naming the message type and the first problems.
 */
export function protocolValidator(options: { limits?: Partial<SchemaLimits>; extra?: string[] } = {}): (message: Message) => void {
  const schema = schemas({ ...LIMITS, ...options.limits });
  const extra = new Set(options.extra ?? []);
  return (message) => {
    if (extra.has(message.type)) return;
    const result = schema.safeParse(message);
    if (!result.success) {
      const problems = result.error.issues.slice(0, 3).map((i) => `${i.path.join('.') || '(message)'}: ${i.message}`);
      throw new ProtocolError(`Rejected '${String(message.type).slice(0, 64)}' from another node: ${problems.join('; ')}.`);
    }
  };
}

/**
 * Answers rejected messages: a rejected batch message gets `sentinel.batchFailed` (code
 * `Protocol`) sent to its sentinel, and every rejection is logged as one line.
 */
export function answerInvalid(system: ActorSystem, log: (line: string) => void = (line) => console.error(line)): void {
  system.events.on('protocolError', (error, frame, message) => {
    log(`[${system.name}] ${error.message} (frame for ${frame.to})`);
    const m = message as { sentinel?: unknown; batch?: unknown } | undefined;
    const sentinel = m?.sentinel as ActorRef<SentinelReply> | undefined;
    if (sentinel && typeof sentinel.tell === 'function' && typeof m?.batch === 'number') {
      sentinel.tell({ type: 'sentinel.batchFailed', batch: m.batch, error: { code: error.code, message: error.message } });
    }
  });
}
