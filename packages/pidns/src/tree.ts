import { readdirSync, readFileSync, readlinkSync } from 'node:fs';

/** One process of a PID namespace's tree. */
export interface ProcessNode {
  /** PID seen from the host (the caller's namespace). */
  hostPid: number;
  /** PID seen inside the namespace (last field of NSpid). */
  nsPid: number;
  /** Parent's PID seen from the host (0 for the namespace's PID 1). */
  hostPpid: number;
  /** The command line, or [comm] for a process without one (a kernel thread or zombie). */
  command: string;
  /** Process state letter from /proc/PID/status (R, S, Z, ...). */
  state: string;
  children: ProcessNode[];
}

interface ProcInfo {
  hostPid: number;
  nsPid: number;
  hostPpid: number;
  state: string;
  name: string;
}

function readStatus(pid: number): ProcInfo | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return null; // gone while we looked
  }
  const field = (k: string) => new RegExp(`^${k}:\\s*(.*)$`, 'm').exec(text)?.[1] ?? '';
  const nspids = field('NSpid').split(/\s+/).map(Number);
  return {
    hostPid: pid,
    nsPid: nspids[nspids.length - 1],
    hostPpid: Number(field('PPid')),
    state: field('State').charAt(0),
    name: field('Name'),
  };
}

function commandLine(pid: number, name: string): string {
  try {
    const raw = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    const args = raw.split('\0').filter((a, i, all) => a !== '' || i < all.length - 1);
    if (args.length) return args.join(' ');
  } catch {
    // gone
  }
  return `[${name}]`;
}

/** The inode link of a process's PID namespace, e.g. `pid:[4026532301]`, or null when gone. */
export function pidNamespaceOf(pid: number): string | null {
  try {
    return readlinkSync(`/proc/${pid}/ns/pid`);
  } catch {
    return null;
  }
}

/** Host PIDs of every process in the PID namespace of `memberPid` (visible from here). */
export function namespacePids(memberPid: number): number[] {
  const ns = pidNamespaceOf(memberPid);
  if (!ns) return [];
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    const pid = Number(entry);
    if (Number.isInteger(pid) && pid > 0 && pidNamespaceOf(pid) === ns) pids.push(pid);
  }
  return pids;
}

/**
 * The process tree of the PID namespace that `memberPid` is in, as roots (normally one: the
 * namespace's PID 1), each node with its host PID and its PID inside.
 */
export function namespaceTree(memberPid: number): ProcessNode[] {
  const nodes = new Map<number, ProcessNode>();
  for (const pid of namespacePids(memberPid)) {
    const info = readStatus(pid);
    if (!info) continue;
    nodes.set(pid, {
      hostPid: info.hostPid,
      nsPid: info.nsPid,
      hostPpid: info.hostPpid,
      state: info.state,
      command: commandLine(pid, info.name),
      children: [],
    });
  }
  const roots: ProcessNode[] = [];
  for (const node of [...nodes.values()].sort((a, b) => a.nsPid - b.nsPid)) {
    const parent = nodes.get(node.hostPpid);
    if (parent) parent.children.push(node);
    else roots.push(node);
  }
  return roots;
}

/** All nodes of a tree, depth first. */
export function flattenTree(roots: readonly ProcessNode[]): ProcessNode[] {
  const out: ProcessNode[] = [];
  const walk = (n: ProcessNode) => {
    out.push(n);
    n.children.forEach(walk);
  };
  roots.forEach(walk);
  return out;
}

/**
 * Draws a tree as lines `HOSTPID (NSPID) COMMAND`, children indented under their parent:
 *   8937 (1) bash
 *   └─ 8938 (4539) nginx
 */
export function formatTree(roots: readonly ProcessNode[]): string {
  const lines: string[] = [];
  const walk = (n: ProcessNode, prefix: string, branch: string, last: boolean) => {
    lines.push(`${prefix}${branch}${n.hostPid} (${n.nsPid}) ${n.command}`);
    const childPrefix = branch ? prefix + (last ? '   ' : '│  ') : prefix;
    n.children.forEach((c, i) => {
      const isLast = i === n.children.length - 1;
      walk(c, childPrefix, isLast ? '└─ ' : '├─ ', isLast);
    });
  };
  for (const r of roots) walk(r, '', '', true);
  return lines.join('\n');
}
