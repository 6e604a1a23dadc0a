// The daemons a benchmark starts (corrald, Debian's dockerd) and their end: one place, so that
// every daemon benchmark starts dockerd with the same private socket, roots and cgroup parent,
// and stops it and its containerd the same way.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { childrenOf, sleep, until } from './common.mjs';

export const DOCKER = '/usr/local/bin/docker';
export const DOCKERD = '/usr/sbin/dockerd';

export class Daemons {
  /** { child, name } in start order. */
  #started = [];
  /** dockerd's containerd: its child, which it stops itself, but it may linger a moment. */
  #containerd = [];
  /** The folders dockerd makes in /run that were not there before: removed when empty. */
  #runDirs = ['/run/docker', '/run/docker/plugins', '/run/containerd', '/run/containerd/s'].filter(
    (p) => !existsSync(p),
  );

  /** @param {Record<string, string | undefined>} dockerEnv the docker CLI's environment */
  constructor(dockerEnv) {
    this.dockerEnv = dockerEnv;
  }

  /** The docker CLI against the daemon at `sock`. */
  docker(sock, args, opts = {}) {
    return spawnSync(DOCKER, ['-H', `unix://${sock}`, ...args], {
      env: this.dockerEnv,
      encoding: 'utf8',
      ...opts,
    });
  }

  /** Starts `argv`; its stderr kept (the last MiB), written to `logFile` when it exits. */
  start(name, argv, logFile) {
    const child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    child.stderr.on('data', (d) => {
      log += d;
      if (log.length > 1 << 20) log = log.slice(-(1 << 19));
    });
    if (logFile) child.on('exit', () => writeFileSync(logFile, log));
    this.#started.push({ child, name });
    return { child, log: () => log };
  }

  /** Resolves once the daemon answers `docker version` at `sock`; throws if it exited. */
  async answering(name, sock, d) {
    await until(
      () => {
        if (d.child.exitCode !== null) throw new Error(`${name} exited: ${d.log().slice(-2000)}`);
        return this.docker(sock, ['version']).status === 0;
      },
      `${name} to answer`,
      120_000,
    );
  }

  /**
   * Debian's dockerd on a private socket, data root and exec root beneath `tmp`, with no
   * bridge and no iptables rules, its containers' cgroups beneath `cgroupParent`, its
   * containerd namespaces named after `ns`: the socket once it answers, or null without dockerd.
   */
  async startDockerd(tmp, cgroupParent, ns) {
    if (!existsSync(DOCKERD)) return null;
    const sock = join(tmp, 'docker.sock');
    writeFileSync(join(tmp, 'daemon.json'), '{}\n');
    const d = this.start(
      'dockerd',
      [
        DOCKERD,
        ...['--config-file', join(tmp, 'daemon.json'), '--host', `unix://${sock}`],
        ...['--data-root', join(tmp, 'docker'), '--exec-root', join(tmp, 'docker-exec')],
        ...['--pidfile', join(tmp, 'docker.pid'), '--bridge', 'none', '--iptables=false'],
        ...['--ip6tables=false', '--ip-forward=false', '--ip-masq=false', '--userland-proxy=false'],
        ...['--cgroup-parent', cgroupParent],
        ...['--containerd-namespace', ns, '--containerd-plugins-namespace', `${ns}-plugins`],
      ],
      join(tmp, 'dockerd.log'),
    );
    await this.answering('dockerd', sock, d);
    this.#containerd = childrenOf(d.child.pid);
    return sock;
  }

  /** Stops every daemon started (SIGTERM, SIGKILL after a minute), last first, and dockerd's containerd. */
  async stop() {
    for (const { child } of this.#started.reverse()) {
      if (child.exitCode !== null || child.signalCode !== null) continue;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 60_000);
      await exited;
      clearTimeout(t);
    }
    this.#started = [];
    await sleep(500);
    for (const pid of this.#containerd) {
      try {
        process.kill(pid, 'SIGTERM');
        await until(() => !existsSync(`/proc/${pid}`), `containerd ${pid} to end`, 30_000);
      } catch {
        // gone
      }
    }
    this.#containerd = [];
  }

  /** Removes the /run folders dockerd made, when empty (after stop). */
  removeRunDirs() {
    for (const p of [...this.#runDirs].sort((a, b) => b.length - a.length))
      if (existsSync(p) && readdirSync(p).length === 0) rmSync(p, { recursive: true });
  }
}
