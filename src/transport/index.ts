/**
 * Transports: how frames travel between actor systems. A link carries wire frames (see `wire/`)
 * to a peer and hands arriving ones to `ActorSystem.receiveFrame`; every transport installs the
 * wire codec in the systems it connects. In-process links come first; worker threads, child
 * processes and NATS follow the same interface.
 */
export { connectInMemory } from './memory.js';
export { spawnWorkerNode, type WorkerNode } from './worker.js';
export { spawnProcessNode, type ProcessNode } from './process.js';
export type { NodeOptions, RemoteNode } from './channel.js';
export { connectNats, DEFAULT_MAX_PAYLOAD, natsSubject, NatsNode, SUBJECT_TOKEN, type NatsNodeEvents, type NatsOptions } from './nats.js';
