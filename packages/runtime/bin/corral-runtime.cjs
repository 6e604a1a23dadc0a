#!/bin/sh
true /*; unset NODE_EXTRA_CA_CERTS; exec node -- "$0" "$@"; */;
// Run as a shell script first (line 2 is `true;` for JavaScript): Node starts without
// NODE_EXTRA_CA_CERTS, whose file it would read and parse at start-up (about half of a Node
// start here), and a runtime makes no TLS connection (hooks and programs get the spec's env).
// Not an `env -S` line: package managers' shims (pnpm's) keep only its program.
// The bundle (scripts/bundle.mjs) when the build made one: CommonJS, one file per command, so
// that a Node start neither starts the ESM loader nor loads what the command does not use.
const { existsSync } = require('node:fs');
const { join } = require('node:path');

const bundled = join(__dirname, '../dist/bundle/main.cjs');
if (existsSync(bundled)) require(bundled);
else import('../dist/cli/main.js');
