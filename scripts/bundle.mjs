// Bundles a process's entry point (after tsc) into one CommonJS file, for a faster Node start
// (issue 15): one file read and no ESM loader instead of resolving and evaluating ~100 modules.
// Used by apps/cli (the corral command) and packages/engine (the watcher); the packages' own
// dist stays as it is for npm users. Generic on purpose: whatever an entry imports is followed,
// so new commands, flags or modules need nothing here.
//   node ../../scripts/bundle.mjs dist/main.js=dist/bundle/corral [more ENTRY=OUT pairs]
// writes dist/bundle/corral.cjs, which runs dist/bundle/corral.body.cjs through a V8 code cache
// (or one dist/bundle/corral.mjs when a module below the entry awaits at its top level, which
// CommonJS cannot have; it loads its builtins eagerly); entries that do not exist are skipped.
// - koffi stays external: its native module is found from @corral/sys, its dependency.
// - Every module keeps its own import.meta.url (the file it was built from, relative to the
//   bundle), so what a package finds beside itself (the runtime's init bundle, pidns's
//   supervisor, unionfs's workers) is found as from its dist; a process script beside it that
//   its package bundled (the engine's watcher) is started as that bundle.
// - corral's packages are side-effect free for the bundler (what nothing uses is dropped); an
//   app's own modules are not (the CLI imports early.js for its effect).
// - Builtins beyond fs/path/url and third-party CommonJS packages (tar-stream) load on first
//   use, so a command that never touches HTTP, child processes or archives never loads them.
// - A module that is import()ed is evaluated when the import() runs, not at start; one that the
//   same run bundled on its own (an entry listed before) is loaded from that bundle then, and
//   left out of this one: the engine's keeper reads 23 KB before it starts its init, not 360.
//   Only for modules that share no state with their importer (a class of one bundle is not the
//   same class in another).
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, transform } from 'esbuild';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const workspace = [join(repo, 'packages'), join(repo, 'apps')];
const libraries = `${join(repo, 'packages')}/`;
const ours = (p) => workspace.some((w) => p.startsWith(`${w}/`)) && !p.includes('/node_modules/');
/** A bundle this small compiles faster than a code cache is read: one file, no cache. */
const SMALL = 32 * 1024;
/** Builtins Node has loaded before any user code runs: nothing to gain by deferring them. */
const EAGER = new Set(['fs', 'path', 'url', 'process']);

/** @type {import('esbuild').Plugin} */
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
      if (r.errors.length || r.external || !r.path.startsWith(libraries)) return r;
      return { ...r, sideEffects: false };
    });
  },
};

/** import.meta.url of each of our modules: its built file, found relative to the bundle. */
function ownUrls(outdir, wrapEntry, bundled) {
  return {
    name: 'corral-own-urls',
    setup(b) {
      b.onLoad({ filter: /\.js$/ }, (args) => {
        if (!ours(args.path)) return undefined;
        let src = readFileSync(args.path, 'utf8');
        if (args.path === wrapEntry) src = withoutTopLevelAwait(src);
        // A module import()ed that this run bundled on its own (listed before): loaded from
        // that bundle when the import runs, so this bundle carries (and reads, at each start)
        // only what runs first.
        src = src.replace(/\bimport\((['"])(\.{1,2}\/[\w./-]+\.js)\1\)/g, (all, _q, spec) => {
          const out = bundled.get(resolve(dirname(args.path), spec));
          if (!out) return all;
          const at = `require("node:path").join(__dirname, ${JSON.stringify(relative(outdir, out))})`;
          // require: an import() of CommonJS would go through the ESM loader, and would not see
          // the exports of a bundle that its loader runs from a code cache.
          return out.endsWith('.cjs') ? `Promise.resolve().then(() => require(${at}))` : `import(${at})`;
        });
        if (!src.includes('import.meta.url')) return { contents: src, loader: 'js' };
        // A process script beside the module (`new URL('./keeper.js', import.meta.url)`) that its
        // package bundled is started as its bundle.
        src = src.replace(/new URL\((['"])\.\/([\w-]+)\.js\1, import\.meta\.url\)/g, (all, _q, name) => {
          const ext = ['cjs', 'mjs'].find((e) =>
            existsSync(join(dirname(args.path), 'bundle', `${name}.${e}`)),
          );
          return ext ? `new URL('./bundle/${name}.${ext}', import.meta.url)` : all;
        });
        const rel = JSON.stringify(relative(outdir, args.path));
        return { contents: src.replaceAll('import.meta.url', `__corralUrl(${rel})`), loader: 'js' };
      });
    },
  };
}

/**
 * An entry module whose top level awaits, as one that CommonJS can hold: its imports stay on
 * top, the rest runs in an async function called at once (a rejection still ends the process,
 * as an unhandled one). tsc writes each import on one line; an entry exports nothing.
 */
function withoutTopLevelAwait(src) {
  const lines = src.split('\n');
  const isImport = (l) => /^import\s.*['"][^'"]+['"];\s*$/.test(l);
  if (lines.some((l) => /^export\s/.test(l))) throw new Error('an entry point with exports');
  const head = lines.filter(isImport);
  const body = lines.filter((l) => !isImport(l));
  return `${head.join('\n')}\nvoid (async () => {\n${body.join('\n')}\n})();\n`;
}

const helpers = [
  'const __corralUrl = (rel) => require("node:url").pathToFileURL(require("node:path").join(__dirname, rel)).href;',
  // A builtin as an ES namespace: its properties through the prototype, `default` the module.
  'const __corralNs = (m) => Object.create(m, { default: { value: m } });',
  // A module loaded on its first use; `esm`: an import's default is the module itself.
  'const __corralLazy = (load, esm) => { let m; const get = () => (m ??= load()); return new Proxy({}, { get: (_, k) => (esm && k === "default" ? get() : get()[k]), has: (_, k) => k in get() }); };',
];
const banners = {
  cjs: ['"use strict";', ...helpers].join('\n'),
  // An ES module has neither require nor __dirname: made from its own URL.
  esm: [
    'import { createRequire as __corralCreateRequire } from "node:module";',
    'const require = __corralCreateRequire(import.meta.url);',
    'const __dirname = require("node:path").dirname(require("node:url").fileURLToPath(import.meta.url));',
    ...helpers,
  ].join('\n'),
};

/**
 * The file a process starts: it runs the bundle's code (`body`, beside it) as a CommonJS module
 * compiled from a V8 code cache, which spares most of the parse of a few hundred KB at every
 * start (about half of its compile, bench/cli). The first run of a command without a usable
 * cache (after a build, or with other V8 flags) writes one when it exits; the cache is named by
 * the code's size and time, since V8 checks it against the source's length only, and by the
 * command; a read-only install compiles each time.
 */
function loader(body) {
  return `"use strict";
// Made by scripts/bundle.mjs: runs ${body} through a V8 code cache kept beside it.
const { readFileSync, renameSync, statSync, writeFileSync } = require("node:fs");
const { join } = require("node:path");
// The loader's own class: the same as node:module's, which a script run from a file has not
// loaded (about 0.5 ms more).
const Module = module.constructor;
const { Script } = require("node:vm");
const file = join(__dirname, ${JSON.stringify(body)});
const source = readFileSync(file, "utf8");
const st = statSync(file);
// One cache per command (the first plain word of the command line: \`ps\`, \`run\`, a keeper's
// mode): each holds what its command compiled, so that \`ps\` does not read and deserialize
// all that \`run\` compiled (about twice the size) because a run came first after the build.
const word = process.argv.slice(2).find((a) => /^[a-z][a-z0-9-]{0,31}$/.test(a));
const cacheFile = \`\${file}.\${st.size}-\${Math.trunc(st.mtimeMs)}\${word ? \`.\${word}\` : ""}.cache\`;
let cachedData;
try {
  cachedData = readFileSync(cacheFile);
} catch {}
const script = new Script(Module.wrap(source), { filename: file, cachedData });
if (cachedData === undefined || script.cachedDataRejected)
  process.once("exit", () => {
    try {
      const tmp = \`\${cacheFile}.\${process.pid}\`;
      writeFileSync(tmp, script.createCachedData());
      renameSync(tmp, cacheFile);
    } catch {}
  });
const m = new Module(file, module);
m.filename = file;
m.paths = Module._nodeModulePaths(__dirname);
script.runInThisContext()(m.exports, Module.createRequire(file), m, file, __dirname);
module.exports = m.exports;
`;
}

/** Rewrites the bundle's eager requires of builtins and packages into lazy ones. */
function deferRequires(source) {
  const lazy = (v, esm, id) => {
    if (!EAGER.has(id)) return `${v} = __corralLazy(() => require("node:${id}"), ${Boolean(esm)});`;
    // `import * as fs`: esbuild's __toESM copies fs's hundred properties, once per module.
    return esm ? `${v} = __corralNs(require("node:${id}"));` : `${v} = require("node:${id}");`;
  };
  const builtin = /^(\s*)(var )?(\w+) = (__toESM\()?require\("(node:)?([\w/]+)"\)\)?;$/;
  const pkg = /^(\s*)(var )?(\w+) = __toESM\((require_\w+)\(\)\);$/;
  // Only the imports of ES modules as esbuild writes them: at the bundle's top level, or first
  // in the body of a module it evaluates lazily (`init_x = __esm({ "path"() { ... } })`, which
  // a module that something import()s, and all it imports, become). Inside a CommonJS package
  // a required value may be a class or function, which a proxy cannot stand for.
  const lines = source.split('\n');
  let prologue = false;
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i];
    if (/^var init_\w+ = __esm\(\{$/.test(l) && /^\s+"[^"]+"\(\) \{$/.test(lines[i + 1] ?? '')) {
      prologue = true;
      i++;
      continue;
    }
    const top = l.startsWith('var ');
    if (!top && !prologue) continue;
    const b = builtin.exec(l);
    const m = b ?? pkg.exec(l);
    if (!m || (top && !m[2]) || (!top && m[2])) {
      // A module's imports come first: its own code ends the prologue.
      if (!/^\s+init_\w+\(\);$/.test(l)) prologue = false;
      continue;
    }
    const [, indent, decl = ''] = m;
    lines[i] = `${indent}${decl}${b ? lazy(b[3], b[4], b[6]) : `${m[3]} = __corralLazy(${m[4]}, true);`}`;
  }
  return lines.join('\n');
}

/**
 * Bundles `entry` (a built .js) into `out` + `.cjs` (an entry that awaits at its top level is
 * wrapped); into `out` + `.mjs` when a module it imports awaits at its top level (CommonJS
 * cannot). Returns the file written.
 */
export async function bundleOne(entry, out) {
  const outdir = dirname(out);
  mkdirSync(outdir, { recursive: true });
  const options = (format, wrap) => ({
    entryPoints: [entry],
    metafile: analyze,
    outfile: `${out}.${format === 'cjs' ? 'cjs' : 'mjs'}`,
    bundle: true,
    format,
    platform: 'node',
    target: 'node20',
    external: ['koffi'],
    banner: { js: banners[format] },
    plugins: [sideEffectFree, ownUrls(outdir, wrap ? entry : undefined, bundled)],
    logLevel: 'silent',
    write: false,
  });
  const tla = (e) => e.errors?.some((x) => /top-level await/i.test(x.text));
  let r;
  let o = options('cjs');
  try {
    r = await build(o);
  } catch (e) {
    if (!tla(e)) throw e;
    // The entry's own top-level awaits can be wrapped; a module deeper down that awaits at its
    // top level leaves ESM as the only way.
    try {
      o = options('cjs', true);
      r = await build(o);
    } catch (e2) {
      if (!tla(e2)) throw e2;
      o = options('esm');
      r = await build(o);
    }
  }
  // An import that names nothing (a package's dist half rebuilt by a build running beside this
  // one) would become undefined at run time: no bundle rather than a broken one.
  const missing = r.warnings.filter((w) => w.id === 'import-is-undefined');
  if (missing.length)
    throw new Error(`bundle of ${entry}: ${missing.map((w) => `${w.location?.file}: ${w.text}`).join('; ')}`);
  const outfile = o.outfile;
  // Smaller to read and parse at every start (after the rewrites, which read esbuild's lines);
  // names are kept, so stack traces stay readable.
  const { code: text } = await transform(
    o.format === 'cjs' ? deferRequires(r.outputFiles[0].text) : r.outputFiles[0].text,
    { minifyWhitespace: true, minifySyntax: true, format: o.format, platform: 'node', target: 'node20' },
  );
  // In place at once (temp file, rename): a process of another build or test may start it now.
  const put = (file, data) => {
    const tmp = `${file}.${process.pid}.tmp`;
    writeFileSync(tmp, data);
    renameSync(tmp, file);
  };
  if (o.format === 'cjs' && text.length > SMALL) {
    // The code in OUT.body.cjs, run by a small OUT.cjs through a V8 code cache (see loader).
    put(`${out}.body.cjs`, text);
    put(outfile, loader(basename(`${out}.body.cjs`)));
  } else {
    put(outfile, text);
    rmSync(`${out}.body.cjs`, { force: true });
  }
  // Code caches of the code this replaces.
  for (const f of readdirSync(outdir))
    if (f.startsWith(`${basename(out)}.body.cjs.`) && f.endsWith('.cache'))
      rmSync(join(outdir, f), { force: true });
  rmSync(outfile.endsWith('.cjs') ? `${out}.mjs` : `${out}.cjs`, { force: true });
  // --analyze: the bytes each package adds, biggest first.
  if (r.metafile) {
    const by = new Map();
    for (const [k, v] of Object.entries(r.metafile.outputs[relative(process.cwd(), outfile)].inputs)) {
      const key = k
        .replace(/^.*?(packages|apps|node_modules\/\.pnpm)\//, '')
        .split('/')
        .slice(0, 3)
        .join('/');
      by.set(key, (by.get(key) ?? 0) + v.bytesInOutput);
    }
    for (const [k, v] of [...by].sort((a, b) => b[1] - a[1]).slice(0, 30))
      console.log(`${(v / 1024).toFixed(0).padStart(6)} KiB  ${k}`);
  }
  bundled.set(entry, outfile);
  return outfile;
}

const analyze = process.argv.includes('--analyze');
/** Entries bundled so far in this run (built file -> its bundle): see ownUrls. */
const bundled = new Map();
if (process.argv[1] === fileURLToPath(import.meta.url)) {
  for (const pair of process.argv.slice(2).filter((a) => a !== '--analyze')) {
    const [entry, out] = pair.split('=');
    // An entry the package does not have (yet, or any more: a dist file left by an older build
    // whose source is gone) is skipped: a package's build lists its processes.
    const source = entry.replace(/(^|\/)dist\//, '$1src/').replace(/\.js$/, '.ts');
    if (existsSync(entry) && (source === entry || existsSync(source)))
      await bundleOne(resolve(entry), resolve(out));
  }
}
