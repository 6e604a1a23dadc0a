import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, promises as fs, readdirSync, readFileSync, rmdirSync, statSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { findCgroupDirs, freePort, mustCorral, type Result, runCorral, until } from '@corral/testkit';

// What every package's tests share comes from @corral/testkit; `tempRoot` is its tempDir under
// the name these files use.
export {
  corralBin,
  type ExecOptions,
  exec,
  freePort,
  mountsUnder,
  must,
  type Result,
  tempDir as tempRoot,
  unmountUnder,
  until,
} from '@corral/testkit';

/** A name that no other run uses, for cgroup parents and the like. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${randomBytes(4).toString('hex')}`;
}

/** The corral CLI with its own data root. */
export class Corral {
  constructor(
    readonly root: string,
    readonly env: NodeJS.ProcessEnv = process.env,
  ) {}

  run(args: string[], input?: string | Buffer): Promise<Result> {
    return runCorral(this.root, args, { input, env: this.env });
  }

  must(args: string[], input?: string | Buffer): Promise<Result> {
    return mustCorral(this.root, args, { input, env: this.env });
  }

  /** `corral images --format json`, one object per image. */
  async images(): Promise<CorralImage[]> {
    const out = (await this.must(['images', '--format', 'json'])).out;
    return out ? out.split('\n').map((l) => JSON.parse(l) as CorralImage) : [];
  }

  async image(ref: string): Promise<CorralImage> {
    const want = ref.includes(':') ? ref : `${ref}:latest`;
    const found = (await this.images()).find((i) => i.repoTags.includes(want));
    if (!found) throw new Error(`corral images has no ${want}: ${JSON.stringify(await this.images())}`);
    return found;
  }

  /**
   * Commits an image `e2e/made:1` whose layer adds /made and deletes /bin/vi (a whiteout), saves
   * it to `archive`, and returns its image id.
   */
  async makeCommittedImage(archive: string): Promise<string> {
    await this.must(['run', '--name', 'e2e-maker', 'busybox', 'sh', '-c', 'echo made > /made && rm /bin/vi']);
    const id = (await this.must(['commit', 'e2e-maker', 'e2e/made:1'])).out;
    await this.must(['rm', 'e2e-maker']);
    await this.must(['save', '-o', archive, 'e2e/made:1']);
    return id;
  }

  /** Removes every container of this root (killing what runs). */
  async removeContainers(): Promise<void> {
    const dir = path.join(this.root, 'containers');
    const ids = existsSync(dir) ? readdirSync(dir) : [];
    if (ids.length) await this.run(['rm', '-f', ...ids]);
    // A network keeps its bridge while it exists: take this root's bridges and rules down.
    if (existsSync(path.join(this.root, 'network', 'networks'))) await this.run(['network', 'down']);
  }
}

export interface CorralImage {
  id: string;
  manifestDigest: string;
  repoTags: string[];
  created: string;
  size: number;
}

/**
 * A --cgroup-parent for a daemon under test that lies beneath this process's own cgroup in
 * every v1 hierarchy (the machine rule). Daemons with the cgroupfs driver use one path in
 * all hierarchies while ours differ (here memory is nested, the others are at the root), so
 * the deepest of our paths is the prefix, provided the others are its ancestors. `cleanup`
 * removes the daemon's folders and any ancestor folder that did not exist before.
 */
export function prepareCgroupParent(name: string): { path: string; cleanup(): string[] } {
  const own = readFileSync('/proc/self/cgroup', 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => l.split(':').slice(2).join(':'));
  const deepest = own.reduce((a, b) => (b.length > a.length ? b : a), '/');
  for (const p of own) {
    if (p !== '/' && p !== deepest && !deepest.startsWith(`${p}/`)) {
      throw new Error(`no cgroup path lies beneath ours in every hierarchy: ${own.join(', ')}`);
    }
  }
  const parent = path.posix.join(deepest, name);
  const hierarchies = readdirSync('/sys/fs/cgroup').map((h) => path.join('/sys/fs/cgroup', h));
  // Every ancestor folder of the parent, in every hierarchy, that is already there.
  const ancestors = (h: string) => {
    const out: string[] = [];
    for (let d = path.posix.dirname(parent); d !== '/'; d = path.posix.dirname(d)) out.push(path.join(h, d));
    return out;
  };
  const existed = new Set(hierarchies.flatMap(ancestors).filter((d) => existsSync(d)));
  return {
    path: parent,
    cleanup() {
      const problems = removeCgroups(name);
      for (const h of hierarchies) {
        for (const d of ancestors(h)) {
          if (existed.has(d) || !existsSync(d)) continue;
          try {
            rmdirSync(d);
          } catch (e) {
            problems.push(`cgroup ${d}: ${(e as Error).message}`);
          }
        }
      }
      return problems;
    },
  };
}

/**
 * Removes the cgroup folders named `name` (made for a daemon under test with --cgroup-parent)
 * in every hierarchy, children first. Only folders of that unique name are touched.
 */
export function removeCgroups(name: string): string[] {
  const found = findCgroupDirs((n) => n === name);
  const failed: string[] = [];
  const rmTree = (dir: string) => {
    for (const e of readdirSync(dir)) {
      const p = path.join(dir, e);
      try {
        if (statSync(p).isDirectory()) rmTree(p);
      } catch {}
    }
    try {
      rmdirSync(dir);
    } catch (e) {
      failed.push(`${dir}: ${(e as Error).message}`);
    }
  };
  for (const dir of found) rmTree(dir);
  return failed;
}

/** Is the process gone (or a zombie waiting for a late reaper)? */
export function gone(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}

/** PIDs whose parent is `ppid`. */
export function childrenOf(ppid: number): number[] {
  const pids: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[1]) === ppid) pids.push(Number(e));
    } catch {}
  }
  return pids;
}

/** SIGTERM to a process this test started, then SIGKILL if it is still there after `ms`. */
export async function stopProcess(pid: number, ms = 30_000): Promise<void> {
  if (gone(pid)) return;
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return;
  }
  try {
    await until(() => gone(pid), `process ${pid} to end`, ms);
  } catch {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {}
    await until(() => gone(pid), `process ${pid} to end after SIGKILL`, 10_000);
  }
}

/** Waits for a spawned child to exit, with SIGTERM then SIGKILL. */
export async function endChild(child: ChildProcess, ms = 30_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }, ms);
  await exited;
  clearTimeout(timer);
}

/** Does a GET on a loopback URL answer at all (any status)? */
export function answers(url: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = http.get(url, (res) => {
      res.resume();
      resolve(true);
    });
    req.on('error', () => resolve(false));
    req.setTimeout(2000, () => {
      req.destroy();
      resolve(false);
    });
  });
}

/** Fails with what to do when a program the tests drive is not installed. */
export function requireProgram(file: string, debianPackage: string): void {
  if (!existsSync(file)) {
    throw new Error(`${file} is missing: install Debian's ${debianPackage} (bash scripts/setup.sh does)`);
  }
}

/**
 * Daemons under test make a few fixed folders outside their roots (dockerd: /run/docker/plugins;
 * containerd's shims: /run/containerd/s). `leftovers(paths)` notes which are missing before the
 * daemon starts; `clean()` removes those of them that it made, once they are empty again.
 */
export function leftovers(paths: string[]): { clean(): void } {
  const missing = paths.filter((p) => !existsSync(p));
  return {
    clean() {
      // Deepest first, so that a parent made for a child goes too.
      for (const p of [...missing].sort((a, b) => b.length - a.length)) {
        try {
          if (existsSync(p) && readdirSync(p).length === 0) rmdirSync(p);
        } catch {}
      }
    },
  };
}

export interface Registry {
  /** `127.0.0.1:PORT`, the registry part of references. */
  host: string;
  stop(): Promise<void>;
}

/**
 * Starts Debian's docker-registry (the CNCF distribution server) on 127.0.0.1:<free port> with
 * its config and storage in `dir`; htpasswd users (bcrypt) when `htpasswd` is given.
 * `stop` ends it by its pid; the caller removes `dir`.
 */
export async function startRegistry(
  dir: string,
  htpasswd?: string,
  /** Token auth (`auth: token`): the realm the test serves and the certificate its tokens are signed for. */
  token?: { realm: string; service: string; issuer: string; rootcertbundle: string },
): Promise<Registry> {
  requireProgram('/usr/bin/docker-registry', 'docker-registry');
  await fs.mkdir(dir, { recursive: true });
  const port = await freePort();
  const lines = [
    'version: 0.1',
    'log:',
    '  level: warn',
    '  accesslog:',
    '    disabled: true',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${path.join(dir, 'data')}`,
    'http:',
    `  addr: 127.0.0.1:${port}`,
  ];
  if (htpasswd) {
    await fs.writeFile(path.join(dir, 'htpasswd'), htpasswd);
    lines.push('auth:', '  htpasswd:', '    realm: corral-e2e', `    path: ${path.join(dir, 'htpasswd')}`);
  } else if (token) {
    lines.push('auth:', '  token:', ...Object.entries(token).map(([k, v]) => `    ${k}: ${v}`));
  }
  const config = path.join(dir, 'config.yml');
  await fs.writeFile(config, `${lines.join('\n')}\n`);
  const child = spawn('/usr/bin/docker-registry', ['serve', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr!.on('data', (d) => {
    log = (log + d).slice(-4000);
  });
  const host = `127.0.0.1:${port}`;
  const stop = () => endChild(child, 10_000);
  try {
    await until(
      async () => {
        if (child.exitCode !== null) throw new Error(`docker-registry exited (${child.exitCode}): ${log}`);
        return answers(`http://${host}/v2/`);
      },
      `docker-registry on ${host}`,
      30_000,
    );
  } catch (e) {
    await stop();
    throw e;
  }
  return { host, stop };
}
