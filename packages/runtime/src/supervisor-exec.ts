// A container's init under --init (the run.corral.init annotation) becomes a supervisor that
// is born inside the container: a fresh node, started by execve after pivot_root, so that
// every one of its threads has the container's root and mount namespace from the first.
// (The init itself cannot stay: unshare and pivot_root moved only its main thread, and Node's
// other threads keep the host's root; see ../shared/DESIGN.md.)
//
// The container's root has no node and no C library of ours, so the init runs the host's
// dynamic loader directly, from a read-only view, and hands it node and the library folders
// as paths through fds opened before pivot_root (/proc/self/fd/N/...). The supervisor closes
// those fds before the container's program exists.
import { closeSync, openSync, readFileSync, readSync, realpathSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import { SUPERVISOR_FLAG, type SupervisorConfig, supervisorSource } from '@corral/pidns';
import { clearCloexec, execve } from '@corral/sys';
import { SetupError } from './process-setup.js';
import { readOnlyView } from './sealed.js';

/** Fds on read-only views of the host folders the supervisor's node needs, opened before pivot_root. */
export interface SupervisorViews {
  /** The dynamic loader, the node binary and koffi's native module, as paths through the views. */
  loader: string;
  node: string;
  koffi: string;
  /** The folders of the shared libraries node and koffi load. */
  libraryPath: string;
  fds: number[];
  /** The supervisor's module, read while its file is still reachable. */
  source: string;
}

/** The ELF interpreter (PT_INTERP) of a 64-bit little-endian executable. */
export function elfInterpreter(file: string): string {
  const fd = openSync(file, 'r');
  try {
    const head = Buffer.alloc(64);
    readSync(fd, head, 0, 64, 0);
    if (head.readUInt32BE(0) !== 0x7f454c46 || head[4] !== 2 || head[5] !== 1)
      throw new SetupError(`${file} is not a 64-bit little-endian ELF binary: --init cannot run it`);
    const phoff = Number(head.readBigUInt64LE(32));
    const phentsize = head.readUInt16LE(54);
    const phnum = head.readUInt16LE(56);
    const ph = Buffer.alloc(phentsize * phnum);
    readSync(fd, ph, 0, ph.length, phoff);
    for (let i = 0; i < phnum; i++) {
      const at = i * phentsize;
      if (ph.readUInt32LE(at) !== 3 /* PT_INTERP */) continue;
      const offset = Number(ph.readBigUInt64LE(at + 8));
      const size = Number(ph.readBigUInt64LE(at + 32));
      const name = Buffer.alloc(size);
      readSync(fd, name, 0, size, offset);
      return name.toString('utf8').replace(/\0+$/, '');
    }
    throw new SetupError(`${file} has no ELF interpreter: --init cannot run it`);
  } finally {
    closeSync(fd);
  }
}

/** Shared objects this process has mapped (node's libraries and koffi's native module). */
function mappedLibraries(): string[] {
  const out = new Set<string>();
  for (const line of readFileSync('/proc/self/maps', 'utf8').split('\n')) {
    const path = line.slice(line.indexOf('/'));
    if (line.includes('/') && (/\.so(\.[\d.]+)?$/.test(path) || path.endsWith('.node'))) out.add(path);
  }
  return [...out];
}

/**
 * Opens read-only views of the folders of `node` (the host's node binary), its loader, its
 * libraries and koffi: called before pivot_root, while the host's paths still resolve.
 */
export function openSupervisorViews(node: string): SupervisorViews {
  const realNode = realpathSync(node);
  const loader = realpathSync(elfInterpreter(realNode));
  const libraries = mappedLibraries();
  const koffi = libraries.find((l) => basename(l) === 'koffi.node');
  if (!koffi) throw new SetupError('--init: koffi is not loaded in the init');
  const views = new Map<string, number>();
  const through = (file: string) => {
    const dir = dirname(file);
    let fd = views.get(dir);
    if (fd === undefined) {
      fd = readOnlyView(dir);
      views.set(dir, fd);
    }
    return `/proc/self/fd/${fd}/${basename(file)}`;
  };
  const result = {
    loader: through(loader),
    node: through(realNode),
    koffi: through(koffi),
    libraryPath: [...new Set(libraries.map((l) => dirname(through(l))))].join(':'),
  };
  return { ...result, fds: [...views.values()], source: supervisorSource() };
}

/**
 * Becomes the supervisor: execve of the loader with node and the supervisor's source. Fds in
 * `keep` (the views, the exec fifo) survive the exec; everything else was made close-on-exec.
 */
export function execSupervisor(
  views: SupervisorViews,
  program: Omit<SupervisorConfig, 'koffi' | 'closeFds'>,
): never {
  const config: SupervisorConfig = { ...program, koffi: views.koffi, closeFds: views.fds };
  for (const fd of [0, 1, 2, program.readyFd, ...views.fds]) clearCloexec(fd);
  const argv = [
    'corral-init',
    '--library-path',
    views.libraryPath,
    '--inhibit-cache',
    views.node,
    '--v8-pool-size=1',
    '--input-type=module',
    '-e',
    views.source,
    '--',
    SUPERVISOR_FLAG,
    JSON.stringify(config),
  ];
  try {
    return execve(views.loader, argv, ['UV_THREADPOOL_SIZE=1']);
  } catch (e) {
    throw new SetupError(`starting the init's supervisor: ${(e as Error).message}`);
  }
}
