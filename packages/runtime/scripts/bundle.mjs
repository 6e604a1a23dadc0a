// Bundles what runs as a process of its own (the corral-runtime CLI, a container's init, the
// exec helper) into dist/bundle, after tsc. Each is a Node start on the path of a container
// (podman calls the runtime three or four times per container): one file per process, with the
// commands split into chunks that load only what they use, spares the module loader most of
// its work. corral's modules are side-effect free for the bundler, so that a command that
// never calls libc (state, list) never loads koffi. koffi stays external: its native module is
// found from this package (a dependency). pidns's supervisor is read as a file at run time
// (the --init supervisor runs it as source): it is copied beside the chunks.
import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, '..', 'dist');
const out = join(dist, 'bundle');
const require = createRequire(import.meta.url);

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });

const entries = {
  main: join(dist, 'cli/main.js'),
  init: join(dist, 'init.js'),
  'exec-init': join(dist, 'exec-init.js'),
};
const packages = dirname(dirname(here));

/**
 * Every module of corral's packages is side-effect free for the bundler except the entry
 * points: one is kept only when something it exports is used (none is imported for effect).
 * @type {import('esbuild').Plugin}
 */
const sideEffectFree = {
  name: 'corral-side-effect-free',
  setup(b) {
    b.onResolve({ filter: /.*/ }, async (args) => {
      if (args.pluginData?.again || args.kind === 'entry-point') return undefined;
      const r = await b.resolve(args.path, {
        kind: args.kind,
        resolveDir: args.resolveDir,
        importer: args.importer,
        pluginData: { again: true },
      });
      if (r.errors.length || r.external || !r.path.startsWith(packages)) return r;
      return { ...r, sideEffects: false };
    });
  },
};

// CommonJS: an ES module entry costs a Node start the ESM loader (about 30 ms of CPU here).
// import.meta.url (koffi's resolution, the scripts' paths) becomes the file's own URL.
const common = {
  bundle: true,
  format: 'cjs',
  platform: 'node',
  target: 'node20',
  external: ['koffi'],
  outExtension: { '.js': '.cjs' },
  define: { 'import.meta.url': '__corralModuleUrl' },
  banner: {
    js: [
      // biome-ignore lint/suspicious/noTemplateCurlyInString: the bundle's own code, a template literal in it
      'const __corralModuleUrl = `file://${__filename.split("/").map(encodeURIComponent).join("/")}`;',
      // A builtin loaded on first use (see lazyBuiltins).
      'const __corralLazy = (id) => { let m; return new Proxy({}, { get: (_, k) => (m ??= require(id))[k] }); };',
    ].join('\n'),
  },
  plugins: [sideEffectFree],
  logLevel: 'warning',
};
/**
 * child_process (with net, streams and more behind it) is loaded when first used: the init
 * needs it only for hooks and --init's supervisor, the exec helper never, and loading it is a
 * good part of their start.
 */
function lazyBuiltins(file, ids) {
  let s = readFileSync(file, 'utf8');
  for (const id of ids) {
    // `var x = require(...)` at the top, `x = require(...)` in a module initialised on first use.
    s = s.replace(new RegExp(`\\b(\\w+) = require\\("${id}"\\);`, 'g'), `$1 = __corralLazy("${id}");`);
  }
  writeFileSync(file, s);
}

// The init and the exec helper: one file each.
await build({
  ...common,
  entryPoints: { init: entries.init, 'exec-init': entries['exec-init'] },
  outdir: out,
});
for (const f of ['init.cjs', 'exec-init.cjs']) lazyBuiltins(join(out, f), ['node:child_process']);

// The CLI: its entry, which imports one command module when it runs, and each command module
// bundled on its own (a process runs one command: what they share is repeated, not split, so
// that state never loads what create needs).
const commands = ['early', 'create', 'lifecycle', 'state', 'exec', 'inspect', 'info'];
/**
 * start and delete (podman calls both for every container) seldom need the whole runtime:
 * lifecycle loads it from a chunk of its own when it does, so that its bundle stays small and
 * its modules are not made to initialise lazily (which runs every module of a package's index).
 * @type {import('esbuild').Plugin}
 */
const runtimeChunk = {
  name: 'corral-runtime-chunk',
  setup(b) {
    b.onResolve({ filter: /^\.\.\/runtime\.js$/ }, (args) =>
      args.kind === 'dynamic-import' && args.importer.endsWith('/cli/lifecycle.js')
        ? { path: './cmd-runtime.cjs', external: true }
        : undefined,
    );
  },
};
await build({
  ...common,
  entryPoints: {
    ...Object.fromEntries(commands.map((c) => [`cmd-${c}`, join(dist, 'cli', `${c}.js`)])),
    'cmd-runtime': join(dist, 'runtime.js'),
  },
  outdir: out,
  plugins: [runtimeChunk, sideEffectFree],
});
// Chunks are required, not imported: import() would start the ESM loader.
const requireChunks = (file) =>
  writeFileSync(
    file,
    readFileSync(file, 'utf8').replace(
      /import\("(\.\/cmd-[a-z]+\.cjs)"\)/g,
      'Promise.resolve().then(() => require("$1"))',
    ),
  );
requireChunks(join(out, 'cmd-lifecycle.cjs'));
// child_process (net and streams behind it) loads when a command first spawns: start and
// delete only for hooks.
for (const c of [...commands, 'runtime']) lazyBuiltins(join(out, `cmd-${c}.cjs`), ['node:child_process']);
/** @type {import('esbuild').Plugin} */
const commandModules = {
  name: 'corral-command-modules',
  setup(b) {
    const names = new RegExp(`^\\./(${commands.join('|')})\\.js$`);
    b.onResolve({ filter: names }, (args) =>
      args.kind === 'dynamic-import'
        ? { path: `./cmd-${names.exec(args.path)[1]}.cjs`, external: true }
        : undefined,
    );
  },
};
await build({
  ...common,
  entryPoints: { main: entries.main },
  outdir: out,
  plugins: [commandModules, sideEffectFree],
});
requireChunks(join(out, 'main.cjs'));

const pidnsDist = dirname(require.resolve('@corral/pidns'));
copyFileSync(join(pidnsDist, 'supervise.js'), join(out, 'supervise.js'));
