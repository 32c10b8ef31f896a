/**
 * Finding the tensors a message carries: a message owns its tensors, so whoever drops a message
 * (a dead letter, a rejected frame) frees them.
 */
import * as tf from '@tensorflow/tfjs';
import type { ActorRef } from './types.js';

/** True for an actor ref (an object with an id and a `tell`). */
export function isRef(value: unknown): value is ActorRef {
  return typeof value === 'object' && value !== null && typeof (value as ActorRef).tell === 'function' && typeof (value as ActorRef).id === 'string';
}

/** Every tensor inside a message (nested objects and arrays included). */
export function tensorsIn(value: unknown, found: tf.Tensor[] = []): tf.Tensor[] {
  if (value instanceof tf.Tensor) found.push(value);
  else if (Array.isArray(value)) value.forEach((v) => tensorsIn(v, found));
  else if (value !== null && typeof value === 'object' && !isRef(value)) Object.values(value).forEach((v) => tensorsIn(v, found));
  return found;
}
