// The CVE-2019-5736 class of attack, for the tests of every path that builds a container in a
// process sharing a host binary's memory (the runtime's and the keeper's vfork child): until
// that child execs, /proc/self/exe is the host's node, so a program `#!/proc/self/exe`, or a
// link to it, would run that node inside the container and write to it.
import { existsSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Plants both attacks in `rootfs` (/evil, /evil-link) and returns the commands that run them
 * and a check of the proof the payload leaves when node ran inside (/result). The payload's
 * write to /proc/self/exe fails with ETXTBSY while the host's node runs; the classic attack
 * keeps an O_PATH fd for later: a test compares its canary copy of node, too.
 */
export function plantSelfExeAttack(rootfs: string): { commands: string[][]; nodeRanInside(): boolean } {
  const payload = [
    '#!/proc/self/exe',
    "const fs = require('fs');",
    "fs.writeFileSync('/result', 'node ran inside');",
    "fs.writeFileSync('/proc/self/exe', 'pwned');",
  ].join('\n');
  writeFileSync(join(rootfs, 'evil'), payload, { mode: 0o755 });
  symlinkSync('/proc/self/exe', join(rootfs, 'evil-link'));
  return {
    commands: [['/evil'], ['/evil-link', '-e', "require('fs').writeFileSync('/proc/self/exe', 'pwned')"]],
    nodeRanInside: () => existsSync(join(rootfs, 'result')),
  };
}
