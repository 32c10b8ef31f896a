/**
 * The nats-server configuration writer: permissions by role, generated passwords, and named
 * errors for what cannot be configured. test/nats/authorization.test.ts runs a real server on it.
 */
import { InvalidArgumentError } from '../errors.js';
import { natsServerConfig, rolePermissions } from './authorization.js';

test('a trainer may publish frames to any node as itself but read only its own; hosts answer requests', () => {
  expect(rolePermissions('mnist', 'trainer', 't1')).toEqual({
    publish: { allow: ['akk.mnist.node.*.t1', 'akk.mnist.heartbeat.t1', 'akk.mnist.registry'] },
    subscribe: { allow: ['akk.mnist.node.t1.*', 'akk.mnist.heartbeat.*', 'akk.mnist.registry.announce', '_INBOX_t1.>'] },
  });
  expect(rolePermissions('mnist', 'host', 'h1')).toMatchObject({ publish: { allow: ['akk.mnist.>'] }, allow_responses: true });
});

test('passwords are generated where not given, and bad names, twice-named users or no users are refused', () => {
  const { config, users } = natsServerConfig({ network: 'n', users: [{ user: 'a', role: 'host' }, { user: 'b', role: 'trainer', password: 'pw', node: 'b-node' }], tls: { cert: '/c.pem', key: '/k.pem', ca: '/ca.pem' } });
  expect(users[0]?.password).toMatch(/^[A-Za-z0-9_-]{32}$/);
  expect(users[1]).toMatchObject({ password: 'pw', node: 'b-node' });
  expect(config).toContain('"akk.n.node.b-node.*"');
  expect(config).toContain('verify: true');
  expect(() => natsServerConfig({ network: 'a.b', users: [{ user: 'a', role: 'host' }] })).toThrow(InvalidArgumentError);
  expect(() => natsServerConfig({ network: 'n', users: [] })).toThrow(/at least one user/);
  expect(() => natsServerConfig({ network: 'n', users: [{ user: 'a', role: 'host' }, { user: 'a', role: 'trainer' }] })).toThrow(/named twice/);
  expect(() => natsServerConfig({ network: 'n', users: [{ user: 'a b', role: 'trainer' }] })).toThrow(/Node id 'a b'/);
});
