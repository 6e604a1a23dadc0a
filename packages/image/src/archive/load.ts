import * as fs from 'node:fs';
import { posix } from 'node:path';
import type { Readable } from 'node:stream';
import * as tar from 'tar-stream';
import { ImageError } from '../errors.js';
import { Decompress, detectCompression } from '../layer/compress.js';
import { isDigest, sha256 } from '../store/digest.js';
import type { ImageStore } from '../store/image-store.js';
import {
  MAX_ARCHIVE_ENTRIES,
  MAX_ARCHIVE_MANIFEST_BYTES,
  MAX_ARCHIVE_NAME_BYTES,
  MAX_CONFIG_BYTES,
  MAX_ENTRY_NAME_BYTES,
  MAX_MANIFEST_BYTES,
  tooBig,
} from '../store/limits.js';
import { parseManifest } from '../store/manifest-check.js';
import { familiarName, normalizeReference, parseReference } from '../store/reference.js';
import { diskFull, isNoSpace } from '../store/space.js';
import { type Descriptor, type ImageIndex, type Manifest, MediaType } from '../store/types.js';
import { ANNOTATION_CONTAINERD_NAME, ANNOTATION_REF_NAME, pickPlatform } from './common.js';

export interface LoadedImage {
  id: string;
  manifestDigest: string;
  /** Short names, as docker prints "Loaded image: busybox:latest". */
  names: string[];
}

export interface LoadResult {
  format: 'docker-archive' | 'oci-layout';
  images: LoadedImage[];
}

/** Files up to this size are kept in memory while the archive streams by; bigger ones go to the store. */
const MEMORY_LIMIT = 1024 * 1024;
/** All files kept in memory together: past this, small files go to the store too. */
const MEMORY_BUDGET = 64 * 1024 * 1024;

/** The cap of the JSON documents an archive names (checked on the tar header, before reading). */
function jsonCapOf(name: string): { limit: number; what: string } | undefined {
  if (name === 'manifest.json') return { limit: MAX_ARCHIVE_MANIFEST_BYTES, what: 'manifest.json' };
  if (name === 'index.json') return { limit: MAX_MANIFEST_BYTES, what: 'index.json' };
  if (name === 'oci-layout') return { limit: 64 * 1024, what: 'oci-layout' };
  // Classic archives name configs <hex>.json; a layer is never a .json.
  if (name.endsWith('.json')) return { limit: MAX_CONFIG_BYTES, what: 'config' };
  return undefined;
}

type ArchiveFile = { data: Buffer } | { digest: string; size: number };

interface DockerManifestItem {
  Config: string;
  RepoTags?: string[] | null;
  Layers: string[];
}

/**
 * Loads a docker-archive (`docker save`: classic, or the OCI-layout one of Docker 25+) or an
 * OCI image layout archive, plain or compressed, from a file path or a stream. One pass:
 * big files stream straight into the content store (verified), JSON stays in memory.
 * A failure leaves the store as it was.
 */
export async function loadArchive(store: ImageStore, input: string | Readable): Promise<LoadResult> {
  return store.session(async () => {
    const created = new Set<string>();
    try {
      const result = await loadInSession(store, input, created);
      // Big files no loaded image uses (e.g. other platforms of an index) are not kept.
      await store.discardBlobs(created);
      return result;
    } catch (e) {
      await store.discardBlobs(created);
      throw e;
    }
  });
}

async function loadInSession(
  store: ImageStore,
  input: string | Readable,
  created: Set<string>,
): Promise<LoadResult> {
  const files = new Map<string, ArchiveFile>();
  const links = new Map<string, string>();
  let entries = 0;
  let nameBytes = 0;
  let inMemory = 0;
  const source = typeof input === 'string' ? fs.createReadStream(input) : input;
  const extract = tar.extract();
  const reading = (async () => {
    for await (const entry of extract) {
      const h = entry.header;
      if (++entries > MAX_ARCHIVE_ENTRIES) {
        throw new ImageError(
          'BAD_ARCHIVE',
          `the archive holds more than ${MAX_ARCHIVE_ENTRIES} entries; no image archive has so many, refusing it`,
        );
      }
      for (const n of [h.name, h.linkname ?? '']) {
        nameBytes += Buffer.byteLength(n);
        if (Buffer.byteLength(n) > MAX_ENTRY_NAME_BYTES) {
          throw new ImageError(
            'BAD_ARCHIVE',
            `an archive entry has a name of ${Buffer.byteLength(n)} bytes, more than the ${MAX_ENTRY_NAME_BYTES} allowed; refusing the archive`,
          );
        }
      }
      if (nameBytes > MAX_ARCHIVE_NAME_BYTES) {
        throw new ImageError(
          'BAD_ARCHIVE',
          `the archive's entry names take more than ${MAX_ARCHIVE_NAME_BYTES / 1024 / 1024} MiB together; no image archive has so many, refusing it`,
        );
      }
      const name = posix
        .normalize(h.name)
        .replace(/^(\.\/)+|^\/+/, '')
        .replace(/\/$/, '');
      if (h.type === 'symlink' || h.type === 'link') {
        const target =
          h.type === 'symlink'
            ? posix.join(posix.dirname(name), h.linkname ?? '')
            : posix.normalize(h.linkname ?? '');
        links.set(name, target);
        entry.resume();
        continue;
      }
      if (h.type !== 'file' && h.type !== 'contiguous-file') {
        entry.resume();
        continue;
      }
      const size = h.size ?? 0;
      const cap = jsonCapOf(name);
      if (cap && size > cap.limit)
        throw tooBig(`${cap.what} ${name} in the archive`, size, cap.limit, 'BAD_ARCHIVE');
      const fromPath = /^blobs\/sha256\/([a-f0-9]{64})$/.exec(name);
      const expected = fromPath ? `sha256:${fromPath[1]}` : undefined;
      if (size <= MEMORY_LIMIT && inMemory + size <= MEMORY_BUDGET) {
        inMemory += size;
        const chunks: Buffer[] = [];
        for await (const c of entry as AsyncIterable<Buffer>) chunks.push(c);
        const data = Buffer.concat(chunks);
        if (expected && sha256(data) !== expected) {
          throw new ImageError(
            'DIGEST_MISMATCH',
            `archive file ${name}: expected ${expected}, got ${sha256(data)}; the archive is corrupt`,
          );
        }
        files.set(name, { data });
      } else {
        const existed = expected ? store.content.hasBlob(expected) : false;
        const what = `archive file ${name}`;
        const info = await store.content.writeBlob(
          entry as AsyncIterable<Uint8Array>,
          expected ? { digest: expected, size, what } : { size, what },
        );
        if (!existed) created.add(info.digest);
        files.set(name, info);
      }
    }
  })();
  const decompress = new Decompress();
  source.on('error', (e: Error) => decompress.destroy(e));
  decompress.on('error', (e: Error) => extract.destroy(e));
  source.pipe(decompress).pipe(extract as unknown as NodeJS.WritableStream);
  try {
    await reading;
  } catch (e) {
    source.destroy();
    if (e instanceof ImageError) throw e;
    if (isNoSpace(e)) throw diskFull(store.root, "the image archive's files", e);
    throw new ImageError('BAD_ARCHIVE', `cannot read the image archive: ${(e as Error).message}`, {
      cause: e,
    });
  }

  const find = (path: string): ArchiveFile | undefined => {
    let p = posix.normalize(path).replace(/^(\.\/)+|^\/+/, '');
    for (let i = 0; i < 16 && !files.has(p) && links.has(p); i++) p = links.get(p)!;
    return files.get(p);
  };
  const need = (path: string, what: string): ArchiveFile => {
    const f = find(path);
    if (!f) throw new ImageError('BAD_ARCHIVE', `the archive lacks ${path} (${what})`);
    return f;
  };
  /** An archive file's bytes; one over `limit` is refused unread. */
  const bytes = (path: string, what: string, limit: number): Buffer => {
    const f = need(path, what);
    const size = 'data' in f ? f.data.length : f.size;
    if (size > limit) throw tooBig(`${path} in the archive (${what})`, size, limit, 'BAD_ARCHIVE');
    return 'data' in f ? f.data : fs.readFileSync(store.content.blobPath(f.digest));
  };
  /** An archive file parsed as JSON; one over `limit` is refused unread. */
  const json = <T>(path: string, what: string, limit: number): T => {
    const data = bytes(path, what, limit);
    try {
      return JSON.parse(data.toString('utf8')) as T;
    } catch (e) {
      throw new ImageError(
        'BAD_ARCHIVE',
        `${path} in the archive is not valid JSON: ${(e as Error).message}`,
      );
    }
  };
  /** Puts an archive file into the content store, checking it against `expected`. */
  const storeFile = async (
    path: string,
    what: string,
    expected?: Descriptor,
  ): Promise<{ digest: string; size: number }> => {
    const f = need(path, what);
    if ('data' in f) {
      const existed = expected ? store.content.hasBlob(expected.digest) : false;
      const info = await store.content.writeBlob(
        f.data,
        expected ? { digest: expected.digest, size: expected.size } : {},
      );
      if (!existed) created.add(info.digest);
      return info;
    }
    if (expected && (f.digest !== expected.digest || f.size !== expected.size)) {
      throw new ImageError(
        'DIGEST_MISMATCH',
        `archive file ${path}: expected ${expected.digest} (${expected.size} bytes), got ${f.digest} (${f.size} bytes)`,
      );
    }
    return f;
  };
  const blobPathOf = (digest: string) => {
    if (!isDigest(digest)) throw new ImageError('BAD_ARCHIVE', `bad digest "${digest}" in the archive`);
    return `blobs/sha256/${digest.slice(7)}`;
  };

  // RepoTags of docker's manifest.json, by config digest, to name OCI entries too.
  const dockerItems = find('manifest.json')
    ? json<DockerManifestItem[]>('manifest.json', 'docker manifest', MAX_ARCHIVE_MANIFEST_BYTES)
    : undefined;
  if (dockerItems && !Array.isArray(dockerItems))
    throw new ImageError('BAD_ARCHIVE', 'manifest.json is not a list');
  const images: LoadedImage[] = [];

  if (find('index.json')) {
    const index = json<ImageIndex>('index.json', 'OCI index', MAX_MANIFEST_BYTES);
    if (!Array.isArray(index.manifests))
      throw new ImageError('BAD_ARCHIVE', 'index.json has no manifests list');
    const tagsByConfig = new Map<string, string[]>();
    for (const item of dockerItems ?? []) {
      const cfg = find(item.Config);
      if (cfg) {
        const digest = 'data' in cfg ? sha256(cfg.data) : cfg.digest;
        tagsByConfig.set(digest, [...(tagsByConfig.get(digest) ?? []), ...(item.RepoTags ?? [])]);
      }
    }
    const byManifest = new Map<string, { desc: Descriptor; names: Set<string> }>();
    for (const top of index.manifests) {
      let desc = top;
      for (let depth = 0; isIndexType(desc.mediaType); depth++) {
        if (depth > 4) throw new ImageError('BAD_ARCHIVE', 'index.json nests indexes too deeply');
        const nested = json<ImageIndex>(blobPathOf(desc.digest), 'nested index', MAX_MANIFEST_BYTES);
        await storeFile(blobPathOf(desc.digest), 'nested index', desc);
        const picked = pickPlatform(nested.manifests ?? []);
        if (!picked) {
          throw new ImageError(
            'UNSUPPORTED',
            `index ${desc.digest} has no manifest for linux/${process.arch} (platforms: ${(nested.manifests ?? []).map((m) => `${m.platform?.os}/${m.platform?.architecture}`).join(', ')})`,
          );
        }
        desc = picked;
      }
      const entry = byManifest.get(desc.digest) ?? { desc, names: new Set<string>() };
      byManifest.set(desc.digest, entry);
      for (const n of namesFromAnnotations(top.annotations)) entry.names.add(n);
    }
    for (const { desc, names } of byManifest.values()) {
      const manifestPath = blobPathOf(desc.digest);
      await storeFile(manifestPath, 'manifest', desc);
      // Checked by the store's manifest parser before any blob it names is stored.
      const manifest = parseManifest(bytes(manifestPath, 'manifest', MAX_MANIFEST_BYTES), desc.digest);
      if (manifest.config.size > MAX_CONFIG_BYTES)
        throw tooBig(`image config ${manifest.config.digest}`, manifest.config.size, MAX_CONFIG_BYTES);
      await storeFile(blobPathOf(manifest.config.digest), 'config', manifest.config);
      for (const l of manifest.layers) await storeFile(blobPathOf(l.digest), 'layer', l);
      for (const t of tagsByConfig.get(manifest.config.digest) ?? []) names.add(normalizeReference(t));
      const record = await store.importFromBlobs({ manifestDigest: desc.digest, names: [...names] });
      images.push({ id: record.id, manifestDigest: record.manifestDigest, names: [...names] });
    }
    return { format: dockerItems ? 'docker-archive' : 'oci-layout', images: shortNames(images) };
  }

  if (!dockerItems) {
    throw new ImageError(
      'BAD_ARCHIVE',
      'not an image archive: it has neither manifest.json (docker-archive) nor index.json (OCI layout)',
    );
  }
  for (const item of dockerItems) {
    if (typeof item.Config !== 'string' || !Array.isArray(item.Layers)) {
      throw new ImageError('BAD_ARCHIVE', 'manifest.json: each entry needs Config and Layers');
    }
    const cfgFile = need(item.Config, 'config');
    const cfgSize = 'data' in cfgFile ? cfgFile.data.length : cfgFile.size;
    if (cfgSize > MAX_CONFIG_BYTES)
      throw tooBig(`config ${item.Config} in the archive`, cfgSize, MAX_CONFIG_BYTES);
    const cfg = await storeFile(item.Config, 'config');
    // Classic archives name the config <hex>.json: that name is a claim to check.
    const claimed = /(?:^|\/)([a-f0-9]{64})(?:\.json)?$/.exec(item.Config);
    if (claimed && `sha256:${claimed[1]}` !== cfg.digest) {
      throw new ImageError(
        'DIGEST_MISMATCH',
        `config ${item.Config}: expected sha256:${claimed[1]}, got ${cfg.digest}`,
      );
    }
    const layers: Descriptor[] = [];
    for (const path of item.Layers) {
      const info = await storeFile(path, 'layer');
      const head = Buffer.alloc(4);
      const fd = fs.openSync(store.content.blobPath(info.digest), 'r');
      try {
        fs.readSync(fd, head, 0, 4, 0);
      } finally {
        fs.closeSync(fd);
      }
      const c = detectCompression(head);
      const mediaType =
        c === 'gzip' ? MediaType.OciLayerGzip : c === 'zstd' ? MediaType.OciLayerZstd : MediaType.OciLayer;
      layers.push({ mediaType, digest: info.digest, size: info.size });
    }
    const manifest: Manifest = {
      schemaVersion: 2,
      mediaType: MediaType.OciManifest,
      config: { mediaType: MediaType.OciConfig, digest: cfg.digest, size: cfg.size },
      layers,
    };
    const names = (item.RepoTags ?? []).map((t) => normalizeReference(t));
    const manifestBytes = Buffer.from(JSON.stringify(manifest));
    // Written by importFromBlobs: discarded with the rest when the load fails.
    if (!store.content.hasBlob(sha256(manifestBytes))) created.add(sha256(manifestBytes));
    const record = await store.importFromBlobs({ manifest: manifestBytes, names });
    images.push({ id: record.id, manifestDigest: record.manifestDigest, names });
  }
  return { format: 'docker-archive', images: shortNames(images) };
}

function isIndexType(mt: string | undefined): boolean {
  return mt === MediaType.OciIndex || mt === MediaType.DockerManifestList;
}

/** Full names from an index entry's annotations; a bare tag in ref.name is not a name. */
function namesFromAnnotations(a: Record<string, string> | undefined): string[] {
  if (!a) return [];
  const out: string[] = [];
  const containerd = a[ANNOTATION_CONTAINERD_NAME];
  if (containerd) out.push(normalizeReference(containerd));
  const ref = a[ANNOTATION_REF_NAME];
  if (ref && !containerd && /[:/]/.test(ref)) {
    try {
      if (!parseReference(ref).digest) out.push(normalizeReference(ref));
    } catch {
      // A ref.name that is no image name (OCI allows any string): the image stays unnamed.
    }
  }
  return out;
}

function shortNames(images: LoadedImage[]): LoadedImage[] {
  return images.map((i) => ({ ...i, names: i.names.map(familiarName) }));
}
