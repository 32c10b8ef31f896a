/**
 * Every error akkordeon throws or reports. Each class names what went wrong; each message says
 * what was wrong and what to do about it. A wrapped failure keeps its origin in `cause`.
 */

/** Base class of all akkordeon errors; `code` is stable across versions and safe to match on. */
export class AkkordeonError extends Error {
  /** A stable, machine-readable name such as `'ShapeMismatch'`. */
  readonly code: string;

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = new.target.name.replace(/Error$/, '');
  }
}

/** An argument or configuration value is out of range, e.g. a negative learning rate. */
export class InvalidArgumentError extends AkkordeonError {}

/** A tensor has the wrong rank, shape or feature size for the gate or loss that received it. */
export class ShapeMismatchError extends AkkordeonError {}

/** A tensor holds NaN or ±Infinity where finite numbers are required. */
export class NonFiniteError extends AkkordeonError {}

/** A class label is not an integer in `[0, numClasses)`. */
export class LabelRangeError extends AkkordeonError {}

/** A data file is missing, truncated, or not in the format it claims (e.g. a bad IDX magic number). */
export class DataFormatError extends AkkordeonError {}

/** A checkpoint does not match the network it is loaded into (names, shapes, or missing files). */
export class CheckpointMismatchError extends AkkordeonError {}

/** An `ask` got no reply within its timeout (ms). */
export class AskTimeoutError extends AkkordeonError {}

/** A message was sent to an actor that has stopped, or to an address no actor holds. */
export class ActorStoppedError extends AkkordeonError {}

/** A message arrived that its receiver does not understand. */
export class UnknownMessageError extends AkkordeonError {}

/** A backward message names a batch the gate holds no forward state for (never sent, or detached). */
export class UnknownBatchError extends AkkordeonError {}

/** A message from another node is malformed or over a limit; it was rejected unread. */
export class ProtocolError extends AkkordeonError {}

/**
 * A node sends more than its receiver keeps: more messages than an actor queues from other
 * nodes, or more batches in flight at a gate than it holds for one sentinel or node. The
 * message was dropped (its batch fails at its sentinel); other senders are unaffected.
 */
export class OverloadError extends ProtocolError {}

/**
 * A node sent a message its role does not allow (e.g. a trainer's `gate.setState`); it was
 * rejected unread. Give the node a role that allows it (`npm run nats-config`), or send it from one.
 */
export class UnauthorizedError extends ProtocolError {}

/**
 * Two processes host the same gate of a network, or one network name is hosted as two
 * different models; the message names the nodes and the fix.
 */
export class GateConflictError extends AkkordeonError {}

/** A transport could not reach its peer (a NATS server, a worker, a child process, a network). */
export class TransportError extends AkkordeonError {}

/** No tfjs backend could be initialised. */
export class BackendError extends AkkordeonError {}

/** Renders any thrown value as a one-line message, for logs and error replies. */
export function describeError(error: unknown): string {
  if (error instanceof Error) return `${error.name}: ${error.message}`;
  return String(error);
}

const ERROR_CLASSES: Record<string, new (message: string) => AkkordeonError> = {
  InvalidArgument: InvalidArgumentError,
  ShapeMismatch: ShapeMismatchError,
  NonFinite: NonFiniteError,
  LabelRange: LabelRangeError,
  DataFormat: DataFormatError,
  CheckpointMismatch: CheckpointMismatchError,
  AskTimeout: AskTimeoutError,
  ActorStopped: ActorStoppedError,
  UnknownMessage: UnknownMessageError,
  UnknownBatch: UnknownBatchError,
  Backend: BackendError,
  Protocol: ProtocolError,
  Transport: TransportError,
};

/** An error as it crosses actor boundaries: the error class's code and its message. */
export interface ErrorInfo {
  code: string;
  message: string;
}

/** Describes an error for a message to another actor. */
export function toErrorInfo(error: unknown): ErrorInfo {
  if (error instanceof AkkordeonError) return { code: error.code, message: error.message };
  if (error instanceof Error) return { code: error.name, message: error.message };
  return { code: 'Error', message: String(error) };
}

/** Rebuilds an error that crossed an actor boundary as an instance of its original class. */
export function fromErrorInfo(info: ErrorInfo): AkkordeonError {
  const Class = ERROR_CLASSES[info.code];
  if (Class) return new Class(info.message);
  const error = new AkkordeonError(`${info.code}: ${info.message}`);
  return error;
}
