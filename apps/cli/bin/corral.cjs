#!/usr/bin/env -S node --
// The bundle (../../scripts/bundle.mjs) when the build made one: one CommonJS file, compiled
// from a V8 code cache beside it, so that a command neither starts the ESM loader nor loads the
// modules it does not use (issue 15); the package's dist otherwise. The npm package ships no
// bundle (package.json files): it reaches the other packages by this workspace's folders.
// The early bundle first: for `run` it spawns the container's keeper before the CLI's bundle
// loads (src/early.ts).
const { existsSync } = require('node:fs');
const { join } = require('node:path');

const bundled = join(__dirname, '../dist/bundle/corral.cjs');
if (existsSync(bundled)) {
  const early = join(__dirname, '../dist/bundle/early.cjs');
  if (existsSync(early)) require(early);
  require(bundled);
} else import('../dist/main.js');
