export { bridgeConflist, CNI_VERSION, loopbackConf, pluginConfig } from './cni/conflist.js';
export { CniDriver } from './cni/driver.js';
export {
  type CniCommand,
  type CniInvocation,
  type CniResult,
  DEFAULT_CNI_PATH,
  findPlugin,
  invokePlugin,
} from './cni/invoke.js';
export { type NetworkMode, parseNetworkMode, writeEtcFiles, writeFileInRoot } from './container.js';
export type { NetworkDriver } from './driver.js';
export { CniPluginError, MissingPluginError, NetworkError, type NetworkErrorKind } from './errors.js';
export { DEFAULT_DNS, type HostsEntry, hostnameFile, hostsFile, resolvConf } from './etc.js';
export { GUARD_COMMENT, pruneSharedChains, ruleset, sweepOrphanBridges } from './host.js';
export { attachmentsIn, containersIn } from './kept.js';
export { DEFAULT_SWITCHES, NetworkManager, type NetworkManagerOptions } from './manager.js';
export { NetnsDir } from './netns.js';
export { formatPorts, parsePort, resolvePorts } from './ports.js';
export { type ReconcileReport, reconcile } from './reconcile.js';
export { type CreateNetworkOptions, DEFAULT_NETWORK, NetworkStore, RESERVED } from './store.js';
export { allocateSubnet, parseCidr } from './subnet.js';
export type {
  Attachment,
  AttachOptions,
  ConfList,
  HostSwitches,
  NetworkRecord,
  PortMapping,
} from './types.js';
