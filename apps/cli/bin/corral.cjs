#!/bin/sh
true /*; CORRAL_EXTRA_CA_CERTS="${NODE_EXTRA_CA_CERTS-}"; export CORRAL_EXTRA_CA_CERTS; unset NODE_EXTRA_CA_CERTS; exec node -- "$0" "$@"; */;
// Run as a shell script first (line 2 is `true;` for JavaScript): it starts Node without
// NODE_EXTRA_CA_CERTS, whose file Node would parse at start-up (about 40 ms of every command
// here, where it names the system's whole CA bundle), and hands its value on as
// CORRAL_EXTRA_CA_CERTS: put back at once for the programs corral starts, and the registry
// client adds the file's certificates to Node's own (the only TLS corral speaks). Not an
// `env -S` line: package managers' shims (pnpm's) keep only its program, `-S node --`. The
// shell's own unset and export, not env(1): one exec less before Node.
// The bundle (../../scripts/bundle.mjs) when the build made one: one CommonJS file, compiled
// from a V8 code cache beside it, so that a command neither starts the ESM loader nor loads the
// modules it does not use (issue 15); the package's dist otherwise. The npm package ships no
// bundle (package.json files): it reaches the other packages by this workspace's folders.
// The early bundle first: for `run` it spawns the container's keeper before the CLI's bundle
// loads (src/early.ts).
const { existsSync, readFileSync, writeSync } = require('node:fs');
const { join } = require('node:path');

const extraCa = process.env.CORRAL_EXTRA_CA_CERTS;
if (extraCa !== undefined) {
  delete process.env.CORRAL_EXTRA_CA_CERTS;
  if (extraCa) {
    process.env.NODE_EXTRA_CA_CERTS = extraCa;
    // Read by the CLI (src/commands/common.ts): this process did not load the file.
    globalThis[Symbol.for('corral.cli.extraCaFile')] = extraCa;
  }
}

/**
 * `corral`, `corral --help` and `corral help` (after a --root DIR) print the usage, which the
 * build wrote from the CLI itself (dist/bundle/usage.txt): the exit code then, else null.
 */
function usageOnly(args) {
  let i = 0;
  if (args[0] === '--root' && args.length > 1) i = 2;
  else if (args[0]?.startsWith('--root=') && args[0].length > '--root='.length) i = 1;
  const rest = args.slice(i);
  if (rest.length === 0) return 1;
  return rest.length === 1 && (rest[0] === '--help' || rest[0] === 'help') ? 0 : null;
}

/**
 * The command's name, found as the CLI finds it (src/cli.ts): after the global flags; and
 * whether it goes to corrald: a --host (-H), or CORRAL_HOST without a --root.
 */
function commandOf(args) {
  let i = 0;
  let host = false;
  let root = false;
  for (;;) {
    const a = args[i];
    if (a?.startsWith('--root') || a?.startsWith('--host') || a === '-H') {
      if (a.startsWith('--root')) root = true;
      else host = true;
      i += a.includes('=') ? 1 : 2;
    } else if (/^--(iptables|ip-forward|ip-masq)(=|$)/.test(a ?? '')) i += 1;
    else return { name: a, remote: host || (!root && !!process.env.CORRAL_HOST) };
  }
}

/**
 * Writes the usage to fd 1 directly: process.stdout would load Node's streams (about 2 ms) for
 * a 3 KB write. A non-blocking pipe that is full takes the rest through process.stdout; a
 * reader that is gone takes nothing.
 */
function printUsage(data) {
  let off = 0;
  try {
    while (off < data.length) off += writeSync(1, data, off);
  } catch (e) {
    if (e.code === 'EAGAIN') process.stdout.write(data.subarray(off));
    else if (e.code !== 'EPIPE') throw e;
  }
}

/** Commands with a bundle of their own (src/entries): the CLI with that command alone. */
const QUICK = { ps: 'ps', images: 'images', version: 'version', '--version': 'version', '-v': 'version' };
/** Commands that corrald runs (src/entries/host.ts): with a host, no engine code is loaded. */
const HOST = new Set([
  'run',
  'create',
  'start',
  'stop',
  'kill',
  'rm',
  'logs',
  'exec',
  'wait',
  'restart',
  'pause',
  'unpause',
  'rename',
]);

const args = process.argv.slice(2);
const bundle = (name) => join(__dirname, `../dist/bundle/${name}.cjs`);
const usage = join(__dirname, '../dist/bundle/usage.txt');
const usageCode = usageOnly(args);
const { name, remote } = commandOf(args);
const quick =
  (Object.hasOwn(QUICK, name ?? '') && bundle(QUICK[name])) || (remote && HOST.has(name) && bundle('host'));
if (usageCode !== null && existsSync(usage)) {
  printUsage(readFileSync(usage));
  process.exitCode = usageCode;
} else if (quick && existsSync(quick)) {
  require(quick);
} else if (existsSync(bundle('corral'))) {
  // Only a run or a start spawns a keeper ahead (the CLI's bundle holds early.ts too, which
  // finds nothing to do for other commands).
  if ((name === 'run' || name === 'start') && existsSync(bundle('early'))) require(bundle('early'));
  require(bundle('corral'));
} else import('../dist/main.js');
