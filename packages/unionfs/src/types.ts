/**
 * The name a backend is registered under: `overlay` and `fuse` come with this package, others
 * register themselves with registerUnionFs.
 */
export type BackendName = string;

/** How the process serving a mount ended. */
export interface UnionServerExit {
  code: number | null;
  signal: string | null;
}

export interface UnionMountOptions {
  /** Read-only layers, top layer first (as overlayfs's lowerdir lists them). At least one. */
  lower: readonly string[];
  /** The writable layer. Omit it (and `work`) for a read-only mount. */
  upper?: string;
  /** An empty folder on the same filesystem as `upper`, used by the backend for atomic changes. */
  work?: string;
  /** An existing folder where the merged tree appears. */
  target: string;
}

/** A mounted union. */
export interface UnionMount {
  readonly backend: BackendName;
  readonly target: string;
  readonly lower: readonly string[];
  readonly upper: string | null;
  readonly work: string | null;
  readonly readonly: boolean;
  /** The process serving the mount (the fuse backend's server); null when the kernel serves it. */
  readonly pid: number | null;
  /**
   * Settles when the mount's server has ended: after an unmount, or when it died (the mount
   * then answers ENOTCONN until it is taken off). For a kernel mount: after unmount() here.
   */
  readonly closed: Promise<UnionServerExit>;
  /** Unmounts this union. */
  unmount(options?: UnmountOptions): Promise<void>;
}

export interface UnmountOptions {
  /** Detach the mount even while files in it are open (MNT_DETACH); it goes away when they close. */
  detach?: boolean;
}

/** One union backend. Every backend writes upper layers in overlayfs's own on-disk format. */
export interface UnionFs {
  readonly name: BackendName;
  /** Mounts the union of `lower` (and `upper`) at `target`. */
  mount(options: UnionMountOptions): Promise<UnionMount>;
  /** Unmounts the union at `target`. */
  unmount(target: string, options?: UnmountOptions): Promise<void>;
}
