#!/usr/bin/env -S -u NODE_EXTRA_CA_CERTS node
// Without NODE_EXTRA_CA_CERTS: Node would read and parse that bundle at start-up (about half of a
// Node start here), and a runtime makes no TLS connection (hooks and programs get their own env).
// The bundle (scripts/bundle.mjs) when the build made one: CommonJS, one file per command, so
// that a Node start neither starts the ESM loader nor loads what the command does not use.
const { existsSync } = require('node:fs');
const { join } = require('node:path');

const bundled = join(__dirname, '../dist/bundle/main.cjs');
if (existsSync(bundled)) require(bundled);
else import('../dist/cli/main.js');
