import { MS } from '@corral/sys';

/** What an OCI mount's options mean for mount(2). */
export interface ParsedMountOptions {
  flags: number;
  /** Flags to clear (rw, suid, dev, exec, ...), relevant for remounts. */
  clear: number;
  propagation: number;
  bind: boolean;
  recursive: boolean;
  /** Options the filesystem itself reads, joined with commas. */
  data: string;
}

const FLAGS: Record<string, [set: number, clear: number]> = {
  ro: [MS.RDONLY, 0],
  rw: [0, MS.RDONLY],
  nosuid: [MS.NOSUID, 0],
  suid: [0, MS.NOSUID],
  nodev: [MS.NODEV, 0],
  dev: [0, MS.NODEV],
  noexec: [MS.NOEXEC, 0],
  exec: [0, MS.NOEXEC],
  sync: [MS.SYNCHRONOUS, 0],
  async: [0, MS.SYNCHRONOUS],
  dirsync: [MS.DIRSYNC, 0],
  remount: [MS.REMOUNT, 0],
  mand: [MS.MANDLOCK, 0],
  nomand: [0, MS.MANDLOCK],
  atime: [0, MS.NOATIME],
  noatime: [MS.NOATIME, 0],
  diratime: [0, MS.NODIRATIME],
  nodiratime: [MS.NODIRATIME, 0],
  relatime: [MS.RELATIME, 0],
  norelatime: [0, MS.RELATIME],
  strictatime: [MS.STRICTATIME, 0],
  nostrictatime: [0, MS.STRICTATIME],
  nosymfollow: [MS.NOSYMFOLLOW, 0],
  defaults: [0, 0],
};

const PROPAGATION: Record<string, number> = {
  private: MS.PRIVATE,
  rprivate: MS.PRIVATE | MS.REC,
  shared: MS.SHARED,
  rshared: MS.SHARED | MS.REC,
  slave: MS.SLAVE,
  rslave: MS.SLAVE | MS.REC,
  unbindable: MS.UNBINDABLE,
  runbindable: MS.UNBINDABLE | MS.REC,
};

export function parseMountOptions(options: readonly string[] = []): ParsedMountOptions {
  const out: ParsedMountOptions = {
    flags: 0,
    clear: 0,
    propagation: 0,
    bind: false,
    recursive: false,
    data: '',
  };
  const data: string[] = [];
  for (const o of options) {
    if (o === 'bind' || o === 'rbind') {
      out.bind = true;
      out.recursive ||= o === 'rbind';
    } else if (FLAGS[o]) {
      out.flags = (out.flags | FLAGS[o][0]) & ~FLAGS[o][1];
      out.clear |= FLAGS[o][1];
    } else if (PROPAGATION[o] !== undefined) {
      out.propagation |= PROPAGATION[o];
    } else {
      data.push(o);
    }
  }
  out.data = data.join(',');
  return out;
}

/** mount(2) propagation flags for a spec's rootfsPropagation (default: rprivate). */
export function rootPropagation(value: string | undefined): number {
  return PROPAGATION[value ?? 'rprivate'] ?? MS.PRIVATE | MS.REC;
}

/** Every mount option that parseMountOptions gives a meaning (for `corral-runtime features`). */
export const MOUNT_OPTION_NAMES: readonly string[] = [
  ...Object.keys(FLAGS),
  ...Object.keys(PROPAGATION),
  'bind',
  'rbind',
].sort();
