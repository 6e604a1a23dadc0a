export { ExecError, pathOf, resolveExecutable } from './exec.js';
export { inNewPidNamespace, inPidNamespaceOf, Pid1Process, spawnPid1 } from './spawn.js';
export { type StartPid1Options, startPid1 } from './start.js';
export { FORWARDED_SIGNALS, superviseChild } from './supervise.js';
export {
  flattenTree,
  formatTree,
  namespacePids,
  namespaceTree,
  type ProcessNode,
  pidNamespaceOf,
} from './tree.js';
