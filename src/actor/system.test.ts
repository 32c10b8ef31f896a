/**
 * The actor system: per-sender FIFO, one message at a time (also across async handlers), `ask`
 * with replies, time-outs and stopped targets, and the three supervision policies.
 */
import { ActorStoppedError, AskTimeoutError } from '../errors.js';
import { ActorSystem } from './system.js';
import type { Actor, ActorFailed, ActorRef, Message, SupervisionPolicy } from './types.js';

/** A promise with its resolve function exposed. */
function deferred<T = void>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

/** Yields to the event loop once (lets other mailboxes run); not a timer. */
const turn = () => new Promise<void>((r) => setImmediate(r));

type Ping = { type: 'ping'; replyTo: ActorRef<Pong> };
type Pong = { type: 'pong'; count: number };
type Work = { type: 'work'; n: number };
type Boom = { type: 'boom'; async?: boolean };
type Msg = Ping | Work | Boom;

/** A counter actor: counts `work` messages, fails on `boom`, answers `ping` with its count. */
class Counter implements Actor<Msg> {
  count = 0;
  postStops = 0;
  constructor(readonly log?: number[]) {}
  receive(message: Msg): void | Promise<void> {
    switch (message.type) {
      case 'work':
        this.count++;
        this.log?.push(message.n);
        return;
      case 'ping':
        return message.replyTo.tell({ type: 'pong', count: this.count });
      case 'boom':
        if (message.async) return Promise.reject(new Error('async boom'));
        throw new Error('boom');
    }
  }
  postStop(): void {
    this.postStops++;
  }
}

let system: ActorSystem;
beforeEach(() => {
  system = new ActorSystem('test');
});
afterEach(() => system.shutdown());

const ping = (ref: ActorRef<Msg>) => system.ask<Pong, Msg>(ref, (replyTo) => ({ type: 'ping', replyTo }), 5000);

describe('mailbox', () => {
  test('messages from one sender arrive in order', async () => {
    const log: number[] = [];
    const ref = system.spawn<Msg>(() => new Counter(log));
    for (let n = 0; n < 200; n++) ref.tell({ type: 'work', n });
    const pong = await ping(ref); // FIFO: the ping is handled after all 200 work messages
    expect(pong.count).toBe(200);
    expect(log).toEqual(Array.from({ length: 200 }, (_, i) => i));
  });

  test('an async handler delays the next message: one message at a time', async () => {
    const events: string[] = [];
    let active = 0;
    let maxActive = 0;
    const ref = system.spawn<Msg>(() => ({
      async receive(message) {
        if (message.type === 'ping') return message.replyTo.tell({ type: 'pong', count: 0 });
        if (message.type !== 'work') return;
        active++;
        maxActive = Math.max(maxActive, active);
        events.push(`start ${message.n}`);
        for (let i = 0; i < 3; i++) await turn(); // give a concurrent delivery every chance
        events.push(`end ${message.n}`);
        active--;
      },
    }));
    for (let n = 0; n < 4; n++) ref.tell({ type: 'work', n });
    await ping(ref);
    expect(maxActive).toBe(1);
    expect(events).toEqual(['start 0', 'end 0', 'start 1', 'end 1', 'start 2', 'end 2', 'start 3', 'end 3']);
  });

  test('a pending async handler holds back the next message until it settles', async () => {
    const release = deferred();
    const started = deferred();
    const handled: number[] = [];
    const ref = system.spawn<Msg>(() => ({
      async receive(message) {
        if (message.type === 'ping') return message.replyTo.tell({ type: 'pong', count: handled.length });
        if (message.type !== 'work') return;
        if (message.n === 0) {
          started.resolve();
          await release.promise;
        }
        handled.push(message.n);
      },
    }));
    ref.tell({ type: 'work', n: 0 });
    ref.tell({ type: 'work', n: 1 });
    await started.promise;
    for (let i = 0; i < 5; i++) await turn();
    expect(handled).toEqual([]); // message 1 waits behind the unsettled handler of message 0
    release.resolve();
    expect((await ping(ref)).count).toBe(2);
    expect(handled).toEqual([0, 1]);
  });
});

describe('ask', () => {
  test('resolves with the reply', async () => {
    const ref = system.spawn<Msg>(() => new Counter());
    ref.tell({ type: 'work', n: 0 });
    ref.tell({ type: 'work', n: 1 });
    await expect(ping(ref)).resolves.toEqual({ type: 'pong', count: 2 });
  });

  test('to a silent actor rejects with AskTimeoutError', async () => {
    const ref = system.spawn<Msg>(() => ({ receive: () => undefined }), { name: 'silent' });
    const started = Date.now();
    const error = await system.ask<Pong, Msg>(ref, (replyTo) => ({ type: 'ping', replyTo }), 50).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AskTimeoutError);
    expect((error as Error).message).toMatch(/silent.*50 ms/);
    expect(Date.now() - started).toBeGreaterThanOrEqual(45);
  });

  test('to a stopped actor rejects with ActorStoppedError', async () => {
    const ref = system.spawn<Msg>(() => new Counter(), { name: 'gone' });
    system.stop(ref);
    expect(system.isAlive(ref)).toBe(false);
    await expect(ping(ref)).rejects.toBeInstanceOf(ActorStoppedError);
    await expect(ping(ref)).rejects.toThrow(/gone/);
  });
});

describe('supervision', () => {
  /** Spawns a Counter under `policy`, returns its ref and the instances the factory made. */
  function spawnCounter(policy: SupervisionPolicy, parent?: ActorRef) {
    const instances: Counter[] = [];
    const ref = system.spawn<Msg>(
      () => {
        const counter = new Counter();
        instances.push(counter);
        return counter;
      },
      { supervision: policy, parent, name: `counter-${policy}` },
    );
    return { ref, instances };
  }

  /** Resolves with the next top-level failure. */
  const nextFailure = () => new Promise<ActorFailed>((resolve) => system.events.once('failure', resolve));

  test.each([false, true])("'resume' keeps the actor and its state (async handler: %s)", async (async) => {
    const { ref, instances } = spawnCounter('resume');
    const failure = nextFailure();
    ref.tell({ type: 'work', n: 0 });
    ref.tell({ type: 'boom', async });
    ref.tell({ type: 'work', n: 1 });
    expect((await ping(ref)).count).toBe(2); // the message after the failure was processed
    const reported = await failure;
    expect(reported.policy).toBe('resume');
    expect((reported.error as Error).message).toBe(async ? 'async boom' : 'boom');
    expect(instances).toHaveLength(1);
    expect(system.isAlive(ref)).toBe(true);
  });

  test.each([false, true])("'restart' replaces the instance with a fresh one (async handler: %s)", async (async) => {
    const { ref, instances } = spawnCounter('restart');
    const failure = nextFailure();
    ref.tell({ type: 'work', n: 0 });
    ref.tell({ type: 'work', n: 1 });
    ref.tell({ type: 'boom', async });
    ref.tell({ type: 'work', n: 2 });
    expect((await ping(ref)).count).toBe(1); // state reset: only the message after the restart
    expect((await failure).policy).toBe('restart');
    expect(instances).toHaveLength(2);
    expect(instances[0]?.count).toBe(2);
    expect(instances[0]?.postStops).toBe(1); // the old instance was shut down
    expect(system.isAlive(ref)).toBe(true);
  });

  test.each([false, true])("'stop' turns later messages into dead letters (async handler: %s)", async (async) => {
    const { ref, instances } = spawnCounter('stop');
    const dead: Message[] = [];
    system.events.on('deadLetter', (target, message) => {
      if (target.id === ref.id) dead.push(message);
    });
    const failure = nextFailure();
    ref.tell({ type: 'boom', async });
    ref.tell({ type: 'work', n: 1 }); // queued behind the failure: never handled
    expect((await failure).policy).toBe('stop');
    expect(system.isAlive(ref)).toBe(false);
    ref.tell({ type: 'work', n: 2 }); // sent after the stop
    expect(dead).toEqual([
      { type: 'work', n: 1 },
      { type: 'work', n: 2 },
    ]);
    expect(instances[0]?.count).toBe(0);
    expect(instances[0]?.postStops).toBe(1);
    await expect(ping(ref)).rejects.toBeInstanceOf(ActorStoppedError);
  });

  test.each([false, true])('the parent receives actor.failed with the error and policy (async handler: %s)', async (async) => {
    const received = deferred<ActorFailed>();
    const parent = system.spawn<ActorFailed>(() => ({ receive: (message) => received.resolve(message) }), { name: 'parent' });
    let topLevelFailures = 0;
    system.events.on('failure', () => topLevelFailures++);
    const { ref } = spawnCounter('resume', parent);
    ref.tell({ type: 'boom', async });
    const failed = await received.promise;
    expect(failed.type).toBe('actor.failed');
    expect(failed.actor.id).toBe(ref.id);
    expect(failed.messageType).toBe('boom');
    expect(failed.policy).toBe('resume');
    expect(failed.error).toBeInstanceOf(Error);
    expect((failed.error as Error).message).toBe(async ? 'async boom' : 'boom');
    expect(topLevelFailures).toBe(0); // a supervised failure does not reach the system event
  });

  test('a top-level failure is emitted as the system failure event', async () => {
    const { ref } = spawnCounter('resume');
    const failure = nextFailure();
    ref.tell({ type: 'boom' });
    const reported = await failure;
    expect(reported).toMatchObject({ type: 'actor.failed', messageType: 'boom', policy: 'resume' });
    expect(reported.actor.id).toBe(ref.id);
  });

  test('a throwing preStart is reported as a failure of actor.preStart', async () => {
    const failure = nextFailure();
    system.spawn<Msg>(() => ({
      preStart: () => {
        throw new Error('cannot start');
      },
      receive: () => undefined,
    }));
    const reported = await failure;
    expect(reported.messageType).toBe('actor.preStart');
    expect((reported.error as Error).message).toBe('cannot start');
  });
});

test('context.stop stops the actor after the current message and runs postStop', async () => {
  const stopped = deferred();
  const ref = system.spawn<Msg>(() => ({
    receive: (message, context) => {
      if (message.type === 'work') context.stop();
    },
    postStop: () => stopped.resolve(),
  }));
  ref.tell({ type: 'work', n: 0 });
  await stopped.promise;
  expect(system.isAlive(ref)).toBe(false);
});

test('a dead letter is reported, then its tensors are freed', async () => {
  const tf = await import('@tensorflow/tfjs');
  const system = new ActorSystem();
  const gone = system.spawn(() => ({ receive: () => undefined }));
  system.stop(gone);
  const baseline = tf.memory().numTensors;
  const seen: string[] = [];
  system.events.on('deadLetter', (_target, message) => {
    const x = (message as unknown as { x: import('@tensorflow/tfjs').Tensor }).x;
    seen.push(`${message.type} ${x.isDisposed ? 'freed' : 'live'}`); // readable while reported
  });
  gone.tell({ type: 'gate.forward', x: tf.zeros([2, 3]) } as never);
  expect(seen).toEqual(['gate.forward live']);
  expect(tf.memory().numTensors).toBe(baseline);
  system.shutdown();
});
