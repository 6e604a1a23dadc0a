import { readJsonFile, writeFileAtomic } from './fsutil.js';

/** refs.json: full name (docker.io/library/busybox:latest) -> manifest digest, changed under a lock. */
export class RefStore {
  constructor(
    private readonly path: string,
    private readonly tmpDir: string,
    private readonly lock: (name: string) => Promise<() => void>,
  ) {}

  read(): Record<string, string> {
    return readJsonFile<{ refs: Record<string, string> }>(this.path)?.refs ?? {};
  }

  async update(change: (refs: Record<string, string>) => void): Promise<void> {
    const release = await this.lock('refs');
    try {
      const refs = this.read();
      change(refs);
      const sorted = Object.fromEntries(Object.entries(refs).sort(([a], [b]) => a.localeCompare(b)));
      writeFileAtomic(this.path, JSON.stringify({ refs: sorted }, null, 2), this.tmpDir);
    } finally {
      release();
    }
  }

  async set(pairs: [string, string][]): Promise<void> {
    await this.update((refs) => {
      for (const [name, digest] of pairs) refs[name] = digest;
    });
  }

  /** Full names pointing at a manifest. */
  namesOf(manifestDigest: string): string[] {
    return Object.entries(this.read())
      .filter(([, d]) => d === manifestDigest)
      .map(([n]) => n);
  }
}
