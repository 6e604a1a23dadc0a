// HOME for a process that has none in its environment, as runc sets it: the user's home in
// the container's /etc/passwd, else /. The file is read inside the container's root (openat2
// RESOLVE_IN_ROOT): a symlink there can never make the runtime read a host file.
import { close, openRoot, readFileInRoot } from '@corral/sys';

/** The home folder of `uid` in the passwd file of the root at `rootPath`, or null. */
export function homeOf(rootPath: string, uid: number): string | null {
  let root: number;
  try {
    root = openRoot(rootPath);
  } catch {
    return null;
  }
  try {
    const passwd = readFileInRoot(root, '/etc/passwd', 1 << 20)?.toString('utf8') ?? '';
    for (const line of passwd.split('\n')) {
      const f = line.split(':');
      if (f.length >= 6 && Number(f[2]) === uid && f[2] !== '') return f[5] || null;
    }
    return null;
  } catch {
    return null;
  } finally {
    close(root);
  }
}

/** `env` with HOME added when it has none. */
export function withHome(env: readonly string[] | undefined, rootPath: string, uid: number): string[] {
  const list = [...(env ?? [])];
  if (list.some((e) => e.startsWith('HOME='))) return list;
  return [...list, `HOME=${homeOf(rootPath, uid) ?? '/'}`];
}
