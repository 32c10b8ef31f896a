/**
 * The protocol between nodes: the message types of gates and sentinels (`messages.ts`) and,
 * beside them, the zod schemas that validate each message arriving from another node
 * (`schema.ts`, checked at compile time to cover every message type), bounded by the wire's one
 * set of limits.
 */
export type * from './messages.js';
export { answerInvalid, protocolValidator, type SchemaLimits } from './schema.js';
