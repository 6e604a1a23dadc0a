export { ExecError, pathOf, resolveExecutable } from './exec.js';
export { inNewPidNamespace, inPidNamespaceAt, inPidNamespaceOf, Pid1Process, spawnPid1 } from './spawn.js';
export { type StartPid1Options, startPid1 } from './start.js';
export {
  FORWARDED_SIGNALS,
  type ReapZombie,
  SUPERVISOR_FLAG,
  type SupervisorConfig,
  superviseChild,
} from './supervise.js';
export { supervisorSource } from './supervisor-source.js';
export {
  flattenTree,
  formatTree,
  namespacePids,
  namespaceTree,
  type ProcessNode,
  pidNamespaceOf,
} from './tree.js';
