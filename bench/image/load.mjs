#!/usr/bin/env node
// Load and unpack of a docker-archive: corral's loadArchive into a fresh ImageStore (blobs
// verified and stored, every layer unpacked and checked against its diff ID) vs
// `skopeo copy docker-archive:X oci:DIR` + `umoci unpack --image DIR:bench BUNDLE`.
//
// The image (made once, cached under /var/tmp/corral-bench-image/) has BENCH_LAYERS layers
// built with GNU tar: many small files (text and random, 64 B to 24 KiB, in nested folders,
// a few symlinks and hard links) and a few large incompressible files; by default about
// 230 MiB and 12,000 files. The layers are plain tars, as `docker save` writes them.
//
// Each round runs both sides in rotating order, each on a fresh temp root, after a `sync`
// (not timed) so neither side pays for writing back the other's dirty pages; the temp dirs
// are removed at the end of each round. Two archives of the same image: "plain" (layers as `docker save`
// writes them; skopeo gzips them for the OCI layout, as skopeo 1.9's
// --dest-oci-accept-uncompressed-layers labels plain layers +gzip and umoci 0.4.7 then fails)
// and "gzip" (gzip layers, which skopeo copies as they are and corral must gunzip).
// BENCH_ARCHIVES=plain or =gzip runs one of them.
// corral runs in this process (no Node start-up counted); the peers are processes.
// BENCH_BASELINE=/path/to/an/older/packages/image/dist/index.js adds that build of corral
// as "corral baseline", for before/after numbers in the same run.
//
// Run after `pnpm --filter @corral/image build`:  node bench/image/load.mjs
// Writes bench/results/image-load.json.
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ImageStore, loadArchive } from '@corral/image';

const HERE = dirname(fileURLToPath(import.meta.url));
const OUT = join(HERE, '..', 'results', 'image-load.json');
const CACHE = process.env.BENCH_CACHE ?? '/var/tmp/corral-bench-image';
const REPEAT = Number(process.env.BENCH_REPEAT ?? 5);
const LAYERS = Number(process.env.BENCH_LAYERS ?? 5);
const SMALL_FILES = Number(process.env.BENCH_SMALL_FILES ?? 12000);
const BIG_FILES = Number(process.env.BENCH_BIG_FILES ?? 5);
const BIG_MIB = Number(process.env.BENCH_BIG_MIB ?? 32);
const KINDS = (process.env.BENCH_ARCHIVES ?? 'plain,gzip').split(',');
const SPEC = { version: 1, LAYERS, SMALL_FILES, BIG_FILES, BIG_MIB };

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const sha256File = (path) => {
  const h = createHash('sha256');
  const fd = fs.openSync(path, 'r');
  const buf = Buffer.allocUnsafe(1 << 20);
  try {
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      h.update(buf.subarray(0, n));
    }
  } finally {
    fs.closeSync(fd);
  }
  return h.digest('hex');
};
const sh = (cmd, args, opts = {}) =>
  execFileSync(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'], ...opts });

/** A deterministic-looking text payload that compresses like source code does. */
const WORDS =
  'const let function return import export async await if else for while of in new class this'.split(' ');
function textOf(size, seed) {
  let s = '';
  for (let i = seed; s.length < size; i++)
    s += `${WORDS[(i * 7) % WORDS.length]}${i % 13 === 0 ? '\n' : ' '}`;
  return s.slice(0, size);
}

/** Builds the layer trees once; returns the docker-archives (plain and gzip layers) and a summary. */
function makeArchives() {
  const specPath = join(CACHE, 'spec.json');
  try {
    const cached = JSON.parse(fs.readFileSync(specPath, 'utf8'));
    if (
      JSON.stringify(cached.spec) === JSON.stringify(SPEC) &&
      Object.values(cached.archives).every((a) => fs.existsSync(a.path))
    )
      return cached;
  } catch {}
  fs.rmSync(CACHE, { recursive: true, force: true });
  const build = join(CACHE, 'build');
  console.error(`making the bench image under ${CACHE} ...`);
  let files = 0;
  let dirs = 0;
  const layerTars = [];
  const diffIds = [];
  const perLayerSmall = Math.ceil(SMALL_FILES / LAYERS);
  for (let l = 0; l < LAYERS; l++) {
    const root = join(build, `l${l}`);
    fs.mkdirSync(root, { recursive: true });
    // Small files spread over nested folders, like a node_modules or /usr tree.
    for (let f = 0; f < perLayerSmall; f++) {
      const dir = join(root, `usr/lib/pkg${l}-${Math.floor(f / 200)}`, `sub${Math.floor(f / 40) % 5}`);
      if (f % 40 === 0) {
        fs.mkdirSync(dir, { recursive: true });
        dirs++;
      }
      const size = 64 + ((f * 2654435761) % (24 * 1024));
      const data = f % 4 === 0 ? randomBytes(size) : textOf(size, f + l * 100000);
      const path = join(dir, `file${f}.${f % 4 === 0 ? 'bin' : 'js'}`);
      fs.writeFileSync(path, data, { mode: f % 10 === 0 ? 0o755 : 0o644 });
      if (f % 500 === 1) fs.symlinkSync(`file${f}.js`, join(dir, `link${f}`));
      if (f % 700 === 2) fs.linkSync(path, join(dir, `hard${f}`));
      files++;
    }
    // The large incompressible files, round robin over the layers.
    for (let b = l; b < BIG_FILES; b += LAYERS) {
      fs.mkdirSync(join(root, 'opt/big'), { recursive: true });
      const fd = fs.openSync(join(root, `opt/big/blob${b}.bin`), 'w');
      for (let m = 0; m < BIG_MIB; m++) fs.writeSync(fd, randomBytes(1024 * 1024));
      fs.closeSync(fd);
      files++;
    }
    // A later layer deletes a file of an earlier one (a whiteout), as real images do.
    if (l > 0) {
      const gone = join(root, `usr/lib/pkg${l - 1}-0/sub1`);
      fs.mkdirSync(gone, { recursive: true });
      fs.writeFileSync(join(gone, '.wh.file45.js'), '');
    }
    const tarPath = join(build, `l${l}.tar`);
    sh('tar', [
      '-C',
      root,
      '--sort=name',
      '--numeric-owner',
      '--owner=0',
      '--group=0',
      '--mtime=2024-01-01 00:00:00',
      '-cf',
      tarPath,
      '.',
    ]);
    fs.rmSync(root, { recursive: true, force: true });
    layerTars.push(tarPath);
    diffIds.push(`sha256:${sha256File(tarPath)}`);
  }
  const config = Buffer.from(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      created: '2024-01-01T00:00:00Z',
      config: { Cmd: ['/bin/sh'], Env: ['PATH=/usr/bin:/bin'] },
      rootfs: { type: 'layers', diff_ids: diffIds },
      history: diffIds.map((_, i) => ({ created: '2024-01-01T00:00:00Z', created_by: `layer ${i}` })),
    }),
  );
  const configHex = createHash('sha256').update(config).digest('hex');
  const archives = {};
  // docker save writes plain layer tars; an archive with gzip layers is what skopeo can copy
  // to an OCI layout as is (for plain layers it gzips them, as umoci needs gzip here).
  for (const kind of ['plain', 'gzip']) {
    const out = join(build, kind);
    fs.mkdirSync(out, { recursive: true });
    const layerPaths = [];
    layerTars.forEach((tarPath, l) => {
      const id = createHash('sha256').update(`${kind}${l}`).digest('hex');
      fs.mkdirSync(join(out, id));
      const dest = join(out, id, 'layer.tar');
      if (kind === 'plain') fs.copyFileSync(tarPath, dest);
      else fs.writeFileSync(dest, execFileSync('gzip', ['-6', '-n', '-c', tarPath], { maxBuffer: 1 << 30 }));
      layerPaths.push(`${id}/layer.tar`);
    });
    fs.writeFileSync(join(out, `${configHex}.json`), config);
    fs.writeFileSync(
      join(out, 'manifest.json'),
      JSON.stringify([{ Config: `${configHex}.json`, RepoTags: ['bench/load:latest'], Layers: layerPaths }]),
    );
    const path = join(CACHE, `image-${kind}.tar`);
    sh('tar', ['-C', out, '--numeric-owner', '--owner=0', '--group=0', '-cf', path, '.']);
    fs.rmSync(out, { recursive: true, force: true });
    archives[kind] = { path, bytes: fs.statSync(path).size };
  }
  fs.rmSync(build, { recursive: true, force: true });
  const summary = {
    spec: SPEC,
    archives,
    layers: LAYERS,
    uncompressedBytes: archives.plain.bytes,
    regularFiles: files,
    folders: dirs,
    configDigest: `sha256:${configHex}`,
  };
  fs.writeFileSync(specPath, JSON.stringify(summary, null, 2));
  return summary;
}

async function main() {
  const image = makeArchives();
  const work = fs.mkdtempSync('/var/tmp/corral-bench-load-');
  const timeIt = async (fn) => {
    sh('sync', []);
    const t0 = process.hrtime.bigint();
    await fn();
    return Number(process.hrtime.bigint() - t0) / 1e6;
  };
  const parts = {};
  const part = (k, v) => {
    parts[k] ??= [];
    parts[k].push(v);
  };
  const steps = {};
  const baseline = process.env.BENCH_BASELINE ? await import(process.env.BENCH_BASELINE) : undefined;
  for (const kind of KINDS) {
    if (baseline) {
      steps[`corral baseline (${kind})`] = async (target) => {
        const store = new baseline.ImageStore(join(target, 'store'));
        await baseline.loadArchive(store, image.archives[kind].path);
      };
    }
    const archive = image.archives[kind].path;
    steps[`corral load + unpack (${kind})`] = async (target) => {
      const store = new ImageStore(join(target, 'store'));
      const res = await loadArchive(store, archive);
      if (res.images.length !== 1) throw new Error('corral loaded no image');
    };
    steps[`skopeo copy + umoci unpack (${kind})`] = async (target) => {
      const oci = join(target, 'oci');
      const t0 = process.hrtime.bigint();
      sh('skopeo', ['copy', '-q', `docker-archive:${archive}`, `oci:${oci}:bench`]);
      const t1 = process.hrtime.bigint();
      sh('umoci', ['unpack', '--image', `${oci}:bench`, join(target, 'bundle')]);
      const t2 = process.hrtime.bigint();
      part(`skopeo copy (${kind})`, Number(t1 - t0) / 1e6);
      part(`umoci unpack (${kind})`, Number(t2 - t1) / 1e6);
    };
  }
  const runs = Object.fromEntries(Object.keys(steps).map((k) => [k, []]));
  const order = Object.keys(steps);
  try {
    for (let r = 0; r < REPEAT; r++) {
      // Rotate the order each round so no tool always runs first (or last). The round's
      // outputs are removed when it ends, not between steps: on ext4 without a journal (as
      // here) creating files just after thousands were deleted is slow (the inode allocator
      // skips recently deleted inodes one by one), so a removal before a step would charge
      // that step for the previous one.
      const targets = [];
      try {
        for (let i = 0; i < order.length; i++) {
          const step = order[(i + r) % order.length];
          const target = fs.mkdtempSync(join(work, 'r-'));
          targets.push(target);
          runs[step].push(await timeIt(() => steps[step](target)));
        }
      } finally {
        for (const t of targets) fs.rmSync(t, { recursive: true, force: true });
      }
      console.error(
        `round ${r + 1}/${REPEAT}: ${order.map((k) => `${k} ${runs[k].at(-1).toFixed(0)} ms`).join(', ')}`,
      );
    }
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
  const ms = Object.fromEntries(Object.entries(runs).map(([k, v]) => [k, +median(v).toFixed(1)]));
  const mib = image.uncompressedBytes / 1048576;
  const result = {
    date: new Date().toISOString(),
    node: process.version,
    skopeo: sh('skopeo', ['--version']).toString().trim(),
    umoci: sh('umoci', ['--version']).toString().trim(),
    image: {
      uncompressedMiB: +mib.toFixed(1),
      archiveMiB: Object.fromEntries(KINDS.map((k) => [k, +(image.archives[k].bytes / 1048576).toFixed(1)])),
      layers: image.layers,
      regularFiles: image.regularFiles,
      folders: image.folders,
    },
    repeat: REPEAT,
    ms,
    partsMs: Object.fromEntries(Object.entries(parts).map(([k, v]) => [k, +median(v).toFixed(1)])),
    samplesMs: Object.fromEntries(Object.entries(runs).map(([k, v]) => [k, v.map((x) => +x.toFixed(1))])),
    uncompressedMiBPerSecond: Object.fromEntries(
      Object.entries(ms).map(([k, v]) => [k, +(mib / (v / 1000)).toFixed(1)]),
    ),
    baseline: process.env.BENCH_BASELINE,
    // corral's median time over the peers' median time on the same archive (< 1: corral faster).
    ratioToPeers: Object.fromEntries(
      KINDS.map((k) => [
        k,
        +(ms[`corral load + unpack (${k})`] / ms[`skopeo copy + umoci unpack (${k})`]).toFixed(3),
      ]),
    ),
  };
  fs.mkdirSync(dirname(OUT), { recursive: true });
  fs.writeFileSync(OUT, `${JSON.stringify(result, null, 2)}\n`);
  console.log(JSON.stringify(result, null, 2));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
