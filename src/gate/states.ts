/**
 * Requests of gate states (weights and optimizer slots) over the gate protocol, shared by the
 * network, checkpoints and hosted gates.
 */
import type { ActorRef, Message } from '../actor/index.js';
import { fromErrorInfo, InvalidArgumentError } from '../errors.js';
import type { NamedTensor } from '../optim/index.js';
import type { GateMessage, GateState, GateStateSet } from '../protocol/index.js';

/** Asks one gate and resolves with its reply (with the caller's timeout and failure handling). */
export type AskGate = <R extends Message>(gate: ActorRef<GateMessage>, build: (replyTo: ActorRef<R>) => GateMessage) => Promise<R>;

/** Disposes every tensor of `states` (what {@link getGateStates} and `getState` hand their caller). */
export function disposeStates(states: GateState[]): void {
  states.forEach((s) => [...s.weights, ...s.optimizer].forEach((t) => t.tensor.dispose()));
}

/** Copies of every gate's weights, optimizer state and layer configs, in gate order; the caller owns them. */
export function getGateStates(gates: ActorRef<GateMessage>[], ask: AskGate): Promise<GateState[]> {
  return Promise.all(gates.map((gate) => ask<GateState>(gate, (replyTo) => ({ type: 'gate.getState', replyTo }))));
}

/**
 * Replaces every gate's weights (and optimizer state, if given); the tensors are consumed.
 * `owner` names the gates' holder in the error (e.g. `'this network'`).
 * @throws InvalidArgumentError for the wrong number of states; the first gate's named error
 *   (e.g. CheckpointMismatchError), in which case that gate is unchanged.
 */
export async function setGateStates(gates: ActorRef<GateMessage>[], states: { weights: NamedTensor[]; optimizer?: NamedTensor[] }[], ask: AskGate, owner: string): Promise<void> {
  if (states.length !== gates.length) {
    states.forEach((s) => [...s.weights, ...(s.optimizer ?? [])].forEach((t) => t.tensor.dispose()));
    throw new InvalidArgumentError(`Got state for ${states.length} gates but ${owner} has ${gates.length}.`);
  }
  const replies = await Promise.all(
    gates.map((gate, i) => ask<GateStateSet>(gate, (replyTo) => ({ type: 'gate.setState', weights: states[i]?.weights ?? [], optimizer: states[i]?.optimizer, replyTo }))),
  );
  const failed = replies.find((r) => r.error);
  if (failed?.error) throw fromErrorInfo(failed.error);
}
