import { promises as fs } from 'node:fs';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { pack } from 'tar-stream';
import type { ContentStore } from '../src/store/content.js';
import { sha256 } from './registry-server.js';

export interface BuiltImage {
  manifest: Buffer;
  mediaType: string;
  digest: string;
  config: Buffer;
  configDigest: string;
  layers: { digest: string; size: number; diffId: string; mediaType: string }[];
  /** Every blob of the image by digest, manifest included. */
  blobs: Map<string, Buffer>;
}

/** An uncompressed tar of the given files (fixed mtimes, so the bytes are the same each run). */
export async function makeTar(files: Record<string, string | Buffer>): Promise<Buffer> {
  const p = pack();
  for (const [name, content] of Object.entries(files)) {
    p.entry({ name, mode: 0o644, mtime: new Date(1_700_000_000_000), uid: 0, gid: 0 }, content);
  }
  p.finalize();
  const chunks: Buffer[] = [];
  for await (const c of p as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks);
}

/** Builds a small image in Docker schema 2 or OCI form: gzip layers, a config, a manifest. */
export async function buildImage(opts: {
  format: 'oci' | 'docker';
  layers: Record<string, string | Buffer>[];
  architecture?: string;
  variant?: string;
  cmd?: string[];
}): Promise<BuiltImage> {
  const oci = opts.format === 'oci';
  const blobs = new Map<string, Buffer>();
  const layers: BuiltImage['layers'] = [];
  for (const files of opts.layers) {
    const tar = await makeTar(files);
    const gz = gzipSync(tar);
    const digest = sha256(gz);
    blobs.set(digest, gz);
    layers.push({
      digest,
      size: gz.length,
      diffId: sha256(tar),
      mediaType: oci
        ? 'application/vnd.oci.image.layer.v1.tar+gzip'
        : 'application/vnd.docker.image.rootfs.diff.tar.gzip',
    });
  }
  const configJson: Record<string, unknown> = {
    architecture: opts.architecture ?? 'amd64',
    os: 'linux',
    config: { Cmd: opts.cmd ?? ['/bin/sh'], Env: ['PATH=/bin'] },
    rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
    history: layers.map(() => ({ created_by: 'corral test' })),
  };
  if (opts.variant) configJson['variant'] = opts.variant;
  const config = Buffer.from(JSON.stringify(configJson));
  const configDigest = sha256(config);
  blobs.set(configDigest, config);
  const mediaType = oci
    ? 'application/vnd.oci.image.manifest.v1+json'
    : 'application/vnd.docker.distribution.manifest.v2+json';
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType,
      config: {
        mediaType: oci
          ? 'application/vnd.oci.image.config.v1+json'
          : 'application/vnd.docker.container.image.v1+json',
        digest: configDigest,
        size: config.length,
      },
      layers: layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size })),
    }),
  );
  const digest = sha256(manifest);
  blobs.set(digest, manifest);
  return { manifest, mediaType, digest, config, configDigest, layers, blobs };
}

/** An index (OCI) or manifest list (Docker) over images with their platforms. */
export function buildIndex(
  format: 'oci' | 'docker',
  entries: { image: BuiltImage; platform: { os: string; architecture: string; variant?: string } }[],
): { bytes: Buffer; digest: string; mediaType: string } {
  const mediaType =
    format === 'oci'
      ? 'application/vnd.oci.image.index.v1+json'
      : 'application/vnd.docker.distribution.manifest.list.v2+json';
  const bytes = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType,
      manifests: entries.map(({ image, platform }) => ({
        mediaType: image.mediaType,
        digest: image.digest,
        size: image.manifest.length,
        platform,
      })),
    }),
  );
  return { bytes, digest: sha256(bytes), mediaType };
}

/** Puts every blob of the images into a content store. */
export async function storeImage(store: ContentStore, ...images: BuiltImage[]): Promise<void> {
  for (const image of images) {
    for (const [digest, data] of image.blobs) await store.writeBlob(data, { digest, size: data.length });
  }
}

/** Writes an OCI image layout folder holding one image under `tag` (for skopeo's `oci:DIR:TAG`). */
export async function writeOciLayout(dir: string, image: BuiltImage, tag: string): Promise<void> {
  await fs.mkdir(path.join(dir, 'blobs', 'sha256'), { recursive: true });
  await fs.writeFile(path.join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  for (const [digest, data] of image.blobs) {
    await fs.writeFile(path.join(dir, 'blobs', 'sha256', digest.slice(7)), data);
  }
  const index = {
    schemaVersion: 2,
    manifests: [
      {
        mediaType: image.mediaType,
        digest: image.digest,
        size: image.manifest.length,
        annotations: { 'org.opencontainers.image.ref.name': tag },
      },
    ],
  };
  await fs.writeFile(path.join(dir, 'index.json'), JSON.stringify(index));
}
