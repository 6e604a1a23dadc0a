// The run settings' parsing and checks (run-options.ts, health.ts) and the json-file log's
// rotation with a follower reading across it (logs.ts). What they do to a container is tested
// from inside real containers in apps/cli/test/run-settings.test.ts.
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { Cleanups, until } from '@corral/testkit';
import { afterEach, describe, expect, it } from 'vitest';
import { parseDuration, resolveHealthcheck } from '../src/health.js';
import { type LogEntry, LogWriter, readLogs } from '../src/logs.js';
import {
  checkRunSettings,
  labelMatcher,
  parseDevice,
  parseUlimit,
  readKeyValueFile,
} from '../src/run-options.js';

const cleanups = new Cleanups();
afterEach(() => cleanups.run());

describe('flag strings', () => {
  it("parses Docker's --ulimit and --device forms", () => {
    expect(parseUlimit('nofile=1024:2048')).toEqual({ name: 'nofile', soft: 1024, hard: 2048 });
    expect(parseUlimit('core=-1')).toEqual({ name: 'core', soft: -1, hard: -1 });
    expect(() => parseUlimit('nofile')).toThrow(/--ulimit nofile/);
    expect(() => parseUlimit('nofile=1:x')).toThrow(/--ulimit/);
    expect(parseDevice('/dev/fuse')).toEqual({
      pathOnHost: '/dev/fuse',
      pathInContainer: '/dev/fuse',
      cgroupPermissions: 'rwm',
    });
    expect(parseDevice('/dev/fuse:r')).toEqual({
      pathOnHost: '/dev/fuse',
      pathInContainer: '/dev/fuse',
      cgroupPermissions: 'r',
    });
    expect(parseDevice('/dev/sda:/dev/xvda:rw')).toEqual({
      pathOnHost: '/dev/sda',
      pathInContainer: '/dev/xvda',
      cgroupPermissions: 'rw',
    });
    expect(() => parseDevice('a:b:c:d')).toThrow(/--device/);
  });

  it('reads env and label files as Docker does', () => {
    const file = join(cleanups.tempDir('run-options'), 'f');
    writeFileSync(file, '\uFEFFA=1\r\n# x\n\n\t B= spaced \nBARE\nMISSING\n');
    // A byte-order mark is dropped, as Docker drops it.
    expect(readKeyValueFile(file, '--env-file', (k) => (k === 'BARE' ? 'v' : undefined))).toEqual([
      'A=1',
      'B= spaced ',
      'BARE=v',
    ]);
    expect(readKeyValueFile(file, '--label-file')).toContain('MISSING');
    writeFileSync(file, '=nokey\n');
    expect(() => readKeyValueFile(file, '--env-file')).toThrow(/--env-file .*no variable name/);
  });

  it('matches labels by key and by key=value, all filters at once', () => {
    const m = labelMatcher(['a', 'b=2']);
    expect(m({ a: '', b: '2' })).toBe(true);
    expect(m({ a: 'x', b: '3' })).toBe(false);
    expect(m({ b: '2' })).toBe(false);
    expect(labelMatcher([])({})).toBe(true);
    expect(labelMatcher(['k=v=w'])({ k: 'v=w' })).toBe(true);
  });
});

describe('checks before anything is made', () => {
  it('refuses what a container cannot be given, naming the flag', () => {
    const bad = (s: Parameters<typeof checkRunSettings>[0], flag: RegExp, mode = 'bridge') =>
      expect(() => checkRunSettings(s, mode)).toThrow(flag);
    bad({ ulimits: [{ name: 'bogus', soft: 1, hard: 1 }] }, /--ulimit bogus.*unknown ulimit type/);
    bad({ ulimits: [{ name: 'nofile', soft: 2, hard: 1 }] }, /--ulimit nofile.*soft limit/);
    bad({ sysctls: { 'kernel.pid_max': '1' } }, /--sysctl kernel.pid_max/);
    bad({ sysctls: { 'net.ipv4.ip_forward': '1' } }, /--sysctl net.ipv4.ip_forward.*host/, 'host');
    bad({ sysctls: { 'net.core.somaxconn': '1' } }, /--sysctl net.core.somaxconn/, 'container:abc');
    bad({ oomScoreAdj: 1001 }, /--oom-score-adj/);
    bad({ logConfig: { type: 'syslog' } }, /--log-driver syslog/);
    bad({ logConfig: { config: { 'max-file': '3' } } }, /max-file needs max-size/);
    bad(
      { devices: [{ pathOnHost: '/dev/null', pathInContainer: 'rel', cgroupPermissions: 'rwm' }] },
      /--device \/dev\/null/,
    );
    bad(
      { devices: [{ pathOnHost: '/dev/null', pathInContainer: '/dev/x', cgroupPermissions: 'rwx' }] },
      /permissions/,
    );
    bad({ groupAdd: ['a b'] }, /--group-add/);
    const ok = checkRunSettings(
      {
        sysctls: { 'kernel.shmmax': '1', 'fs.mqueue.msg_max': '5', 'net.ipv4.ip_forward': '1' },
        shmSize: 1 << 20,
      },
      'none',
    );
    expect(ok.hostConfig.sysctls).toEqual({
      'kernel.shmmax': '1',
      'fs.mqueue.msg_max': '5',
      'net.ipv4.ip_forward': '1',
    });
  });

  it("merges a health check over the image's; NONE disables it", () => {
    const image = { Test: ['CMD', 'true'], Interval: 5e9, Retries: 5 };
    expect(resolveHealthcheck(undefined, image)).toEqual({
      Test: ['CMD', 'true'],
      Interval: 5e9,
      Timeout: 0,
      StartPeriod: 0,
      Retries: 5,
    });
    expect(resolveHealthcheck({ Test: [], Interval: 1e9 }, image)?.Interval).toBe(1e9);
    expect(resolveHealthcheck({ Test: ['CMD-SHELL', 'false'] }, image)?.Test).toEqual(['CMD-SHELL', 'false']);
    expect(resolveHealthcheck({ Test: ['NONE'] }, image)).toBeNull();
    expect(resolveHealthcheck(undefined, undefined)).toBeNull();
    expect(() => resolveHealthcheck({ Test: ['SHELL', 'x'] }, undefined)).toThrow(/CMD, CMD-SHELL or NONE/);
    expect(parseDuration('1m30s', '--health-interval')).toBe(90e9);
    expect(parseDuration('250ms', '--health-interval')).toBe(250e6);
    expect(() => parseDuration('10', '--health-interval')).toThrow(/--health-interval 10/);
  });
});

describe('json-file log rotation', () => {
  async function collect(gen: AsyncGenerator<LogEntry>): Promise<string[]> {
    const out: string[] = [];
    for await (const e of gen) out.push(e.log);
    return out;
  }

  it('keeps max-file files of at most max-size; a follower reads every line across rotations', async () => {
    const path = join(cleanups.tempDir('run-options'), 'c-json.log');
    writeFileSync(path, '');
    const lines = Array.from({ length: 60 }, (_, i) => `line ${i}\n`);
    let done = false;
    const out: string[] = [];
    const followed = (async () => {
      for await (const e of readLogs(path, { follow: true, isDone: () => done })) out.push(e.log);
      return out;
    })();
    const log = new LogWriter(path, { maxSize: 400, maxFile: 3 });
    const s = new PassThrough();
    log.attach(s, 'stdout');
    // Each line once the follower has the one before: it crosses every rotation (a follower
    // more than max-file files behind loses what was rotated away, as Docker's does).
    for (const [i, l] of lines.entries()) {
      s.write(l);
      await until(() => out.length === i + 1, `the follower to read line ${i}`, 10_000, 1);
    }
    s.end();
    await log.finished;
    done = true;
    expect(await followed).toEqual(lines);
    expect(existsSync(`${path}.2`) && !existsSync(`${path}.3`)).toBe(true);
    const kept = await collect(readLogs(path));
    expect(kept.at(-1)).toBe('line 59\n');
    expect(lines.slice(-kept.length)).toEqual(kept);
    expect(await collect(readLogs(path, { tail: 2 }))).toEqual(['line 58\n', 'line 59\n']);
  });
});
