/**
 * The link type of the transports: an actor-system {@link ActorLink} that carries wire frames.
 */
import type { Link as ActorLink } from '../actor/index.js';
import type { Frame } from '../wire/index.js';

/** One direction of a connection: frames out. Frames in are handed to `ActorSystem.receiveFrame`. */
export type Link = ActorLink<Frame>;
