// A registry whose certificate only a private CA vouches for, that CA named by
// NODE_EXTRA_CA_CERTS alone: the corral bin run by its #! line, which starts Node without that
// variable (Node parses its file at every start) and hands the file to the registry client,
// logs in, pushes and pulls over verified TLS. Without the CA the same registry is refused, so
// TLS is really checked: its name resolves to 127.0.0.1 but is not one that corral takes for
// loopback (those may skip verification, as Docker's do).
import { execFileSync } from 'node:child_process';
import { lookup } from 'node:dns/promises';
import { readFileSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { corralBin, exec, removeTree, tempDir } from '@corral/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRegistry, type TestRegistry } from '../../../packages/image/test/registry-server.js';

/** A name of this machine (hosts file, host name) that resolves to 127.0.0.1 and is not `localhost`. */
async function localName(): Promise<string | undefined> {
  const hosts = readFileSync('/etc/hosts', 'utf8')
    .split('\n')
    .map((l) => l.replace(/#.*/, '').trim().split(/\s+/))
    .filter(([ip]) => ip === '127.0.0.1')
    .flatMap(([, ...names]) => names);
  for (const name of [...hosts, hostname()]) {
    if (!/^[a-z][a-z0-9-]*$/i.test(name) || /localhost$/i.test(name)) continue;
    const a = await lookup(name, { family: 4 }).catch(() => undefined);
    if (a?.address === '127.0.0.1') return name;
  }
  return undefined;
}

/** A CA (ca.pem) and a certificate for `name` that it signed (server.pem, server.key), in `dir`. */
function privateCa(dir: string, name: string): void {
  const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  openssl(
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-days',
    '2',
    '-subj',
    '/CN=corral test CA',
    '-keyout',
    'ca.key',
    '-out',
    'ca.pem',
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign',
  );
  openssl(
    'req',
    '-new',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-subj',
    `/CN=${name}`,
    '-keyout',
    'server.key',
    '-out',
    'server.csr',
  );
  writeFileSync(join(dir, 'ext.cnf'), `subjectAltName=DNS:${name}\nextendedKeyUsage=serverAuth\n`);
  openssl(
    'x509',
    '-req',
    '-in',
    'server.csr',
    '-CA',
    'ca.pem',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-days',
    '2',
    '-extfile',
    'ext.cnf',
    '-out',
    'server.pem',
  );
}

const dir = tempDir('cli-extra-ca');
const root = join(dir, 'root');
let name: string | undefined;
let registry: TestRegistry | undefined;

beforeAll(async () => {
  name = await localName();
  if (!name) return;
  privateCa(dir, name);
  registry = await startRegistry({
    name,
    tls: { certificate: join(dir, 'server.pem'), key: join(dir, 'server.key') },
    users: { tester: 'secret-pw' },
  });
});
afterAll(async () => {
  await registry?.stop();
  removeTree(dir);
});

/** The bin as a shell runs it (its #! line), with the CA in NODE_EXTRA_CA_CERTS or none. */
function corral(args: string[], ca: 'private CA' | 'none', input?: string) {
  const { NODE_EXTRA_CA_CERTS: _, ...env } = process.env;
  return exec(corralBin, ['--root', root, ...args], {
    input,
    env: {
      ...env,
      // login's credentials go to the test's folder, not ~/.docker.
      DOCKER_CONFIG: join(dir, 'docker'),
      ...(ca === 'private CA' ? { NODE_EXTRA_CA_CERTS: join(dir, 'ca.pem') } : {}),
    },
  });
}

describe('NODE_EXTRA_CA_CERTS with the corral bin', { timeout: 120_000 }, () => {
  it('is not read by Node at start-up: a file that is not there draws no warning', async () => {
    const { NODE_EXTRA_CA_CERTS: _, ...env } = process.env;
    const missing = join(dir, 'no-such-ca.pem');
    // Node itself warns ("Ignoring extra certs from ...") when it reads the variable.
    const node = await exec(process.execPath, ['-e', '0'], { env: { ...env, NODE_EXTRA_CA_CERTS: missing } });
    expect(node.stderr).toContain(missing);
    const r = await exec(corralBin, ['--root', root, 'ps'], {
      env: { ...env, NODE_EXTRA_CA_CERTS: missing },
    });
    expect([r.status, r.stderr]).toEqual([0, '']);
  });

  it('login, push and pull reach a registry that only the CA in it vouches for; without it they are refused', async (t) => {
    if (!name || !registry)
      return t.skip('no name of this machine other than localhost resolves to 127.0.0.1');
    const ref = `${registry.host}/corral/bb:1`;
    const refused = await corral(
      ['login', '-u', 'tester', '--password-stdin', registry.host],
      'none',
      'secret-pw\n',
    );
    expect([refused.status, refused.stderr]).toEqual([1, expect.stringMatching(/certificate/i)]);

    const login = await corral(
      ['login', '-u', 'tester', '--password-stdin', registry.host],
      'private CA',
      'secret-pw\n',
    );
    expect([login.status, login.stderr]).toEqual([0, '']);
    expect((await corral(['tag', 'busybox', ref], 'none')).status).toBe(0);
    const push = await corral(['push', ref], 'private CA');
    expect(push.status, push.stderr).toBe(0);
    expect(registry.requests).toContainEqual(expect.stringMatching(/^PUT \/v2\/corral\/bb\/manifests\/1$/));
    expect((await corral(['rmi', ref], 'none')).status).toBe(0);

    const noCa = await corral(['pull', ref], 'none');
    expect(noCa.status).not.toBe(0);
    expect(noCa.stderr).toMatch(/certificate/i);
    expect((await corral(['images'], 'none')).out).not.toContain('corral/bb');

    const pull = await corral(['pull', ref], 'private CA');
    expect(pull.status, pull.stderr).toBe(0);
    expect((await corral(['images'], 'none')).out).toContain(`${registry.host}/corral/bb`);
    const ran = await corral(['run', '--rm', '--network', 'none', ref, 'echo', 'pulled over TLS'], 'none');
    expect([ran.status, ran.stdout]).toEqual([0, 'pulled over TLS\n']);
  });
});
