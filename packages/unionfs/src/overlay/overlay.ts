import { mkdirSync, mkdtempSync, readSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  AT,
  close,
  FSCONFIG,
  FSMOUNT,
  FSOPEN,
  fsconfig,
  fsmount,
  fsopen,
  isErrno,
  MOUNT_ATTR,
  MOVE_MOUNT,
  MS,
  mount,
  moveMount,
  SyscallError,
} from '@corral/sys';
import { UnionFsError } from '../errors.js';
import type {
  BackendName,
  UnionFs,
  UnionMount,
  UnionMountOptions,
  UnionServerExit,
  UnmountOptions,
} from '../types.js';
import { unmountUnion } from '../unmount.js';
import { type CheckedOptions, checkOptions, emptyLayerFor } from '../validate.js';

/**
 * The semantics every corral union promises (and the fuse backend must match): no inode
 * index, no redirects (renaming a lower folder fails with EXDEV, and tools fall back to
 * copying), full copy-up rather than metadata-only.
 */
export const OVERLAY_FEATURES: readonly (readonly [string, string])[] = [
  ['index', 'off'],
  ['redirect_dir', 'off'],
  ['metacopy', 'off'],
];

/** Mount data of mount(2) is copied into one page; the smallest page size is the safe bound. */
const PAGE_LIMIT = 4095;

/** How the overlay backend talks to the kernel. */
export type OverlayMethod = 'auto' | 'fsopen' | 'mount';

export interface OverlayOptions {
  /**
   * `fsopen`: the new mount API with one `lowerdir+` per layer (no page limit). `mount`:
   * classic mount(2), with short links when the data would not fit a page. `auto` (default):
   * fsopen when the kernel knows `lowerdir+`, else mount.
   */
  method?: OverlayMethod;
}

/** Escapes a path for overlayfs's classic option string, where `,` `:` and `\` are special. */
function escapeOption(path: string): string {
  return path.replace(/[\\,:]/g, (c) => `\\${c}`);
}

/** Reads what the kernel logged on an fsopen context (lines like "e overlayfs: ..."). */
function contextLog(fd: number): string {
  const buf = Buffer.alloc(1024);
  const lines: string[] = [];
  for (let i = 0; i < 16; i++) {
    try {
      const n = readSync(fd, buf);
      if (n <= 0) break;
      lines.push(buf.subarray(0, n).toString().trim());
    } catch {
      break; // ENODATA: nothing more logged
    }
  }
  return lines.join('; ');
}

class KernelOverlayMount implements UnionMount {
  readonly backend: BackendName = 'overlay';
  readonly readonly: boolean;
  /** The kernel serves it: no process. */
  readonly pid = null;
  readonly closed: Promise<UnionServerExit>;
  private settle!: (e: UnionServerExit) => void;

  constructor(
    private readonly fs: OverlayUnionFs,
    readonly target: string,
    readonly lower: readonly string[],
    readonly upper: string | null,
    readonly work: string | null,
  ) {
    this.readonly = upper === null;
    this.closed = new Promise((resolve) => {
      this.settle = resolve;
    });
  }

  async unmount(options?: UnmountOptions): Promise<void> {
    await this.fs.unmount(this.target, options);
    this.settle({ code: 0, signal: null });
  }
}

/** The kernel's overlayfs, mounted through koffi. */
export class OverlayUnionFs implements UnionFs {
  readonly name: BackendName = 'overlay';
  private readonly method: OverlayMethod;
  /** Learned on the first auto mount: whether fsopen('overlay') takes lowerdir+. */
  private lowerdirAdd: boolean | null = null;

  constructor(options: OverlayOptions = {}) {
    this.method = options.method ?? 'auto';
  }

  async mount(options: UnionMountOptions): Promise<UnionMount> {
    const o = checkOptions(options, 'overlay');
    // overlayfs wants two lowers when there is no upper: an empty bottom layer changes nothing.
    // It must live as long as the mount (a removed layer root reads as empty), so it sits
    // beside the mount point and goes with unmount or cleanupStale.
    const empty = o.upper === null && o.lower.length === 1 ? emptyLayerFor(o.target) : null;
    if (empty) mkdirSync(empty, { recursive: true, mode: 0o555 });
    const layers = empty ? [...o.lower, empty] : o.lower;
    try {
      if (this.method === 'mount' || (this.method === 'auto' && this.lowerdirAdd === false)) {
        this.mountClassic(o, layers);
      } else {
        const done = this.mountNewApi(o, layers);
        if (!done) this.mountClassic(o, layers);
      }
    } catch (e) {
      if (empty) rmSync(empty, { recursive: true, force: true });
      throw e;
    }
    return new KernelOverlayMount(this, o.target, o.lower, o.upper, o.work);
  }

  async unmount(target: string, options: UnmountOptions = {}): Promise<void> {
    const m = unmountUnion(target, options, (type) => type === 'overlay', 'an overlay');
    rmSync(emptyLayerFor(m.mountPoint), { recursive: true, force: true });
  }

  /** Returns false when the kernel has no lowerdir+ (auto method only), true when mounted. */
  private mountNewApi(o: CheckedOptions, layers: string[]): boolean {
    let fd: number;
    try {
      fd = fsopen('overlay', FSOPEN.CLOEXEC);
    } catch (e) {
      if (this.method === 'auto' && isErrno(e, 'ENOSYS', 'ENODEV')) {
        this.lowerdirAdd = false;
        return false;
      }
      throw this.failed(o, e, '');
    }
    try {
      try {
        fsconfig(fd, FSCONFIG.SET_STRING, 'lowerdir+', layers[0]);
        this.lowerdirAdd = true;
      } catch (e) {
        // An unknown key is EINVAL: a kernel older than 6.8.
        if (this.method === 'auto' && isErrno(e, 'EINVAL') && this.lowerdirAdd === null) {
          this.lowerdirAdd = false;
          return false;
        }
        throw e;
      }
      for (const layer of layers.slice(1)) fsconfig(fd, FSCONFIG.SET_STRING, 'lowerdir+', layer);
      if (o.upper && o.work) {
        fsconfig(fd, FSCONFIG.SET_STRING, 'upperdir', o.upper);
        fsconfig(fd, FSCONFIG.SET_STRING, 'workdir', o.work);
      }
      for (const [k, v] of OVERLAY_FEATURES) fsconfig(fd, FSCONFIG.SET_STRING, k, v);
      fsconfig(fd, FSCONFIG.CMD_CREATE, null);
      const mfd = fsmount(fd, FSMOUNT.CLOEXEC, o.upper ? 0 : MOUNT_ATTR.RDONLY);
      try {
        moveMount(mfd, '', AT.FDCWD, o.target, MOVE_MOUNT.F_EMPTY_PATH);
      } finally {
        close(mfd);
      }
      return true;
    } catch (e) {
      throw this.failed(o, e, contextLog(fd));
    } finally {
      close(fd);
    }
  }

  private mountClassic(o: CheckedOptions, layers: string[]): void {
    const rest = [
      ...(o.upper && o.work ? [`upperdir=${escapeOption(o.upper)}`, `workdir=${escapeOption(o.work)}`] : []),
      ...OVERLAY_FEATURES.map(([k, v]) => `${k}=${v}`),
    ];
    const flags = o.upper ? 0 : MS.RDONLY;
    const data = [`lowerdir=${layers.map(escapeOption).join(':')}`, ...rest].join(',');
    if (data.length <= PAGE_LIMIT) {
      try {
        mount('overlay', o.target, 'overlay', flags, data);
      } catch (e) {
        throw this.failed(o, e, '');
      }
      return;
    }
    // Too long for a page: short links as Docker's overlay2 keeps them, named 0, 1, ... in a
    // folder that is the working directory during mount(2), so each layer costs 2 or 3 bytes.
    const links = mkdtempSync(join(tmpdir(), 'corral-unionfs-links-'));
    const cwd = process.cwd();
    try {
      const names = layers.map((layer, i) => {
        const name = i.toString(36);
        symlinkSync(layer, join(links, name));
        return name;
      });
      const short = [`lowerdir=${names.join(':')}`, ...rest].join(',');
      if (short.length > PAGE_LIMIT) {
        throw new UnionFsError(
          'BAD_OPTIONS',
          `overlay: mount data is ${short.length} bytes even with short links, over one page; use shorter upper/work paths or a kernel with fsopen lowerdir+ (6.8+)`,
        );
      }
      process.chdir(links);
      try {
        mount('overlay', o.target, 'overlay', flags, short);
      } catch (e) {
        throw this.failed(o, e, '');
      } finally {
        process.chdir(cwd);
      }
    } finally {
      rmSync(links, { recursive: true, force: true });
    }
  }

  private failed(o: CheckedOptions, e: unknown, log: string): unknown {
    if (e instanceof UnionFsError || !(e instanceof SyscallError)) return e;
    const where = o.upper
      ? `${o.lower.length} lower layer(s), upper ${o.upper}`
      : `${o.lower.length} lower layer(s), read-only`;
    const hint =
      e.code === 'EBUSY'
        ? 'upper or work is in use by another overlay mount'
        : e.code === 'ELOOP'
          ? 'a layer is inside another layer, or upper/work overlap a lower'
          : 'the kernel log says why: dmesg | grep overlayfs';
    return new UnionFsError(
      'MOUNT_FAILED',
      `overlay mount at ${o.target} (${where}) failed: ${e.message}${log ? ` [${log}]` : ''}; ${hint}`,
      { cause: e },
    );
  }
}
