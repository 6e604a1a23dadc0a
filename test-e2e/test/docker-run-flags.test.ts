// The same `docker run` lines with --ulimit, --env-file and the other run settings, through the
// docker CLI at Debian's dockerd and through corral: the same observable results inside the
// container, and bad input refused by both (corral naming the flag).
import { promises as fs, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type PrivateDockerd, startPrivateDockerd } from './dockerd.js';
import { Corral, mountsUnder, type Result, tempRoot, until } from './helpers.js';

let tmp = '';
let dockerd: PrivateDockerd | undefined;
let corral: Corral;
let envFile = '';

beforeAll(async () => {
  tmp = await tempRoot('docker-run-flags');
  dockerd = await startPrivateDockerd(path.join(tmp, 'dockerd'));
  // Both clients read a bare name of an env-file from their own environment.
  dockerd.env.FROM_CALLER = 'caller value';
  delete dockerd.env.NOT_SET_ANYWHERE;
  const env: NodeJS.ProcessEnv = { ...dockerd.env };
  corral = new Corral(path.join(tmp, 'corral'), env);
  const archive = path.join(tmp, 'busybox.tar');
  await corral.must(['save', '-o', archive, 'busybox']);
  const loaded = await dockerd.docker(['load', '-i', archive]);
  expect(loaded.status, loaded.stderr).toBe(0);
  envFile = path.join(tmp, 'app.env');
  writeFileSync(
    envFile,
    [
      'A=from file',
      '# a comment',
      '',
      '  B=two words',
      'FROM_CALLER',
      'NOT_SET_ANYWHERE',
      'Q="quoted"',
      'E=',
    ].join('\n'),
  );
}, 180_000);

afterAll(async () => {
  await corral?.removeContainers().catch(() => {});
  await dockerd?.stop();
  if (tmp && !mountsUnder(tmp).length) await fs.rm(tmp, { recursive: true, force: true });
}, 120_000);

/** One `run` line through both: [docker's result, corral's]. */
async function both(args: string[]): Promise<[Result, Result]> {
  return [
    await dockerd!.docker(['run', '--network', 'none', ...args]),
    await corral.run(['run', '--network', 'none', ...args]),
  ];
}

async function same(args: string[]): Promise<string> {
  const [d, c] = await both(args);
  expect(d.status, `docker: ${d.stderr}`).toBe(0);
  expect(c.status, `corral: ${c.stderr}`).toBe(0);
  expect(c.stdout).toBe(d.stdout);
  return c.stdout;
}

describe('docker run and corral run, side by side', () => {
  it('--ulimit: the soft and hard limits the program sees', async () => {
    const out = await same([
      '--rm',
      '--ulimit',
      'nofile=1000:2000',
      '--ulimit',
      'core=-1',
      '--ulimit',
      'nproc=500:600',
      '--ulimit',
      'stack=4194304',
      'busybox',
      'sh',
      '-c',
      'ulimit -n; ulimit -Hn; ulimit -c; ulimit -u; ulimit -Hu; ulimit -s',
    ]);
    expect(out).toBe('1000\n2000\nunlimited\n500\n600\n4096\n');
  });

  it("--ulimit: an exec gets the container's hard limit too", async () => {
    const outs: string[] = [];
    for (const run of [(a: string[]) => dockerd!.docker(a), (a: string[]) => corral.run(a)]) {
      const made = await run([
        'run',
        '-d',
        '--name',
        'ul',
        '--network',
        'none',
        '--ulimit',
        'nofile=1000:2000',
        'busybox',
        'sleep',
        '60',
      ]);
      expect(made.status, made.stderr).toBe(0);
      const r = await run(['exec', 'ul', 'sh', '-c', 'ulimit -n; ulimit -Hn']);
      outs.push(r.stdout);
      await run(['rm', '-f', 'ul']);
    }
    // The hard limit is the container's in both. (dockerd's exec has the soft limit of open
    // files at the container's or, now and then, at the hard one: runc's Go start-up raises it;
    // corral's exec keeps the container's.)
    const [dockerSoft, dockerHard] = outs[0].split('\n');
    expect(dockerHard).toBe('2000');
    expect(['1000', '2000']).toContain(dockerSoft);
    expect(outs[1]).toBe('1000\n2000\n');
  });

  it("--env-file: comments, blanks, a bare name from the client's environment, -e over the file", async () => {
    const out = await same([
      '--rm',
      '--env-file',
      envFile,
      '-e',
      'A=from -e',
      'busybox',
      'sh',
      '-c',
      // biome-ignore lint/suspicious/noTemplateCurlyInString: a shell's ${VAR-default}, not JavaScript's
      'echo "$A|$B|$FROM_CALLER|${NOT_SET_ANYWHERE-unset}|$Q|${E-unset}"',
    ]);
    expect(out).toBe('from -e|two words|caller value|unset|"quoted"|\n');
  });

  it('--shm-size, --sysctl, --oom-score-adj, --group-add, --label', async () => {
    await same([
      '--rm',
      '--shm-size',
      '128m',
      '--sysctl',
      'kernel.shmmax=123456',
      '--sysctl',
      'net.ipv4.ip_forward=1',
      '--oom-score-adj',
      '300',
      '--group-add',
      '4242',
      '-u',
      'nobody',
      '-l',
      'a=b',
      'busybox',
      'sh',
      '-c',
      "df -k /dev/shm | tail -1 | awk '{print $2}'; cat /proc/sys/kernel/shmmax /proc/sys/net/ipv4/ip_forward /proc/self/oom_score_adj; id",
    ]);
  });

  it("an image's HEALTHCHECK (docker build, docker save, corral load) turns the container unhealthy in both; --no-healthcheck drops it", async () => {
    const ctx = path.join(tmp, 'hc');
    await fs.mkdir(ctx, { recursive: true });
    writeFileSync(
      path.join(ctx, 'Dockerfile'),
      'FROM busybox:latest\nHEALTHCHECK --interval=1s --retries=1 CMD false\n',
    );
    const built = await dockerd!.docker(['build', '-q', '-t', 'e2e/hc:1', ctx]);
    expect(built.status, built.stderr).toBe(0);
    const archive = path.join(tmp, 'hc.tar');
    expect((await dockerd!.docker(['save', '-o', archive, 'e2e/hc:1'])).status).toBe(0);
    await corral.must(['load', '-i', archive]);
    expect((await dockerd!.docker(['run', '-d', '--name', 'hc', 'e2e/hc:1', 'sleep', '60'])).status).toBe(0);
    await corral.must(['run', '-d', '--name', 'hc', 'e2e/hc:1', 'sleep', '60']);
    const dockerPs = async () =>
      (await dockerd!.docker(['ps', '--filter', 'name=hc', '--format', '{{.Status}}'])).stdout;
    await until(async () => (await dockerPs()).includes('(unhealthy)'), 'docker: unhealthy', 30_000);
    await until(
      async () => / \(unhealthy\) .* hc\n/.test((await corral.run(['ps'])).stdout),
      'corral: unhealthy',
      30_000,
    );
    const none = (await corral.must(['create', '--no-healthcheck', 'e2e/hc:1', 'true'])).out;
    expect(JSON.parse((await corral.must(['inspect', none])).stdout)[0].config.healthcheck).toBeUndefined();
    await dockerd!.docker(['rm', '-f', 'hc']);
    await corral.must(['rm', '-f', 'hc', none]);
  });

  it('--restart on-failure:2: a failing program runs three times in all, then stays exited with its code', async () => {
    const name = 'restart-twice';
    const args = [
      '-d',
      '--name',
      name,
      '--restart',
      'on-failure:2',
      'busybox',
      'sh',
      '-c',
      'echo ran; exit 3',
    ];
    const [d, c] = await both(args);
    expect(d.status, `docker: ${d.stderr}`).toBe(0);
    expect(c.status, `corral: ${c.stderr}`).toBe(0);
    // Each engine's wait returns at the first exit: poll until the policy has run out.
    const settled = async (run: (a: string[]) => Promise<Result>) => {
      let r: Result | undefined;
      await until(async () => {
        r = await run(['inspect', '-f', '{{.RestartCount}} {{.State.Status}} {{.State.ExitCode}}', name]);
        return r.status === 0 && r.stdout.trim() === '2 exited 3';
      }, 'the restart policy to run out');
      return r!.stdout.trim();
    };
    expect(await settled((a) => dockerd!.docker(a))).toBe('2 exited 3');
    expect(await settled((a) => corral.run(a))).toBe('2 exited 3');
    const logs = await Promise.all([dockerd!.docker(['logs', name]), corral.run(['logs', name])]);
    expect(logs.map((l) => l.stdout.trim())).toEqual(['ran\nran\nran', 'ran\nran\nran']);
    await dockerd!.docker(['rm', '-f', name]);
    await corral.run(['rm', '-f', name]);
  });

  it("bad input: an unknown ulimit, soft above hard, a hard limit above the caller's, a missing env-file", async () => {
    for (const args of [
      ['--ulimit', 'nofiles=10'],
      ['--ulimit', 'nofile=20:10'],
      ['--env-file', path.join(tmp, 'missing.env')],
    ]) {
      const [d, c] = await both(['--rm', ...args, 'busybox', 'true']);
      expect(d.status, `docker ${args.join(' ')}`).toBe(125);
      expect(c.status, `corral ${args.join(' ')}`).toBe(125);
      expect(c.stderr).toContain(args[0]);
    }
    // Above our own hard limit: dockerd's runc fails setting it (no CAP_SYS_RESOURCE here),
    // corral refuses before anything is made.
    const [d, c] = await both(['--rm', '--ulimit', 'nofile=1048576:1048576', 'busybox', 'true']);
    expect(d.status).not.toBe(0);
    expect(c.status).toBe(125);
    expect(c.stderr).toContain('--ulimit nofile');
    expect((await corral.run(['ps', '-aq'])).out).toBe('');
  });
});
