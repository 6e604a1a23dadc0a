// Hand-made tars for the cp tests: ustar headers written byte by byte, so a test can put in
// exactly the hostile names (`../..`, absolute paths, a symlink then a file under it) that no
// well-behaved tar tool would write.

export interface TarEntry {
  name: string;
  type?: 'file' | 'dir' | 'symlink' | 'link';
  body?: string;
  linkname?: string;
  mode?: number;
  uid?: number;
  gid?: number;
}

const TYPE = { file: '0', link: '1', symlink: '2', dir: '5' } as const;

function header(e: TarEntry, size: number): Buffer {
  const b = Buffer.alloc(512);
  const octal = (v: number, off: number, len: number) =>
    b.write(`${v.toString(8).padStart(len - 1, '0')}\0`, off, 'ascii');
  if (Buffer.byteLength(e.name) > 100) throw new Error(`name too long for this test tar: ${e.name}`);
  b.write(e.name, 0, 'utf8');
  octal(e.mode ?? (e.type === 'dir' ? 0o755 : 0o644), 100, 8);
  octal(e.uid ?? 0, 108, 8);
  octal(e.gid ?? 0, 116, 8);
  octal(size, 124, 12);
  octal(Math.floor(Date.now() / 1000), 136, 12);
  b.write('        ', 148, 'ascii');
  b.write(TYPE[e.type ?? 'file'], 156, 'ascii');
  if (e.linkname) b.write(e.linkname, 157, 'utf8');
  b.write('ustar\0', 257, 'ascii');
  b.write('00', 263, 'ascii');
  let sum = 0;
  for (const byte of b) sum += byte;
  b.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'ascii');
  return b;
}

/** A whole tar of `entries`, with its two zero blocks at the end. */
export function makeTar(entries: TarEntry[]): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    const body = Buffer.from(e.type === 'file' || e.type === undefined ? (e.body ?? '') : '');
    parts.push(header(e, body.length), body, Buffer.alloc((512 - (body.length % 512)) % 512));
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

/** The names in a tar (ustar names only, as written by makeTar or corral). */
export function tarNames(tar: Buffer): string[] {
  const out: string[] = [];
  let off = 0;
  while (off + 512 <= tar.length) {
    const h = tar.subarray(off, off + 512);
    if (h.every((x) => x === 0)) break;
    const name = h.toString('utf8', 0, 100).replace(/\0.*$/s, '');
    const prefix = h.toString('utf8', 345, 500).replace(/\0.*$/s, '');
    const size = Number.parseInt(h.toString('ascii', 124, 136).replace(/\0.*$/s, '').trim() || '0', 8);
    const type = String.fromCharCode(h[156]);
    if (type !== 'x' && type !== 'g') out.push(prefix ? `${prefix}/${name}` : name);
    off += 512 + Math.ceil(size / 512) * 512;
  }
  return out;
}
