#!/usr/bin/env node
// The bundle (../../scripts/bundle.mjs) when the build made one: one CommonJS file, so that a
// command neither starts the ESM loader nor loads the modules it does not use (issue 15).
// V8 compiles it from a code cache kept beside it (made by the first run after a build, made
// again when V8 refuses it: another Node), which spares most of its parse (bench/cli).
const { readFileSync, renameSync, statSync, writeFileSync } = require('node:fs');
const { dirname, join } = require('node:path');

const bundle = join(__dirname, '../dist/bundle/corral.cjs');
let source;
try {
  source = readFileSync(bundle, 'utf8');
} catch {
  import('../dist/main.js');
}
if (source !== undefined) {
  const Module = require('node:module');
  const { Script } = require('node:vm');
  // Named by the bundle's size and time: V8 checks a cache against the source's length only.
  const st = statSync(bundle);
  const cacheFile = `${bundle}.${st.size}-${Math.trunc(st.mtimeMs)}.cache`;
  let cachedData;
  try {
    cachedData = readFileSync(cacheFile);
  } catch {
    // none yet
  }
  const script = new Script(Module.wrap(source), { filename: bundle, cachedData });
  if (cachedData === undefined || script.cachedDataRejected) {
    // After the command: the cache then holds the functions it compiled too.
    process.once('exit', () => {
      try {
        const tmp = `${cacheFile}.${process.pid}`;
        writeFileSync(tmp, script.createCachedData());
        renameSync(tmp, cacheFile);
      } catch {
        // a read-only install: compiled each time
      }
    });
  }
  const m = new Module(bundle, module);
  m.filename = bundle;
  m.paths = Module._nodeModulePaths(dirname(bundle));
  script.runInThisContext()(m.exports, Module.createRequire(bundle), m, bundle, dirname(bundle));
}
