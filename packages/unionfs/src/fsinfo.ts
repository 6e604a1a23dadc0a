import { statfsSync } from 'node:fs';

/** statfs(2) f_type magic numbers of filesystems worth naming in messages. */
const NAMES: Record<number, string> = {
  61267: 'ext4',
  1481003842: 'xfs',
  2435016766: 'btrfs',
  16914836: 'tmpfs',
  2240043254: 'ramfs',
  4076150800: 'f2fs',
  801189825: 'zfs',
  2035054128: 'overlay',
  1702057286: 'fuse',
  26985: 'nfs',
  4283649346: 'cifs',
  4266872130: 'smb2',
  19780: 'vfat',
  538032816: 'exfat',
  1397118030: 'ntfs',
  40864: 'proc',
  1650812274: 'sysfs',
  1936814952: 'squashfs',
  38496: 'iso9660',
  3774210530: 'erofs',
  16914839: 'v9fs',
};

/**
 * Filesystems overlayfs cannot take as upper layer: it needs trusted.* xattrs, d_type,
 * RENAME_WHITEOUT and O_TMPFILE, and refuses an upper that is itself a union.
 */
const BAD_UPPER: Record<string, string> = {
  overlay: 'overlayfs cannot use another overlay mount as its upper layer',
  fuse: 'a FUSE filesystem lacks what overlayfs needs of an upper layer (trusted xattrs, whiteout renames)',
  nfs: 'NFS has no trusted xattrs for whiteouts and opaque folders',
  cifs: 'SMB/CIFS has no trusted xattrs for whiteouts and opaque folders',
  smb2: 'SMB has no trusted xattrs for whiteouts and opaque folders',
  vfat: 'FAT has no xattrs, device nodes or owners',
  exfat: 'exFAT has no xattrs, device nodes or owners',
  ntfs: 'NTFS as mounted here lacks what overlayfs needs of an upper layer',
  proc: 'proc is not a storage filesystem',
  sysfs: 'sysfs is not a storage filesystem',
  squashfs: 'squashfs is read-only',
  iso9660: 'iso9660 is read-only',
  erofs: 'erofs is read-only',
  v9fs: '9p lacks what overlayfs needs of an upper layer',
};

/** The filesystem that holds `path`: its name (or hex magic when unknown). */
export function filesystemOf(path: string): { type: number; name: string } {
  const type = statfsSync(path).type;
  return { type, name: NAMES[type] ?? `0x${type.toString(16)}` };
}

/** Why overlayfs cannot use `name` as upper filesystem, or null when it can. */
export function upperRefusal(name: string): string | null {
  return BAD_UPPER[name] ?? null;
}
