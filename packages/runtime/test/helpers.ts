import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { OciSpec } from '../dist/index.js';

export { busyboxRootfs, tempDir } from '@corral/testkit';

/** Writes bundles (config.json naming `rootfs`) into folders of `dir`. */
export function bundleMaker(dir: string, rootfs: string) {
  let n = 0;
  return (args: string[], change: (s: OciSpec) => void = () => {}): string => {
    const bundle = join(dir, `bundle${n++}`);
    mkdirSync(bundle);
    const spec: OciSpec = {
      ociVersion: '1.2.0',
      process: { user: { uid: 0, gid: 0 }, args, env: ['PATH=/bin'], cwd: '/' },
      root: { path: rootfs },
      hostname: 'rt',
      mounts: [
        { destination: '/proc', type: 'proc', source: 'proc' },
        { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'mode=755'] },
      ],
      linux: { namespaces: [{ type: 'pid' }, { type: 'mount' }, { type: 'uts' }, { type: 'ipc' }] },
    };
    change(spec);
    writeFileSync(join(bundle, 'config.json'), JSON.stringify(spec));
    return bundle;
  };
}

/** Collects a stream's text; call the result for what came so far. */
export function collect(stream: NodeJS.ReadableStream | null): () => string {
  let out = '';
  stream?.on('data', (d) => (out += d));
  return () => out;
}

/** The host's dynamic loader and node's libraries, so that node itself can run inside. */
export function addNodeLibraries(root: string): void {
  const ldd = spawnSync('ldd', [process.execPath], { encoding: 'utf8' }).stdout;
  for (const m of ldd.matchAll(/(\/\S+)/g)) {
    const lib = m[1];
    mkdirSync(join(root, dirname(lib)), { recursive: true });
    copyFileSync(lib, join(root, lib));
  }
}
