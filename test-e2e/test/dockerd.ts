// A private dockerd (Debian's docker.io, 20.10) for side-by-side tests (docker.test.ts and others):
// its own socket, data and exec roots, no bridge, no iptables, a unique cgroup parent
// beneath ours and containerd namespaces of its own. `stop` ends it and removes all it made.
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

/** The client that matches the daemon (20.10). */
export const DOCKER =
  process.env['CORRAL_E2E_DOCKER'] ??
  (existsSync('/usr/bin/docker') ? '/usr/bin/docker' : '/usr/local/bin/docker');

export interface PrivateDockerd {
  /** The docker client on this daemon (never pulls: `run` gets `--pull never`). */
  docker(args: string[]): Promise<Result>;
  env: NodeJS.ProcessEnv;
  log(): string;
  stop(): Promise<void>;
}

/** Starts dockerd with everything under `tmp` (a folder of the test's own). */
export async function startPrivateDockerd(tmp: string): Promise<PrivateDockerd> {
  requireProgram('/usr/sbin/dockerd', 'docker.io');
  requireProgram(DOCKER, 'docker.io');
  const sock = path.join(tmp, 'docker.sock');
  const name = uniqueName('corral-e2e');
  const cgroups = prepareCgroupParent(name);
  const env: NodeJS.ProcessEnv = { ...process.env, DOCKER_CONFIG: path.join(tmp, 'client') };
  delete env['DOCKER_HOST'];
  delete env['DOCKER_CONTEXT'];
  await fs.mkdir(tmp, { recursive: true });
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
  let containerdPids: number[] = [];
  const stop = async () => {
    const problems: string[] = [];
    // SIGTERM stops dockerd's containers, then dockerd, which stops its managed containerd.
    await endChild(dockerd, 60_000);
    for (const pid of containerdPids) await stopProcess(pid).catch((e) => problems.push(String(e)));
    await unmountUnder(tmp).catch((e) => problems.push(String(e)));
    problems.push(...cgroups.cleanup());
    if (!mountsUnder(tmp).length) await fs.rm(tmp, { recursive: true, force: true });
    runDirs.clean();
    if (problems.length) throw new Error(`dockerd teardown: ${problems.join('\n')}`);
  };
  try {
    await until(
      async () => {
        if (dockerd.exitCode !== null) throw new Error(`dockerd exited (${dockerd.exitCode}): ${log()}`);
        return (await exec(DOCKER, ['-H', `unix://${sock}`, 'version'], { env })).status === 0;
      },
      'dockerd to answer on its socket',
      90_000,
    );
  } catch (e) {
    await stop().catch(() => {});
    throw new Error(`${(e as Error).message}\n${log()}`);
  }
  containerdPids = childrenOf(dockerd.pid!);
  return {
    env,
    log,
    stop,
    docker(args) {
      const [cmd, ...rest] = args;
      const all = cmd === 'run' ? ['run', '--pull', 'never', ...rest] : args;
      return exec(DOCKER, ['-H', `unix://${sock}`, ...all], { env });
    },
  };
}
