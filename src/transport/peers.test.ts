/** Peer liveness with an injected clock: up, goodbye, timeout, a stalled process, coming back. */
import { PeerTable } from './peers.js';

function table() {
  let now = 0;
  const events: string[] = [];
  const peers = new PeerTable(
    { up: (node) => events.push(`up ${node}`), down: (node, reason) => events.push(`down ${node} ${reason ?? 'cleared'}`) },
    () => now,
  );
  return { peers, events, at: (t: number) => (now = t) };
}

test('a peer is up from its first heartbeat and down after timeoutMs of silence', () => {
  const { peers, events, at } = table();
  peers.heard('a', 'train', false);
  at(1000);
  peers.check(5000);
  expect(peers.nodes.get('a')).toBe('train');
  at(3000); // checks run often; each check sees the clock move a little
  peers.check(5000);
  at(5500);
  peers.check(5000);
  expect(events).toEqual(['up a', 'down a timeout']);
  expect(peers.isDown('a')).toBe(true);
  peers.heard('a', 'train', false); // heard again: up again
  expect(peers.isDown('a')).toBe(false);
  expect(events.at(-1)).toBe('up a');
});

test('a goodbye takes a peer down at once; a stalled check gives peers the benefit of the doubt', () => {
  const { peers, events, at } = table();
  peers.heard('a', undefined, false);
  peers.heard('b', undefined, false);
  peers.heard('b', undefined, true);
  expect(events).toEqual(['up a', 'up b', 'down b left']);
  at(60_000); // this process was busy for a minute: no peer is judged on that silence
  peers.check(5000);
  expect(peers.nodes.has('a')).toBe(true);
  at(62_000);
  peers.check(5000);
  expect(peers.nodes.has('a')).toBe(true); // last seen counts from half a timeout before the stall
  at(64_000);
  peers.check(5000);
  expect(events.at(-1)).toBe('down a timeout');
});

test('clear forgets peers without marking them down', () => {
  const { peers, events } = table();
  peers.heard('a', undefined, false);
  peers.clear();
  expect(events).toEqual(['up a', 'down a cleared']);
  expect(peers.isDown('a')).toBe(false);
});
