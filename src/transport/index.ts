/**
 * Transports: how frames travel between actor systems. A link carries wire frames (see `wire/`)
 * to a peer and hands arriving ones to `ActorSystem.receiveFrame`; every transport installs the
 * wire codec in the systems it connects. In-process links come first; worker threads, child
 * processes and NATS follow the same interface.
 */
export { connectInMemory } from './memory.js';
export { NODE_BOOTSTRAP, startWorkerNode, type WorkerNode } from './worker.js';
export { startProcessNode, type ProcessNode } from './process.js';
export { childNodeId, NODE_HOST_ID, type NodeOptions, type RemoteNode } from './channel.js';
export { DEFAULT_MAX_PAYLOAD, inboxPrefixOf, natsSubject, NatsNode, SUBJECT_TOKEN, type NatsNodeEvents, type NatsOptions } from './nats.js';
export { connectNats } from './nats-connect.js';
