// Each package as an npm user gets it: packed with `pnpm pack`, installed alone in a fresh
// folder outside the workspace (with the packed tarballs of the corral packages it depends on,
// and its other dependencies from the npm registry, the only network it uses), and its README
// example run from there. The tarball itself is checked too: the license text, `os`, source
// maps that resolve inside it, a README that points only at files it holds.
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { busyboxRootfs, Cleanups, corralBin, exec, must, removeTree } from '@corral/testkit';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';

const repo = fileURLToPath(new URL('../..', import.meta.url));

/**
 * The published packages, in dependency order. A new package adds a line; `prepare` makes what
 * its example needs in the project folder first.
 */
const PACKAGES: { dir: string; prepare?: (project: string) => void }[] = [
  { dir: 'packages/sys' },
  { dir: 'packages/pidns' },
  { dir: 'packages/cgroups' },
  { dir: 'packages/unionfs' },
  { dir: 'packages/image' },
  { dir: 'packages/runtime', prepare: runtimeBundle },
  { dir: 'packages/network', prepare: () => removedAfter('/tmp/corral-network-demo') },
  { dir: 'packages/engine' },
  { dir: 'apps/cli' },
  // corrald's example starts it on a socket and data root in the project folder, pings it and stops it.
  { dir: 'apps/daemon' },
];

interface Packed {
  name: string;
  dir: string;
  tarball: string;
  /** The corral packages it needs, itself included, each once. */
  closure: string[];
}

const cleanup = new Cleanups();
let work = '';
const packed = new Map<string, Packed>();

beforeAll(async () => {
  work = cleanup.tempDir('packages');
  const tarballs = path.join(work, 'tarballs');
  mkdirSync(tarballs);
  const manifests = new Map<string, { dir: string; deps: string[] }>();
  for (const { dir } of PACKAGES) {
    const pkg = JSON.parse(readFileSync(path.join(repo, dir, 'package.json'), 'utf8'));
    const deps = Object.keys(pkg.dependencies ?? {}).filter(
      (d) => d === 'corral' || d.startsWith('@corral/'),
    );
    manifests.set(pkg.name, { dir, deps });
    const before = new Set(readdirSync(tarballs));
    await must('pnpm', ['pack', '--pack-destination', tarballs], { cwd: path.join(repo, dir) });
    const made = readdirSync(tarballs).filter((f) => !before.has(f));
    expect(made, `pnpm pack in ${dir}`).toHaveLength(1);
    packed.set(pkg.name, { name: pkg.name, dir, tarball: path.join(tarballs, made[0]!), closure: [] });
  }
  const closure = (name: string, seen = new Set<string>()): Set<string> => {
    if (seen.has(name)) return seen;
    seen.add(name);
    const m = manifests.get(name);
    if (!m) throw new Error(`${name} is a dependency but not among the packed packages`);
    for (const d of m.deps) closure(d, seen);
    return seen;
  };
  for (const p of packed.values()) p.closure = [...closure(p.name)];
});
afterAll(() => cleanup.run());

describe('packages as an npm user gets them', () => {
  for (const { dir, prepare } of PACKAGES) {
    it(`${dir}: the tarball holds the license, the sources its maps name, and what its README names`, async () => {
      const p = [...packed.values()].find((x) => x.dir === dir)!;
      const unpacked = path.join(work, 'unpacked', path.basename(p.tarball, '.tgz'));
      mkdirSync(unpacked, { recursive: true });
      await must('tar', ['-xzf', p.tarball, '-C', unpacked]);
      const root = path.join(unpacked, 'package');

      const license = readFileSync(path.join(root, 'LICENSE'), 'utf8');
      expect(license).toContain('Apache License');
      expect(license).toContain('Version 2.0, January 2004');
      expect(license).toContain('TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION');

      const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8'));
      expect(pkg.license).toBe('Apache-2.0');
      expect(pkg.os).toEqual(['linux']);
      expect(pkg.peerDependencies?.['@types/node'], 'the .d.ts files need @types/node').toBeTruthy();
      expect(JSON.stringify(pkg.dependencies ?? {})).not.toContain('workspace:');
      for (const dep of Object.keys(pkg.dependencies ?? {})) {
        if (dep.startsWith('@corral/'))
          expect(dep, 'a private package as a dependency').not.toBe('@corral/testkit');
      }

      for (const map of walk(root).filter((f) => f.endsWith('.map'))) {
        const { sources } = JSON.parse(readFileSync(map, 'utf8')) as { sources: string[] };
        for (const s of sources) {
          expect(
            existsSync(path.resolve(path.dirname(map), s)),
            `${path.relative(root, map)} names ${s}`,
          ).toBe(true);
        }
      }

      const readme = readFileSync(path.join(root, 'README.md'), 'utf8');
      expect(readme).not.toMatch(/pnpm (--filter|build)|DESIGN\.md/);
      for (const [, ref] of readme.matchAll(/`((?:src|test|dist|bin|scripts)\/[^`\s]*)`/g)) {
        expect(
          existsSync(path.join(root, ref!)),
          `README names ${ref}, which the package does not hold`,
        ).toBe(true);
      }
    });

    it(`${dir}: installs alone in a fresh folder and runs its README example`, async () => {
      const p = [...packed.values()].find((x) => x.dir === dir)!;
      const project = path.join(work, 'projects', path.basename(dir));
      mkdirSync(project, { recursive: true });
      const dependencies = Object.fromEntries(
        p.closure.map((name) => [name, `file:${packed.get(name)!.tarball}`]),
      );
      writeFileSync(
        path.join(project, 'package.json'),
        JSON.stringify({ name: 'fresh', private: true, type: 'module', dependencies }, null, 2),
      );
      await must('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error'], {
        cwd: project,
      });
      // Every corral package came from its tarball, none from the registry.
      const lock = JSON.parse(readFileSync(path.join(project, 'package-lock.json'), 'utf8'));
      for (const [where, entry] of Object.entries(lock.packages as Record<string, { resolved?: string }>)) {
        if (/node_modules\/(@corral\/[^/]+|corral)$/.test(where))
          expect(entry.resolved, where).toMatch(/^file:/);
      }

      prepare?.(project);
      const readme = readFileSync(path.join(repo, dir, 'README.md'), 'utf8');
      const data = path.join(project, 'data');
      const env = { ...process.env, CORRAL_ROOT: data };
      // A container on the default network leaves the root's bridge up while the root lives.
      onTestFinished(async () => {
        if (existsSync(path.join(data, 'network', 'networks')))
          await must(process.execPath, ['--', corralBin, '--root', data, 'network', 'down']);
      });
      const js = /```js\n([\s\S]*?)```/.exec(readme)?.[1];
      if (js) {
        writeFileSync(path.join(project, 'demo.mjs'), js);
        const r = await exec(process.execPath, ['demo.mjs'], { cwd: project, env });
        expect(r.status, `node demo.mjs in ${project}\n${r.stdout}\n${r.stderr}`).toBe(0);
        return;
      }
      // A command line: the first command of the README, whose comment is what it prints.
      const sh = /```sh\n([^\n]*)\n/.exec(readme)?.[1];
      expect(sh, `${dir}/README.md has an example (a js or sh block)`).toBeTruthy();
      const [command, expected] = sh!.split(/\s+#\s*/);
      const r = await exec('sh', ['-c', command!], {
        cwd: project,
        env: { ...env, PATH: `${path.join(project, 'node_modules/.bin')}:${process.env['PATH']}` },
      });
      expect(r.status, `${command}\n${r.stdout}\n${r.stderr}`).toBe(0);
      if (expected) expect(r.out).toBe(expected.trim());
    });
  }
});

/** Every file under `dir`. */
function walk(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = path.join(dir, n);
    return statSync(p).isDirectory() ? walk(p) : [p];
  });
}

/** The runtime's example runs `./bundle`: a busybox rootfs and a config.json that echoes. */
function runtimeBundle(project: string): void {
  const bundle = path.join(project, 'bundle');
  busyboxRootfs(path.join(bundle, 'rootfs'), 'proc', 'dev');
  const spec = {
    ociVersion: '1.2.0',
    process: {
      user: { uid: 0, gid: 0 },
      args: ['sh', '-c', 'echo hello from PID $$'],
      env: ['PATH=/bin'],
      cwd: '/',
    },
    root: { path: 'rootfs' },
    hostname: 'demo',
    mounts: [
      { destination: '/proc', type: 'proc', source: 'proc' },
      { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'mode=755'] },
    ],
    linux: { namespaces: [{ type: 'pid' }, { type: 'mount' }, { type: 'uts' }, { type: 'ipc' }] },
  };
  writeFileSync(path.join(bundle, 'config.json'), JSON.stringify(spec, null, 2));
  // The example keeps its state in /run/corral-demo.
  removedAfter('/run/corral-demo');
}

/** A folder an example makes outside the project: removed again when this test made it. */
function removedAfter(dir: string): void {
  if (!existsSync(dir)) cleanup.add(() => removeTree(dir));
}
