// A private dockerd (Debian's docker.io, 20.10) for side-by-side tests: its own socket, data
// root, exec root and managed containerd namespaces, no bridge, no iptables, a unique cgroup
// parent beneath ours. `stop()` ends it and removes everything it made.
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, existsSync, promises as fs, openSync, readFileSync } from 'node:fs';
import path from 'node:path';
import {
  childrenOf,
  endChild,
  exec,
  leftovers,
  mountsUnder,
  prepareCgroupParent,
  type Result,
  requireProgram,
  stopProcess,
  uniqueName,
  unmountUnder,
  until,
} from './helpers.js';

/** The client that matches the daemon (20.10); CORRAL_E2E_DOCKER=/usr/local/bin/docker tries the 28.x one. */
export const DOCKER =
  process.env['CORRAL_E2E_DOCKER'] ??
  (existsSync('/usr/bin/docker') ? '/usr/bin/docker' : '/usr/local/bin/docker');

export interface Dockerd {
  /** The docker client on this daemon; never throws for a non-zero exit. */
  docker(args: string[], input?: string): Promise<Result>;
  env: NodeJS.ProcessEnv;
  log(): string;
  stop(): Promise<void>;
}

/** Starts dockerd with everything under `tmp` (made by the caller, removed by it after stop). */
export async function startDockerd(tmp: string): Promise<Dockerd> {
  requireProgram('/usr/sbin/dockerd', 'docker.io');
  requireProgram(DOCKER, 'docker.io');
  const sock = path.join(tmp, 'docker.sock');
  const name = uniqueName('corral-e2e');
  const cgroups = prepareCgroupParent(name);
  const env: NodeJS.ProcessEnv = { ...process.env, DOCKER_CONFIG: path.join(tmp, 'client') };
  delete env['DOCKER_HOST'];
  delete env['DOCKER_CONTEXT'];
  await fs.writeFile(path.join(tmp, 'daemon.json'), '{}\n');
  const runDirs = leftovers(['/run/docker', '/run/docker/plugins', '/run/containerd', '/run/containerd/s']);
  const logFile = path.join(tmp, 'dockerd.log');
  const log = () => {
    try {
      return readFileSync(logFile, 'utf8').slice(-4000);
    } catch {
      return '';
    }
  };
  const fd = openSync(logFile, 'a');
  // prettier-ignore
  const dockerd: ChildProcess = spawn(
    '/usr/sbin/dockerd',
    [
      '--config-file',
      path.join(tmp, 'daemon.json'),
      '--host',
      `unix://${sock}`,
      '--data-root',
      path.join(tmp, 'data'),
      '--exec-root',
      path.join(tmp, 'exec'),
      '--pidfile',
      path.join(tmp, 'docker.pid'),
      '--bridge',
      'none',
      '--iptables=false',
      '--ip6tables=false',
      '--ip-forward=false',
      '--ip-masq=false',
      '--userland-proxy=false',
      '--cgroup-parent',
      cgroups.path,
      '--containerd-namespace',
      name,
      '--containerd-plugins-namespace',
      `${name}-plugins`,
    ],
    { stdio: ['ignore', fd, fd] },
  );
  closeSync(fd);
  const docker = (args: string[], input?: string) =>
    exec(DOCKER, ['-H', `unix://${sock}`, ...args], { env, ...(input ? { input } : {}) });
  let containerd: number[] = [];
  const stop = async () => {
    const problems: string[] = [];
    await endChild(dockerd, 60_000);
    for (const pid of containerd) await stopProcess(pid).catch((e) => problems.push(String(e)));
    await unmountUnder(tmp).catch((e) => problems.push(String(e)));
    problems.push(...cgroups.cleanup());
    if (mountsUnder(tmp).length) problems.push(`mounts left under ${tmp}`);
    runDirs.clean();
    if (problems.length) throw new Error(`dockerd teardown: ${problems.join('\n')}`);
  };
  try {
    await until(
      async () => {
        if (dockerd.exitCode !== null) throw new Error(`dockerd exited (${dockerd.exitCode}): ${log()}`);
        return (await docker(['version'])).status === 0;
      },
      'dockerd to answer on its socket',
      90_000,
    );
  } catch (e) {
    await stop().catch(() => {});
    throw new Error(`${(e as Error).message}\n${log()}`);
  }
  containerd = childrenOf(dockerd.pid!);
  return { docker, env, log, stop };
}
