import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { Readable } from 'node:stream';
import * as tar from 'tar-stream';
import { hostArchitecture } from './archive/common.js';
import { ImageError } from './errors.js';
import { sha256 } from './store/digest.js';
import type { ImageStore } from './store/image-store.js';
import { type ImageConfig, type ImageRecord, MediaType } from './store/types.js';

export const BUSYBOX_IMAGE = 'busybox:latest';
/** Where Debian's busybox-static puts the binary. */
export const DEFAULT_BUSYBOX = '/bin/busybox';

/** Every entry gets this mtime (2024-01-01), so the tar and the image digest are stable. */
const MTIME = new Date('2024-01-01T00:00:00Z');

const PASSWD = [
  'root:x:0:0:root:/root:/bin/sh',
  'daemon:x:1:1:daemon:/usr/sbin:/bin/false',
  'bin:x:2:2:bin:/bin:/bin/false',
  'sys:x:3:3:sys:/dev:/bin/false',
  'sync:x:4:100:sync:/bin:/bin/sync',
  'mail:x:8:8:mail:/var/spool/mail:/bin/false',
  'www-data:x:33:33:www-data:/var/www:/bin/false',
  'operator:x:37:37:Operator:/var:/bin/false',
  'nobody:x:65534:65534:nobody:/home:/bin/false',
  '',
].join('\n');

const GROUP = [
  'root:x:0:',
  'daemon:x:1:',
  'bin:x:2:',
  'sys:x:3:',
  'adm:x:4:',
  'tty:x:5:',
  'disk:x:6:',
  'wheel:x:10:root',
  'mail:x:8:',
  'www-data:x:33:',
  'users:x:100:',
  'nogroup:x:65534:',
  '',
].join('\n');

const DIRS: [string, number][] = [
  ['bin', 0o755],
  ['dev', 0o755],
  ['etc', 0o755],
  ['home', 0o755],
  ['proc', 0o555],
  ['root', 0o700],
  ['sbin', 0o755],
  ['sys', 0o555],
  ['tmp', 0o1777],
  ['usr', 0o755],
  ['usr/bin', 0o755],
  ['usr/sbin', 0o755],
  ['var', 0o755],
  ['var/spool', 0o755],
  ['var/spool/mail', 0o755],
  ['var/tmp', 0o1777],
  ['var/www', 0o755],
];

/** The busybox layer as a tar whose bytes depend only on the busybox binary. */
export async function busyboxLayerTar(busyboxPath = DEFAULT_BUSYBOX): Promise<Buffer> {
  let binary: Buffer;
  let applets: string[];
  try {
    binary = fs.readFileSync(busyboxPath);
    applets = execFileSync(busyboxPath, ['--list'], { encoding: 'utf8' }).split('\n').filter(Boolean);
  } catch (e) {
    throw new ImageError(
      'NOT_FOUND',
      `cannot build the busybox image from ${busyboxPath}: ${(e as Error).message}; install Debian's busybox-static (apt-get install busybox-static)`,
    );
  }
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  const collecting = (async () => {
    for await (const c of pack as AsyncIterable<Buffer>) chunks.push(c);
  })();
  const entry = (h: Partial<tar.Header> & { name: string }, body?: Buffer) =>
    new Promise<void>((res, rej) => {
      const header = { mtime: MTIME, uid: 0, gid: 0, uname: '', gname: '', ...h };
      if (body) pack.entry(header, body, (e) => (e ? rej(e) : res()));
      else pack.entry(header, (e) => (e ? rej(e) : res()));
    });
  for (const [name, mode] of DIRS) await entry({ name: `${name}/`, type: 'directory', mode });
  await entry({ name: 'bin/busybox', mode: 0o755, size: binary.length }, binary);
  for (const a of [...new Set(applets)].sort()) {
    if (a === 'busybox' || !/^[\w.[-]+$/.test(a)) continue;
    await entry({ name: `bin/${a}`, type: 'symlink', linkname: 'busybox', mode: 0o777 });
  }
  await entry({ name: 'etc/group', mode: 0o644, size: GROUP.length }, Buffer.from(GROUP));
  await entry({ name: 'etc/passwd', mode: 0o644, size: PASSWD.length }, Buffer.from(PASSWD));
  pack.finalize();
  await collecting;
  return Buffer.concat(chunks);
}

/**
 * The embedded default image: `busybox:latest` built from the host's busybox-static, one
 * uncompressed layer, deterministic bytes. Built and loaded the first time it is asked for.
 */
export async function ensureBusyboxImage(
  store: ImageStore,
  options: { busyboxPath?: string } = {},
): Promise<ImageRecord> {
  const existing = store.resolve(BUSYBOX_IMAGE);
  if (existing) return existing;
  const layer = await busyboxLayerTar(options.busyboxPath);
  const diffId = sha256(layer);
  return store.session(async () => {
    const blob = await store.content.writeBlob(Readable.from([layer]), { digest: diffId });
    const config: ImageConfig = {
      created: MTIME.toISOString(),
      architecture: hostArchitecture(),
      os: 'linux',
      config: { Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'], Cmd: ['sh'] },
      rootfs: { type: 'layers', diff_ids: [diffId] },
      history: [
        {
          created: MTIME.toISOString(),
          created_by: `corral: busybox-static from ${options.busyboxPath ?? DEFAULT_BUSYBOX}`,
        },
      ],
    };
    return store.createImage(
      config,
      [{ mediaType: MediaType.OciLayer, digest: blob.digest, size: blob.size }],
      [BUSYBOX_IMAGE],
    );
  });
}
