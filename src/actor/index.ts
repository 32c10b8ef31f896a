/**
 * The actor core: an {@link ActorSystem} hosts actors, each with a mailbox that processes one
 * message at a time; typed {@link ActorRef}s address them, `tell` is fire-and-forget and
 * `ask` waits for a reply with a timeout. A failing handler is reported to its supervisor
 * (the parent) as an `actor.failed` message and handled by its {@link SupervisionPolicy}.
 */
export { ActorSystem, type ActorSystemEvents, type ActorSystemOptions } from './system.js';
export { fileTracer, type FileTracer, formatTraceSummary, type HandlerRecord, type HandlerTracer, readTrace, summarizeTrace, type ThreadSummary, TRACE_ENV, type TraceRow, tracerFromEnv } from './trace.js';
export { Mailbox } from './mailbox.js';
export { isRef, tensorsIn } from './tensors.js';
export {
  SupervisionPolicy,
  type Actor,
  type ActorContext,
  type ActorFailed,
  type ActorRef,
  type Envelope,
  type Link,
  type Message,
  type MessageCodec,
  type SpawnOptions,
} from './types.js';
