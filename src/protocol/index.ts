/**
 * The protocol between nodes, in one place: the message types of gates and sentinels
 * (`messages.ts`), of hosts and sentinel control, with gates and sentinels as data (`nodes.ts`),
 * and beside them the zod schemas that validate each message arriving from another node
 * (`schema.ts`), bounded by the wire's one set of limits. The schemas and the types are checked
 * against each other at compile time, field by field.
 */
export type * from './messages.js';
export type * from './nodes.js';
export type * from './ps.js';
export { answerInvalid, protocolValidator, type SchemaLimits } from './schema.js';
