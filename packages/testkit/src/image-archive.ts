import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { busyboxRootfs } from './rootfs.js';

export interface ArchiveImage {
  /** The image's name:tag in the archive. */
  tag: string;
  /** Files of the image besides busybox: path (relative to /) to content. */
  files?: Record<string, string>;
  /** Symlinks of the image: path to target. */
  links?: Record<string, string>;
  /** The image config's VOLUME paths. */
  volumes?: string[];
}

/**
 * A docker-archive (what `docker save` writes) of a one-layer busybox image with the given
 * files, links and VOLUME paths, made in `dir` with tar(1); returns the archive's path. Both
 * `corral load` and `docker load` read it.
 */
export function imageArchive(dir: string, image: ArchiveImage): string {
  const rootfs = busyboxRootfs(join(dir, 'rootfs'), 'etc', 'tmp');
  for (const [p, content] of Object.entries(image.files ?? {})) {
    mkdirSync(join(rootfs, p, '..'), { recursive: true });
    writeFileSync(join(rootfs, p), content);
  }
  for (const [p, target] of Object.entries(image.links ?? {})) {
    mkdirSync(join(rootfs, p, '..'), { recursive: true });
    spawnSync('ln', ['-s', target, join(rootfs, p)]);
  }
  const out = join(dir, 'archive');
  mkdirSync(out, { recursive: true });
  const tar = (args: string[]) => {
    const r = spawnSync('tar', args, { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`tar ${args.join(' ')}: ${r.stderr}`);
  };
  tar(['--numeric-owner', '--owner=0', '--group=0', '-C', rootfs, '-cf', join(out, 'layer.tar'), '.']);
  const diffId = `sha256:${createHash('sha256')
    .update(readFileSync(join(out, 'layer.tar')))
    .digest('hex')}`;
  const config = {
    architecture: 'amd64',
    os: 'linux',
    created: '2026-01-01T00:00:00Z',
    config: {
      Cmd: ['sh'],
      Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'],
      ...(image.volumes ? { Volumes: Object.fromEntries(image.volumes.map((v) => [v, {}])) } : {}),
    },
    rootfs: { type: 'layers', diff_ids: [diffId] },
    history: [{ created: '2026-01-01T00:00:00Z', created_by: 'corral testkit' }],
  };
  const configText = JSON.stringify(config);
  const configName = `${createHash('sha256').update(configText).digest('hex')}.json`;
  writeFileSync(join(out, configName), configText);
  writeFileSync(
    join(out, 'manifest.json'),
    JSON.stringify([{ Config: configName, RepoTags: [image.tag], Layers: ['layer.tar'] }]),
  );
  const archive = join(dir, 'image.tar');
  tar(['-C', out, '-cf', archive, 'manifest.json', configName, 'layer.tar']);
  return archive;
}
