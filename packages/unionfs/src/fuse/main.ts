// Entry of the union server process that FuseUnionFs spawns: `node main.js CONFIG_JSON`, with
// fd 3 a pipe on which it writes one line, "ready" or "error MESSAGE", then closes.
import { closeSync, writeSync } from 'node:fs';
import { type ServerConfig, serveUnion } from './union/serve.js';

let reported = false;
function report(line: string): void {
  if (reported) return;
  reported = true;
  try {
    writeSync(3, `${line}\n`);
    closeSync(3);
  } catch {
    // The caller went away: nobody to tell.
  }
}

const config = JSON.parse(process.argv[2] ?? '{}') as ServerConfig;
serveUnion(config, () => report('ready')).then(
  () => process.exit(0),
  (e: Error) => {
    report(`error ${e.message.replace(/\n/g, ' ')}`);
    process.stderr.write(`corral-unionfs server: ${e.stack ?? e.message}\n`);
    process.exit(1);
  },
);
