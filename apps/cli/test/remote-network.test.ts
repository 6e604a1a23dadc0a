// `corral --host` network commands against a private corrald (its /networks endpoints): the
// same output and exit codes as daemonless on corrald's own data root.
import { Cleanups, corralBin, exec, type Result, runCorral } from '@corral/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Daemon, startDaemon } from '../../daemon/test/daemon.js';

const c = new Cleanups();
let d: Daemon;

beforeAll(async () => {
  d = await startDaemon(c);
});
afterAll(() => c.run());

const remote = (args: string[]) =>
  exec(process.execPath, ['--', corralBin, '--host', `unix://${d.socket}`, ...args]);
const local = (args: string[]) => runCorral(d.root, args);
const seen = (r: Result) => ({ status: r.status, stdout: r.stdout, stderr: r.stderr });
const same = async (args: string[]) => {
  const r = await remote(args);
  expect(seen(r), `corral ${args.join(' ')}`).toEqual(seen(await local(args)));
  return r;
};

describe('corral --host network', () => {
  it('creates, lists, inspects and removes a network as daemonless does', async () => {
    const made = await remote(['network', 'create', '--label', 'team=a', 'rnet']);
    expect(made.status, made.stderr).toBe(0);
    expect(made.out).toMatch(/^[0-9a-f]{64}$/);
    expect((await same(['network', 'ls', '--format', '{{.Name}} {{.Driver}} {{.Labels}}'])).stdout).toContain(
      'rnet bridge team=a\n',
    );
    await same(['network', 'ls']);
    await same(['network', 'inspect', 'rnet']);
    const run = await remote([
      'run',
      '--rm',
      '--network',
      'rnet',
      'busybox',
      'sh',
      '-c',
      'ip -4 -o addr show eth0 | wc -l',
    ]);
    expect(run.stdout).toBe('1\n');
    expect(seen(await remote(['network', 'rm', 'rnet']))).toEqual({
      status: 0,
      stdout: 'rnet\n',
      stderr: '',
    });
    const gone = await same(['network', 'rm', 'rnet']);
    expect(gone.status).toBe(1);
  });

  it('refuses network down, which acts on the daemon host, with 125', async () => {
    const r = await remote(['network', 'down']);
    expect(r.status).toBe(125);
    expect(r.stderr).toContain('corral network down is not supported with --host (remote mode)');
  });
});
