// --security-opt seccomp as Docker's two front doors write it: the command line names a file
// (the docker CLI reads it), the Engine API carries the profile inline as JSON (and a daemon
// must never open a path an API client names). Each form runs a real container under the
// profile; unconfined runs one with no filter at all.
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Cleanups, unmountUnder } from '@corral/testkit';
import { afterAll, describe, expect, it } from 'vitest';
import { type CreateContainerOptions, parseSecurityOpts } from '../src/create.js';
import { Engine } from '../src/engine.js';

const cleanups = new Cleanups();
const root = cleanups.tempDir('engine-seccomp-opts');
const files = cleanups.tempDir('engine-seccomp-files');
cleanups.add(() => unmountUnder(root));
cleanups.add(async () => {
  if (existsSync(join(root, 'network', 'networks'))) await (await Engine.open({ root })).networks.down();
});
afterAll(() => cleanups.run());

const DENY_MKDIR = JSON.stringify({
  defaultAction: 'SCMP_ACT_ALLOW',
  syscalls: [{ names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_ERRNO' }],
});

async function text(stream: NodeJS.ReadableStream | null): Promise<string> {
  let s = '';
  for await (const c of stream ?? []) s += c.toString();
  return s;
}

/** Runs `sh -c script` in a fresh --rm busybox container: [stdout + stderr, exit code]. */
async function run(options: Partial<CreateContainerOptions>, script: string): Promise<[string, number]> {
  const engine = await Engine.open({ root });
  const h = await engine.run(
    { image: 'busybox', cmd: ['sh', '-c', script], autoRemove: true, network: 'none', ...options },
    { stdout: 'pipe', stderr: 'pipe' },
  );
  const [out, err, code] = await Promise.all([text(h.stdout), text(h.stderr), h.wait()]);
  return [out + err, code];
}

const containers = () => readdirSync(join(root, 'containers'));

describe('seccomp profiles from the command line and from the API', () => {
  it('takes the API form: the profile inline as JSON in securityOpt', async () => {
    expect(parseSecurityOpts([`seccomp=${DENY_MKDIR}`])).toEqual({ seccomp: { profile: DENY_MKDIR } });
    const [out, code] = await run({ securityOpt: [`seccomp=${DENY_MKDIR}`] }, 'mkdir /x; echo mkdir=$?');
    expect([out, code]).toEqual([expect.stringContaining('Operation not permitted'), 0]);
    expect(out).toContain('mkdir=1');
    // The engine option takes the same profile as text or as an object.
    const [objOut] = await run({ seccomp: { profile: JSON.parse(DENY_MKDIR) } }, 'mkdir /x; echo mkdir=$?');
    expect(objOut).toContain('mkdir=1');
  });

  it('takes the command-line form: a file, relative to this process, read at create', async () => {
    const file = join(files, 'deny-mkdir.json');
    writeFileSync(file, DENY_MKDIR);
    const parsed = parseSecurityOpts([`seccomp=${file}`], 'cli');
    expect(parsed).toEqual({ seccomp: { file } });
    const [out] = await run(parsed, 'mkdir /x; echo mkdir=$?');
    expect(out).toContain('mkdir=1');
    const cwd = process.cwd();
    process.chdir(files);
    try {
      expect(parseSecurityOpts(['seccomp=deny-mkdir.json'], 'cli')).toEqual({ seccomp: { file } });
    } finally {
      process.chdir(cwd);
    }
  });

  it('never opens a file that an API SecurityOpt names (a canary profile and a canary secret)', async () => {
    // Were the path read, this valid profile would be taken and the create would succeed.
    const profile = join(files, 'canary-profile.json');
    writeFileSync(profile, DENY_MKDIR);
    const secret = join(files, 'canary-secret');
    writeFileSync(secret, 'CANARY-7f3a not json');
    const engine = await Engine.open({ root });
    for (const path of [profile, secret]) {
      const made = engine.create({ image: 'busybox', cmd: ['true'], securityOpt: [`seccomp=${path}`] });
      await expect(made).rejects.toMatchObject({
        kind: 'InvalidArgument',
        message: expect.stringContaining('must be inline JSON'),
      });
      await made.catch((e: Error) => expect(e.message).not.toContain('CANARY'));
    }
    expect(containers()).toEqual([]);
    // The inline form's own errors name the inline profile, not a file.
    await expect(
      engine.create({ image: 'busybox', cmd: ['true'], securityOpt: ['seccomp={"defaultAction": 3}'] }),
    ).rejects.toMatchObject({
      kind: 'InvalidArgument',
      message: expect.stringContaining('seccomp profile (inline)'),
    });
    expect(containers()).toEqual([]);
    expect(readFileSync(secret, 'utf8')).toBe('CANARY-7f3a not json');
  });

  it('runs with no filter at all for seccomp=unconfined, in both forms, and the default otherwise', async () => {
    expect(parseSecurityOpts(['seccomp=unconfined'], 'cli')).toEqual({ seccomp: 'unconfined' });
    expect(parseSecurityOpts(['seccomp=builtin'])).toEqual({ seccomp: 'default' });
    const status = 'grep ^Seccomp: /proc/self/status';
    expect((await run({ securityOpt: ['seccomp=unconfined'] }, status))[0]).toMatch(/^Seccomp:\s+0$/m);
    expect((await run({}, status))[0]).toMatch(/^Seccomp:\s+2$/m);
  });
});
