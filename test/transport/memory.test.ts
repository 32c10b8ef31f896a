/**
 * The conformance suite over the in-process transport (`connectInMemory`): two actor systems
 * of one thread, frames through the full byte codec.
 */
import { ActorSystem } from '../../src/actor/index.js';
import { TransportError } from '../../src/errors.js';
import { connectInMemory } from '../../src/transport/index.js';
import { transportConformance } from './conformance.js';

transportConformance('in-memory', async () => {
  const a = new ActorSystem({ name: 'a' });
  const b = new ActorSystem({ name: 'b' });
  const { ab } = connectInMemory(a, b);
  return {
    a,
    b,
    killB: () => ab.close(),
    close: async () => {
      await ab.close();
      a.shutdown();
      b.shutdown();
    },
  };
});

test('closing either side of an in-memory connection takes the route down on both', async () => {
  const a = new ActorSystem({ name: 'a' });
  const b = new ActorSystem({ name: 'b' });
  const { ba } = connectInMemory(a, b);
  const down: string[] = [];
  a.events.on('nodeDown', (node) => down.push(`a lost ${node === b.node ? 'b' : node}`));
  b.events.on('nodeDown', (node) => down.push(`b lost ${node === a.node ? 'a' : node}`));
  await ba.close();
  expect(down.sort()).toEqual(['a lost b', 'b lost a']);
  expect(() => ba.send({ node: a.node, to: 'x', header: '{}', buffers: [] })).toThrow(TransportError);
});
