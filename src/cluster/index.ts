/**
 * Networks across machines over NATS: gate discovery and registries of network slices, a
 * sentinel attaching to a network hosted elsewhere ({@link attachRemote}), and a process hosting
 * its slice of a network's gates ({@link hostGates}).
 */
export {
  announceSubject,
  attachRemote,
  directoryConflict,
  discoverNetwork,
  listSlices,
  parseSlice,
  registrySubject,
  serveRegistry,
  sliceConflict,
  type AttachRemoteOptions,
  type DiscoveredGate,
  type DiscoveryOptions,
  type NetworkDirectory,
  type PlannedSlice,
  type RegistryGate,
  type RegistrySlice,
  type RemoteAttachment,
  type RemoteAttachmentEvents,
} from './discovery.js';
export {
  hostGates,
  type HostedGate,
  type HostedGates,
  type HostedGatesEvents,
  type HostGatesOptions,
} from './remote.js';
export { loadNetworkRoles, natsServerConfig, PRIVILEGED_MESSAGES, roleAuthorizer, rolePermissions, type NatsPermissions, type NatsRole, type NatsServerConfigOptions, type NatsUser, type NetworkRoles } from './authorization.js';
