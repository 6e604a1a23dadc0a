import { Cleanups } from '@corral/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Daemon, startDaemon } from './daemon.js';

// docker top with ps options through corrald: the host's ps runs with them (as with dockerd)
// and only the container's processes are shown.
const c = new Cleanups();
let d: Daemon;
let pid1 = 0;
beforeAll(async () => {
  d = await startDaemon(c);
  const r = await d.docker([
    'run',
    '-d',
    '--name',
    'topped',
    '--network',
    'none',
    'busybox',
    'sh',
    '-c',
    'sleep 1300 & exec sleep 1301',
  ]);
  expect(r.status, r.stderr).toBe(0);
  pid1 = JSON.parse((await d.docker(['inspect', 'topped'])).stdout)[0].State.Pid;
});
afterAll(() => c.run());

const top = async (args: string[]) => {
  const r = await d.docker(['top', 'topped', ...args]);
  const lines = r.stdout.trim().split('\n');
  return { ...r, titles: lines[0]?.trim().split(/\s+/) ?? [], rows: lines.slice(1) };
};

describe('docker top through corrald', () => {
  it("defaults to -ef and lists only the container's processes", async () => {
    const t = await top([]);
    expect(t.status, t.stderr).toBe(0);
    expect(t.titles).toEqual(['UID', 'PID', 'PPID', 'C', 'STIME', 'TTY', 'TIME', 'CMD']);
    expect(t.rows.map((l) => l.trim().split(/\s+/).slice(7).join(' ')).sort()).toEqual([
      'sleep 1300',
      'sleep 1301',
    ]);
    expect(t.rows.some((l) => l.trim().split(/\s+/)[1] === String(pid1))).toBe(true);
  });

  it('takes BSD options (aux) and -o formats', async () => {
    const aux = await top(['aux']);
    expect(aux.status, aux.stderr).toBe(0);
    expect(aux.titles.slice(0, 2)).toEqual(['USER', 'PID']);
    expect(aux.titles.at(-1)).toBe('COMMAND');
    expect(aux.rows).toHaveLength(2);
    const o = await top(['-o', 'pid,comm']);
    expect(o.status, o.stderr).toBe(0);
    expect(o.titles).toEqual(['PID', 'COMMAND']);
    expect(o.rows.map((l) => l.trim().split(/\s+/)[1])).toEqual(['sleep', 'sleep']);
    expect(o.rows.map((l) => Number(l.trim().split(/\s+/)[0]))).toContain(pid1);
  });

  it('says why for options ps refuses or output without a PID column', async () => {
    const bogus = await top(['--bogus-option']);
    expect(bogus.status).toBe(1);
    expect(bogus.stderr).toMatch(/Error response from daemon: ps: .*(unknown|bogus)/i);
    const noPid = await top(['-o', 'comm']);
    expect(noPid.status).toBe(1);
    expect(noPid.stderr).toContain('no PID column');
    const renamed = await d.api(
      'GET',
      '/v1.47/containers/topped/top?ps_args=' + encodeURIComponent('-o pid,comm x=PID'),
    );
    expect(renamed.status).toBe(400);
    const hidden = await d.api(
      'GET',
      `/v1.47/containers/topped/top?ps_args=${encodeURIComponent('-o comm,x=PID')}`,
    );
    expect(hidden.status).toBe(400);
  });

  it('refuses a container that is not running (409)', async () => {
    await d.docker(['create', '--name', 'idle', 'busybox', 'true']);
    const r = await d.docker(['top', 'idle']);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('is not running');
  });
});
