// Escapes that corral-runtime's command line opens up, tried for real against a canary file:
// an init that create leaves parked (its caller gone) and, in a pod, a new member's init that
// the pod's running processes can see in their shared PID namespace while it holds the host's
// root on its other threads.
import { chmodSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { OciSpec } from '../dist/index.js';
import { corralRuntime } from './cli-helpers.js';
import { bundleMaker, busyboxRootfs, tempDir } from './helpers.js';

const tmp = tempDir('cli-escapes');
chmodSync(tmp, 0o755);
const rootfs = join(tmp, 'rootfs');
const canary = join(tmp, 'canary', 'secret');
const bundle = bundleMaker(tmp, rootfs);
const cr = corralRuntime(tmp, join(tmp, 'state'));

beforeAll(() => {
  busyboxRootfs(rootfs);
  mkdirSync(join(tmp, 'canary'), { mode: 0o755 });
  writeFileSync(canary, 'CANARY-CLI\n', { mode: 0o644 });
});
afterAll(() => {
  for (const c of JSON.parse(cr(['list', '--format', 'json']).stdout) ?? []) cr(['delete', '--force', c.id]);
  rmSync(tmp, { recursive: true, force: true });
});

/** Every way into another task's root that /proc offers, for every task in sight. */
const ATTACK = `for t in /proc/[0-9]*/task/[0-9]*; do
  cat $t/root${canary} $t/cwd${canary} 2>/dev/null
done; echo attack-done`;

/** Docker's default capabilities: root in the container, without CAP_SYS_PTRACE. */
const DOCKER_CAPS = [
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_FSETID',
  'CAP_FOWNER',
  'CAP_MKNOD',
  'CAP_NET_RAW',
  'CAP_SETGID',
  'CAP_SETUID',
  'CAP_SETFCAP',
  'CAP_SETPCAP',
  'CAP_NET_BIND_SERVICE',
  'CAP_SYS_CHROOT',
  'CAP_KILL',
  'CAP_AUDIT_WRITE',
];
const dockerCaps = (s: OciSpec) => {
  s.process.capabilities = { bounding: DOCKER_CAPS, effective: DOCKER_CAPS, permitted: DOCKER_CAPS };
};

describe('corral-runtime: inits out of reach', () => {
  it('a pod member’s parked init, seen in the shared PID namespace, is out of reach of the pod (root and a user)', () => {
    expect(cr(['run', '-d', '--bundle', bundle(['sleep', '1000'], dockerCaps), 'infra']).status).toBe(0);
    const infra = JSON.parse(cr(['state', 'infra']).stdout).pid;
    const member = bundle(['true'], (s: OciSpec) => {
      s.linux!.namespaces = s.linux!.namespaces!.map((n) =>
        n.type === 'pid' ? { type: 'pid' as const, path: `/proc/${infra}/ns/pid` } : n,
      );
    });
    // Parked: created, not started, and its creator has exited.
    expect(cr(['create', '--bundle', member, 'member']).status).toBe(0);
    expect(JSON.parse(cr(['state', 'member']).stdout).status).toBe('created');
    const seen = cr(['exec', 'infra', 'ps', '-o', 'pid,args']);
    expect(seen.stdout.split('\n').filter((l) => l.trim()).length).toBeGreaterThan(2); // the init is in sight
    for (const user of ['0:0', '65534:65534']) {
      const r = cr(['exec', '--user', user, 'infra', 'sh', '-c', ATTACK]);
      expect(r.stdout).not.toContain('CANARY');
      expect(r.stdout).toContain('attack-done');
    }
    expect(cr(['delete', 'member']).status).toBe(0);
    expect(cr(['delete', '--force', 'infra']).status).toBe(0);
  });
});
