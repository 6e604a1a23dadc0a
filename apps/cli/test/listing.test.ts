import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Sandbox, until } from './helpers.js';

// ps filters and sizes, --format templates on real containers, logs --since/--until,
// container prune, system df and system prune.
const s = new Sandbox();
afterAll(() => s.teardown());

const ok = async (args: string[]) => {
  const r = await s.corral(args);
  if (r.status !== 0) throw new Error(`corral ${args.join(' ')}: ${r.status} ${r.stderr}`);
  return r;
};
const lines = async (args: string[]) => (await ok(args)).out.split('\n').filter(Boolean);

let webId = '';
beforeAll(async () => {
  webId = (
    await ok([
      'run',
      '-d',
      '--name',
      'web',
      '--label',
      'app=db',
      '--label',
      'tier=back',
      'busybox',
      'sleep',
      '600',
    ])
  ).out;
  await s.corral([
    'run',
    '--name',
    'three',
    'busybox',
    'sh',
    '-c',
    'head -c 10000 /dev/zero > /fill; exit 3',
  ]);
  await ok(['create', '--name', 'fresh', 'busybox', 'true']);
});

describe('ps', () => {
  it('filters by status, exited, name, id, label, ancestor, before and since', async () => {
    expect(await lines(['ps', '-f', 'status=exited', '--format', '{{.Names}}'])).toEqual(['three']);
    expect(await lines(['ps', '-f', 'status=created', '--format', '{{.Names}}'])).toEqual(['fresh']);
    expect(await lines(['ps', '-f', 'exited=3', '--format', '{{.Names}}'])).toEqual(['three']);
    expect(await lines(['ps', '-a', '-f', 'name=^thr', '--format', '{{.Names}}'])).toEqual(['three']);
    expect(await lines(['ps', '-f', `id=${webId.slice(0, 6)}`, '--format', '{{.Names}}'])).toEqual(['web']);
    expect(await lines(['ps', '-f', 'label=app=db', '-f', 'label=tier', '--format', '{{.Names}}'])).toEqual([
      'web',
    ]);
    expect(await lines(['ps', '-f', 'label=app=other', '--format', '{{.Names}}'])).toEqual([]);
    expect((await lines(['ps', '-a', '-f', 'ancestor=busybox', '--format', '{{.Names}}'])).sort()).toEqual([
      'fresh',
      'three',
      'web',
    ]);
    expect(await lines(['ps', '-a', '-f', 'before=three', '--format', '{{.Names}}'])).toEqual(['web']);
    expect(await lines(['ps', '-a', '-f', 'since=three', '--format', '{{.Names}}'])).toEqual(['fresh']);
    const bad = await s.corral(['ps', '-f', 'colour=red']);
    expect([bad.status, bad.stderr.trim()]).toEqual([1, "corral: invalid filter 'colour'"]);
    expect((await s.corral(['ps', '-f', 'status=sleeping'])).stderr).toContain(
      "invalid filter 'status=sleeping'",
    );
  });

  it('shows the last n (-n), the latest (-l), and sizes (-s)', async () => {
    expect(await lines(['ps', '-n', '2', '--format', '{{.Names}}'])).toEqual(['fresh', 'three']);
    expect(await lines(['ps', '-l', '--format', '{{.Names}}'])).toEqual(['fresh']);
    const sized = await lines(['ps', '-a', '-s']);
    expect(sized[0]).toMatch(/NAMES\s+SIZE$/);
    // three wrote 10000 bytes in its layer: ps -s reads the layer.
    expect(sized.find((l) => l.includes('three'))).toMatch(/three\s+10(\.\d)?kB \(virtual [\d.]+MB\)$/);
  });

  it('prints Go templates: table headers, json, .Label, unknown fields as errors', async () => {
    const t = await lines(['ps', '-a', '--format', 'table {{.Names}}\\t{{.State}}']);
    expect(t[0]).toBe('NAMES     STATE');
    expect(t.slice(1).sort()).toEqual(['fresh     created', 'three     exited', 'web       running']);
    const json = JSON.parse((await ok(['ps', '-f', 'name=web', '--format', '{{json .}}'])).out);
    expect(json).toMatchObject({
      Names: 'web',
      Image: 'busybox',
      State: 'running',
      Labels: 'app=db,tier=back',
    });
    expect((await ok(['ps', '--format', '{{.Label "tier"}}'])).out).toBe('back');
    const bad = await s.corral(['ps', '--format', '{{.Foo}}']);
    expect([bad.status, bad.stderr.trim()]).toEqual([
      1,
      'corral: template: :1:2: executing "" at <.Foo>: can\'t evaluate field Foo',
    ]);
  });
});

describe('--format on inspect, images, stats', () => {
  it('inspect -f reads nested fields, ranges, index and json of a container', async () => {
    const pid = Number((await ok(['inspect', '-f', '{{.State.Pid}}', 'web'])).out);
    expect(pid).toBeGreaterThan(1);
    expect((await ok(['inspect', '-f', '{{.State.Status}} {{.State.ExitCode}}', 'three'])).out).toBe(
      'exited 3',
    );
    expect((await ok(['inspect', '-f', '{{range .Config.Cmd}}[{{.}}]{{end}}', 'web'])).out).toBe(
      '[sleep][600]',
    );
    expect((await ok(['inspect', '-f', '{{index .Config.Labels "app"}} {{upper .Name}}', 'web'])).out).toBe(
      'db WEB',
    );
    expect(JSON.parse((await ok(['inspect', '-f', '{{json .State}}', 'web'])).out).pid).toBe(pid);
    // Docker's State.Running and State.Dead, which scripts test.
    const running = ['inspect', '-f', '{{.State.Running}} {{.State.Dead}}'];
    expect((await ok([...running, 'web'])).out).toBe('true false');
    expect((await ok([...running, 'three'])).out).toBe('false false');
  });

  it('images and stats take templates', async () => {
    expect((await ok(['images', '--format', '{{.Repository}}:{{.Tag}}'])).out).toBe('busybox:latest');
    const st = await lines(['stats', '--no-stream', '--format', 'table {{.Name}}\\t{{.PIDs}}', 'web']);
    expect(st).toEqual(['NAME      PIDS', 'web       1']);
  });
});

describe('logs --since and --until', () => {
  it('keeps the lines of a time window, given as RFC 3339 or relative', async () => {
    await ok([
      'run',
      '-d',
      '--name',
      'talker',
      'busybox',
      'sh',
      '-c',
      'echo early; sleep 2; echo late; sleep 600',
    ]);
    await until(async () => (await s.corral(['logs', 'talker'])).stdout.includes('late'), 'the late line');
    const all = (await ok(['logs', '-t', 'talker'])).stdout.split('\n').filter(Boolean);
    const lateAt = all[1].split(' ')[0];
    expect((await ok(['logs', '--since', lateAt, 'talker'])).stdout).toBe('late\n');
    expect(
      (await ok(['logs', '--until', new Date(Date.parse(lateAt) - 500).toISOString(), 'talker'])).stdout,
    ).toBe('early\n');
    expect((await ok(['logs', '--since', '10m', 'talker'])).stdout).toBe('early\nlate\n');
    expect((await ok(['logs', '--until', '10m', 'talker'])).stdout).toBe('');
    expect((await s.corral(['logs', '--since', 'yesterday-ish', 'talker'])).stderr).toContain('invalid time');
    await ok(['rm', '-f', 'talker']);
  });
});

describe('prune and df', () => {
  it('system df counts images, containers and their sizes', async () => {
    const rows = await lines(['system', 'df', '--format', '{{.Type}} {{.TotalCount}} {{.Active}}']);
    expect(rows).toEqual(['Images 1 1', 'Containers 3 1', 'Local Volumes 0 0', 'Build Cache 0 0']);
    expect((await ok(['system', 'df'])).out).toMatch(
      /^Containers\s+3\s+1\s+10\.\d?kB\s+10\.\d?kB \(\d+%\)$/m,
    );
  });

  it('container prune removes what is not running, keeps a label it is told to', async () => {
    await ok(['create', '--name', 'keepme', '--label', 'keep=1', 'busybox', 'true']);
    const r = await ok(['container', 'prune', '-f', '--filter', 'label!=keep']);
    expect(r.out).toMatch(
      /^Deleted Containers:\n[0-9a-f]{64}\n[0-9a-f]{64}\n\nTotal reclaimed space: 10(\.\d)?kB$/,
    );
    expect((await lines(['ps', '-a', '--format', '{{.Names}}'])).sort()).toEqual(['keepme', 'web']);
  });

  it('system prune takes stopped containers and unused networks; -a the unused images', async () => {
    await ok(['network', 'create', 'idle-net']);
    const r = await ok(['system', 'prune', '-f']);
    expect(r.out).toContain('Deleted Networks:\nidle-net');
    expect(r.out).toMatch(/Deleted Containers:\n[0-9a-f]{64}\n/);
    expect(await lines(['ps', '-a', '--format', '{{.Names}}'])).toEqual(['web']);
    // busybox is in use by web: -a keeps it.
    expect((await ok(['system', 'prune', '-f', '-a'])).out).not.toContain('Deleted Images');
    await ok(['rm', '-f', 'web']);
    expect((await ok(['system', 'prune', '-f', '-a'])).out).toMatch(
      /Deleted Images:\ndeleted: sha256:[0-9a-f]{64}/,
    );
    expect(await lines(['images', '-q'])).toEqual([]);
  });
});
