// containerd 1.6 (Debian's) runs containers on corral-runtime through its runc shim
// (io.containerd.runc.v2 with BinaryName = corral-runtime): the path by which a Kubernetes node
// would use corral. The test starts a private containerd (its own root, state, sockets; the CRI
// plugin off) with the configuration the runtime's README documents, imports an image with
// `ctr image import` and drives tasks with ctr: run, -t, exec, kill, pause/resume, delete.
// Containers get cgroups beneath this test's own; the shims stay in containerd's (ours).
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, existsSync, promises as fs, openSync, readFileSync } from 'node:fs';
import { arch } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { busyboxRootfs } from '@corral/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  endChild,
  exec,
  leftovers,
  mountsUnder,
  must,
  prepareCgroupParent,
  requireProgram,
  tempRoot,
  uniqueName,
  unmountUnder,
  until,
} from './helpers.js';
import { onPty } from './peers.js';

const CONTAINERD = '/usr/bin/containerd';
const CTR = '/usr/bin/ctr';
const RUNTIME = fileURLToPath(new URL('../../packages/runtime/bin/corral-runtime.cjs', import.meta.url));
const IMAGE = 'docker.io/library/busybox:corral';

let tmp = '';
let namespace = '';
let cgroups: ReturnType<typeof prepareCgroupParent> | undefined;
let containerd: ChildProcess | undefined;
let runDirs: ReturnType<typeof leftovers> | undefined;

/** The configuration of the runtime's README (a CRI runtime class `corral`), on private paths. */
function config(): string {
  return `version = 2
root = "${tmp}/root"
state = "${tmp}/state"
# ctr does not use the CRI plugin; the runtime class below is what a kubelet would pick.
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = "${tmp}/containerd.sock"
[ttrpc]
  address = "${tmp}/containerd.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "${tmp}/opt"

[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.corral]
  runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.corral.options]
    BinaryName = "${RUNTIME}"
    Root = "${tmp}/runtime"
    SystemdCgroup = false
`;
}

const ctrArgs = () => ['--address', path.join(tmp, 'containerd.sock'), '--namespace', namespace];
const ctr = (args: string[], input?: string) => must(CTR, [...ctrArgs(), ...args], { input });

/** `ctr run` through the runc shim with corral-runtime as its binary, in a cgroup beneath ours. */
function runArgs(id: string): string[] {
  return [
    '--runtime',
    'io.containerd.runc.v2',
    '--runc-binary',
    RUNTIME,
    '--runc-root',
    path.join(tmp, 'runtime'),
    '--cgroup',
    `${cgroups!.path}/${id}`,
    '--fifo-dir',
    path.join(tmp, 'fifo'),
    '--snapshotter',
    'overlayfs',
  ];
}

/** An OCI image archive of Debian's busybox-static, for `ctr image import`. */
async function busyboxArchive(): Promise<string> {
  const dir = path.join(tmp, 'image');
  const rootfs = path.join(tmp, 'image-rootfs');
  busyboxRootfs(rootfs, 'proc', 'sys', 'dev', 'etc', 'tmp');
  await fs.mkdir(path.join(dir, 'blobs/sha256'), { recursive: true });
  const layerTar = path.join(tmp, 'layer.tar');
  await must('tar', ['-C', rootfs, '--numeric-owner', '-cf', layerTar, '.']);
  const put = async (data: Buffer) => {
    const digest = createHash('sha256').update(data).digest('hex');
    await fs.writeFile(path.join(dir, 'blobs/sha256', digest), data);
    return { digest: `sha256:${digest}`, size: data.length };
  };
  const layer = await put(await fs.readFile(layerTar));
  const platform = { architecture: arch() === 'arm64' ? 'arm64' : 'amd64', os: 'linux' };
  const cfg = await put(
    Buffer.from(
      JSON.stringify({
        ...platform,
        config: { Env: ['PATH=/bin'], Cmd: ['sh'] },
        rootfs: { type: 'layers', diff_ids: [layer.digest] },
      }),
    ),
  );
  const manifest = await put(
    Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...cfg },
        layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', ...layer }],
      }),
    ),
  );
  await fs.writeFile(
    path.join(dir, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [
        {
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          ...manifest,
          platform,
          annotations: { 'io.containerd.image.name': IMAGE, 'org.opencontainers.image.ref.name': 'corral' },
        },
      ],
    }),
  );
  await fs.writeFile(path.join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  const archive = path.join(tmp, 'busybox-oci.tar');
  await must('tar', ['-C', dir, '-cf', archive, '.']);
  return archive;
}

async function taskStatus(id: string): Promise<string> {
  const line = (await ctr(['task', 'ls'])).out.split('\n').find((l) => l.startsWith(`${id} `));
  return line?.trim().split(/\s+/)[2] ?? 'MISSING';
}

beforeAll(async () => {
  requireProgram(CONTAINERD, 'containerd');
  requireProgram(CTR, 'containerd');
  tmp = await tempRoot('runtime-containerd');
  namespace = uniqueName('corral-rt');
  cgroups = prepareCgroupParent(namespace);
  await fs.writeFile(path.join(tmp, 'config.toml'), config());
  // The runc shim of 1.6 puts its sockets under /run/containerd/s whatever the state dir.
  runDirs = leftovers(['/run/containerd', '/run/containerd/s', '/run/containerd/fifo']);
  const log = openSync(path.join(tmp, 'containerd.log'), 'a');
  containerd = spawn(CONTAINERD, ['--config', path.join(tmp, 'config.toml')], {
    stdio: ['ignore', log, log],
  });
  closeSync(log);
  const logText = () => readFileSync(path.join(tmp, 'containerd.log'), 'utf8').slice(-3000);
  await until(
    async () => {
      if (containerd!.exitCode !== null) throw new Error(`containerd exited: ${logText()}`);
      return (await exec(CTR, [...ctrArgs(), 'version'])).status === 0;
    },
    'containerd to answer on its socket',
    60_000,
  );
  await ctr(['image', 'import', '--all-platforms', await busyboxArchive()]);
});

afterAll(async () => {
  const problems: string[] = [];
  if (containerd && containerd.exitCode === null) {
    // Every task and container of our namespace, then the daemon.
    for (const id of (await exec(CTR, [...ctrArgs(), 'container', 'ls', '-q'])).out
      .split('\n')
      .filter(Boolean)) {
      await exec(CTR, [...ctrArgs(), 'task', 'delete', '--force', id]);
      await exec(CTR, [...ctrArgs(), 'container', 'delete', id]);
    }
    await endChild(containerd, 30_000);
  }
  if (tmp) {
    await unmountUnder(tmp).catch((e) => problems.push(String(e)));
    if (cgroups) problems.push(...cgroups.cleanup());
    if (!mountsUnder(tmp).length) await fs.rm(tmp, { recursive: true, force: true });
  }
  runDirs?.clean();
  if (problems.length) throw new Error(`containerd teardown: ${problems.join('\n')}`);
});

describe('containerd (runc shim) with corral-runtime as its binary', () => {
  it('the documented configuration names corral-runtime for the runtime class', async () => {
    // With the CRI plugin enabled, as on a node (it is off in the daemon this test runs).
    const node = path.join(tmp, 'config-node.toml');
    await fs.writeFile(node, config().replace(/^disabled_plugins = .*$/m, ''));
    const dump = (await must(CONTAINERD, ['--config', node, 'config', 'dump'])).out;
    expect(dump).toContain('[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.corral.options]');
    expect(dump).toContain(`BinaryName = "${RUNTIME}"`);
  });

  it('ctr run --rm: a container to its end, its output and exit status', async () => {
    const r = await ctr(['run', '--rm', ...runArgs('one'), IMAGE, 'one', 'sh', '-c', 'echo hi from pid $$']);
    expect(r.out).toBe('hi from pid 1');
    const failed = await exec(CTR, [
      ...ctrArgs(),
      'run',
      '--rm',
      ...runArgs('two'),
      IMAGE,
      'two',
      'sh',
      '-c',
      'exit 6',
    ]);
    expect(failed.status).toBe(6);
    // The runtime's state is where the runc options put it, and gone with the container.
    expect(existsSync(path.join(tmp, 'runtime', namespace, 'one'))).toBe(false);
  });

  it('ctr run -t: the program has a terminal', async () => {
    const r = await onPty([
      CTR,
      ...ctrArgs(),
      'run',
      '-t',
      '--rm',
      ...runArgs('tty'),
      IMAGE,
      'tty',
      'sh',
      '-c',
      'tty; [ -t 0 ] && echo stdin-tty',
    ]);
    expect(r.stdout).toMatch(/\/dev\/pts\/0\r*\n/);
    expect(r.stdout).toContain('stdin-tty');
    expect(r.status).toBe(0);
  });

  it('a detached task: exec, pause/resume, kill, delete', async () => {
    await ctr(['run', '-d', ...runArgs('bg'), IMAGE, 'bg', 'sleep', '1000']);
    await until(async () => (await taskStatus('bg')) === 'RUNNING', 'the task to run', 30_000);
    const pid = Number(
      (await ctr(['task', 'ls'])).out
        .split('\n')
        .find((l) => l.startsWith('bg '))!
        .trim()
        .split(/\s+/)[1],
    );
    expect(readFileSync(`/proc/${pid}/cgroup`, 'utf8')).toContain(`${cgroups!.path}/bg`);
    const e = await ctr([
      'task',
      'exec',
      '--fifo-dir',
      path.join(tmp, 'fifo'),
      '--exec-id',
      'e1',
      'bg',
      'sh',
      '-c',
      'echo in-exec $(cat /proc/1/cmdline | tr "\\0" " ")',
    ]);
    expect(e.out).toBe('in-exec sleep 1000');
    const failing = await exec(CTR, [
      ...ctrArgs(),
      'task',
      'exec',
      '--fifo-dir',
      path.join(tmp, 'fifo'),
      '--exec-id',
      'e2',
      'bg',
      'sh',
      '-c',
      'exit 5',
    ]);
    expect(failing.status).toBe(5);
    const ps = (await ctr(['task', 'ps', 'bg'])).out;
    expect(ps).toContain(String(pid));

    await ctr(['task', 'pause', 'bg']);
    expect(await taskStatus('bg')).toBe('PAUSED');
    await ctr(['task', 'resume', 'bg']);
    expect(await taskStatus('bg')).toBe('RUNNING');

    await ctr(['task', 'kill', '-s', 'SIGKILL', 'bg']);
    await until(async () => (await taskStatus('bg')) === 'STOPPED', 'the task to stop', 30_000);
    await ctr(['task', 'delete', 'bg']);
    await ctr(['container', 'delete', 'bg']);
    expect(existsSync(`/proc/${pid}`)).toBe(false);
  });
});
