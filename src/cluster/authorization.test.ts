/**
 * The nats-server configuration writer: permissions by role, generated passwords, and named
 * errors for what cannot be configured. test/nats/authorization.test.ts runs a real server on it.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { InvalidArgumentError, UnauthorizedError } from '../errors.js';
import { loadNetworkRoles, natsServerConfig, roleAuthorizer, rolePermissions } from './authorization.js';

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

test('roleAuthorizer refuses privileged messages, and batches or detaches in another node\'s name, from nodes that are not hosts or admins (or served by one)', async () => {
  const authorize = roleAuthorizer({ network: 'n', roles: { h: 'host', t: 'trainer', a: 'admin' } });
  expect(() => authorize({ type: 'gate.setState' }, 't')).toThrow(UnauthorizedError);
  expect(() => authorize({ type: 'host.spawnSentinel' }, 'stranger')).toThrow(/its role: none/);
  expect(() => authorize({ type: 'gate.detach', node: 'h' } as never, 't')).toThrow(/may not send 'gate.detach'/);
  expect(() => authorize({ type: 'gate.setState' }, '__proto__')).toThrow(UnauthorizedError);
  for (const sender of ['h', 'a', 'h_auto-0-abc123', undefined]) expect(() => authorize({ type: 'gate.setState' }, sender)).not.toThrow();
  for (const type of ['gate.shardOutput', 'sentinel.logits', 'sentinel.finish']) expect(() => authorize({ type }, 't')).toThrow(/only hosts and admins may/);
  // A trainer's batches and detaches name its own sentinels (on its node or its threads), never another node's.
  expect(() => authorize({ type: 'gate.forward', sentinel: { node: 't' } } as never, 't')).not.toThrow();
  expect(() => authorize({ type: 'gate.backward', sentinel: { node: 't_auto-1' } } as never, 't')).not.toThrow();
  expect(() => authorize({ type: 'gate.backward', sentinel: { node: 'h' } } as never, 't')).toThrow(/for a sentinel on another node/);
  expect(() => authorize({ type: 'gate.abort', sentinel: { node: 'tt' } } as never, 't')).toThrow(UnauthorizedError);
  expect(() => authorize({ type: 'gate.detach', sentinelId: 'x', node: 't' } as never, 't')).not.toThrow();
  expect(() => authorize({ type: 'gate.detach', node: 't' } as never, 't')).not.toThrow();
  expect(() => authorize({ type: 'gate.detach', sentinelId: 'x' } as never, 't')).toThrow(/only its own sentinels/);
  expect(() => authorize({ type: 'gate.detach', sentinelId: 'x', node: 'u' } as never, 't')).toThrow(/only its own sentinels/);
  expect(() => authorize({ type: 'gate.detach', sentinelId: 'x', node: 'u' } as never, 'a')).not.toThrow();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'akkordeon-roles-'));
  try {
    writeFileSync(path.join(dir, 'roles.json'), JSON.stringify({ network: 'n', roles: { t: 'superuser' } }));
    await expect(loadNetworkRoles(path.join(dir, 'roles.json'), 'n')).rejects.toThrow(/is not a roles file: roles.t/);
    writeFileSync(path.join(dir, 'roles.json'), JSON.stringify({ network: 'm', roles: {} }));
    await expect(loadNetworkRoles(path.join(dir, 'roles.json'), 'n')).rejects.toThrow(/roles of network 'm', not 'n'/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
