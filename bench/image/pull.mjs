#!/usr/bin/env node
// Pull from a local registry: corral's registry client vs `skopeo copy docker://... oci:DIR`.
// Starts Debian's docker-registry on 127.0.0.1 with temp storage, pushes a multi-layer image
// of random data (gzip layers, BENCH_MIB MiB over BENCH_LAYERS layers), then times each tool
// pulling it into an empty target BENCH_REPEAT times (median). Both verify digests and write
// blobs to disk; neither unpacks. "corral pull + unpack" adds the image store's layer unpack.
// Whole commands, each a fresh process: `corral pull` (download and unpack into a new data
// root, Node's start-up included) vs `podman pull` (the same into a new overlay storage).
// BENCH_BASELINE=/path/to/an/older/packages/image/dist/index.js adds that build's pull
// (blobs) as "corral baseline (blobs)", for before/after numbers in the same run.
// Run after `pnpm --filter @corral/image build`:  node bench/image/pull.mjs
// Writes bench/results/image-pull.json.
import { execFileSync, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import v8 from 'node:v8';
import vm from 'node:vm';
import { gzipSync } from 'node:zlib';
import { ContentStore, ImageStore } from '@corral/image';
import { pullToStore, RegistryClient } from '../../packages/image/dist/registry/index.js';

const MIB = Number(process.env.BENCH_MIB ?? 200);
const LAYERS = Number(process.env.BENCH_LAYERS ?? 8);
const REPEAT = Number(process.env.BENCH_REPEAT ?? 3);
const HERE = dirname(fileURLToPath(import.meta.url));
const OUT = join(HERE, '..', 'results', 'image-pull.json');

const REPO = join(HERE, '..', '..');
// A collection before each timed step, so no in-process step pays for another's garbage (a
// `corral pull` process starts with none).
v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc');

/** Unmounts whatever a step left mounted under `dir` (podman's overlay storage), deepest first. */
function unmountUnder(dir) {
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4])
    .filter((m) => m?.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);
  for (const m of mounts) execFileSync('umount', ['-l', m]);
}

const sha256 = (b) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

function tarOf(files) {
  // A minimal ustar writer: enough for regular files with short names.
  const parts = [];
  for (const [name, data] of files) {
    const h = Buffer.alloc(512);
    h.write(name, 0);
    h.write('0000644\0', 100);
    h.write('0000000\0', 108);
    h.write('0000000\0', 116);
    h.write(`${data.length.toString(8).padStart(11, '0')}\0`, 124);
    h.write('14537577000\0', 136);
    h.write('        ', 148);
    h.write('0', 156);
    h.write('ustar\0', 257);
    h.write('00', 263);
    let sum = 0;
    for (const b of h) sum += b;
    h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
    parts.push(h, data, Buffer.alloc((512 - (data.length % 512)) % 512));
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

async function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function main() {
  const work = mkdtempSync(join(tmpdir(), 'corral-bench-pull-'));
  const port = await freePort();
  const config = join(work, 'registry.yml');
  writeFileSync(
    config,
    `version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: ${join(work, 'registry')}\nhttp:\n  addr: 127.0.0.1:${port}\n`,
  );
  const registry = spawn('/usr/bin/docker-registry', ['serve', config], { stdio: 'ignore' });
  const host = `127.0.0.1:${port}`;
  try {
    const client = new RegistryClient({ configPath: join(work, 'docker.json') });
    for (let i = 0; ; i++) {
      try {
        await client.ping(host);
        break;
      } catch (e) {
        if (i > 100) throw e;
        await new Promise((r) => setTimeout(r, 50));
      }
    }

    // The image: random data does not compress, so gzip level 1 keeps the build quick.
    const source = new ContentStore(join(work, 'source'));
    const perLayer = Math.floor((MIB * 1024 * 1024) / LAYERS);
    const layers = [];
    const diffIds = [];
    for (let l = 0; l < LAYERS; l++) {
      const files = [];
      const fileSize = 1024 * 1024;
      for (let f = 0; f * fileSize < perLayer; f++) files.push([`layer${l}/file${f}`, randomBytes(fileSize)]);
      const tar = tarOf(files);
      const gz = gzipSync(tar, { level: 1 });
      await source.writeBlob(gz);
      layers.push({
        mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip',
        digest: sha256(gz),
        size: gz.length,
      });
      diffIds.push(sha256(tar));
    }
    const cfg = Buffer.from(
      JSON.stringify({
        architecture: 'amd64',
        os: 'linux',
        rootfs: { type: 'layers', diff_ids: diffIds },
        config: {},
      }),
    );
    await source.writeBlob(cfg);
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: {
          mediaType: 'application/vnd.oci.image.config.v1+json',
          digest: sha256(cfg),
          size: cfg.length,
        },
        layers,
      }),
    );
    const name = `${host}/bench/pull:latest`;
    const { parseReference } = await import('@corral/image');
    const pushed = await client.push(parseReference(name), { manifest }, source);
    const totalBytes = layers.reduce((n, l) => n + l.size, 0);

    const timeIt = async (fn) => {
      // Not timed: write back what the previous step left dirty, so no step pays for another.
      gc();
      execFileSync('sync');
      const t0 = process.hrtime.bigint();
      await fn();
      return Number(process.hrtime.bigint() - t0) / 1e6;
    };
    const runs = {
      'corral pull (blobs)': [],
      'skopeo copy to oci:': [],
      'corral pull + unpack': [],
      '`corral pull` command': [],
      '`podman pull` command': [],
    };
    const steps = {
      'corral pull (blobs)': (target) =>
        new RegistryClient({ configPath: join(work, 'docker.json') }).pull(
          parseReference(name),
          new ContentStore(join(target, 'corral')),
        ),
      'skopeo copy to oci:': async (target) =>
        execFileSync('skopeo', [
          'copy',
          '-q',
          '--src-tls-verify=false',
          `docker://${name}`,
          `oci:${join(target, 'skopeo')}:latest`,
        ]),
      'corral pull + unpack': (target) =>
        pullToStore(
          new RegistryClient({ configPath: join(work, 'docker.json') }),
          new ImageStore(join(target, 'store')),
          name,
        ),
      '`corral pull` command': async (target) =>
        execFileSync(
          process.execPath,
          [join(REPO, 'apps/cli/bin/corral.js'), '--root', join(target, 'cli'), 'pull', name],
          {
            stdio: 'ignore',
          },
        ),
      '`podman pull` command': async (target) => {
        const p = join(target, 'podman');
        execFileSync(
          'podman',
          [
            ...['--root', join(p, 'storage'), '--runroot', join(p, 'run'), '--tmpdir', join(p, 'tmp')],
            ...['--storage-driver', 'overlay', '--cgroup-manager', 'cgroupfs', '--events-backend', 'file'],
            ...['pull', '-q', '--tls-verify=false', name],
          ],
          { stdio: 'ignore' },
        );
      },
    };
    if (process.env.BENCH_BASELINE) {
      const old = await import(process.env.BENCH_BASELINE);
      runs['corral baseline (blobs)'] = [];
      steps['corral baseline (blobs)'] = (target) =>
        new old.RegistryClient({ configPath: join(work, 'docker.json') }).pull(
          old.parseReference(name),
          new old.ContentStore(join(target, 'corral-baseline')),
        );
    }
    const order = Object.keys(steps);
    for (let r = 0; r < REPEAT; r++) {
      const target = join(work, `t${r}`);
      mkdirSync(target);
      // Rotate the order each round so no tool always runs first (or last) on warm caches.
      for (let i = 0; i < order.length; i++) {
        const step = order[(i + r) % order.length];
        // A fresh client each run so no token or connection is reused across runs.
        runs[step].push(await timeIt(() => steps[step](target)));
      }
      unmountUnder(target);
      rmSync(target, { recursive: true, force: true });
    }
    const ms = Object.fromEntries(Object.entries(runs).map(([k, v]) => [k, median(v)]));
    const base = ms['skopeo copy to oci:'];
    const podmanMs = ms['`podman pull` command'];
    const result = {
      date: new Date().toISOString(),
      node: process.version,
      skopeo: execFileSync('skopeo', ['--version']).toString().trim(),
      podman: execFileSync('podman', ['--version']).toString().trim(),
      image: { digest: pushed.digest, layers: LAYERS, compressedBytes: totalBytes },
      repeat: REPEAT,
      baseline: process.env.BENCH_BASELINE,
      ms,
      samplesMs: runs,
      mibPerSecond: Object.fromEntries(
        Object.entries(ms).map(([k, v]) => [k, +(totalBytes / 1048576 / (v / 1000)).toFixed(1)]),
      ),
      ratioToSkopeo: Object.fromEntries(Object.entries(ms).map(([k, v]) => [k, +(v / base).toFixed(3)])),
      // The whole commands side by side: download, verify and unpack, from a fresh process.
      ratioToPodmanPull: {
        '`corral pull` command': +(ms['`corral pull` command'] / podmanMs).toFixed(3),
        '`podman pull` command': 1,
      },
    };
    mkdirSync(dirname(OUT), { recursive: true });
    writeFileSync(OUT, `${JSON.stringify(result, null, 2)}\n`);
    console.log(JSON.stringify(result, null, 2));
  } finally {
    unmountUnder(work);
    registry.kill('SIGTERM');
    await new Promise((r) => registry.once('exit', r));
    rmSync(work, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
