import { appendFileSync, existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { Cleanups } from '@corral/testkit';
import { afterEach, describe, expect, it } from 'vitest';
import { entryBytes, type LogEntry, LogWriter, readLogs } from '../src/logs.js';

const cleanups = new Cleanups();
afterEach(() => cleanups.run());

async function collect(gen: AsyncGenerator<LogEntry>): Promise<LogEntry[]> {
  const out: LogEntry[] = [];
  for await (const e of gen) out.push(e);
  return out;
}

describe('logs', () => {
  it('keeps a UTF-8 character whose bytes arrive in two chunks whole', async () => {
    const path = join(cleanups.tempDir('engine-logs'), 'c-json.log');
    const log = new LogWriter(path);
    const out = new PassThrough();
    const err = new PassThrough();
    log.attach(out, 'stdout');
    log.attach(err, 'stderr');
    const text = Buffer.from('héllo wörld 🐄\nsecond ✓ line\n', 'utf8');
    // One byte at a time: every multi-byte character is cut somewhere.
    for (const b of text) out.write(Buffer.from([b]));
    const cow = Buffer.from('🐄', 'utf8');
    err.write(cow.subarray(0, 3));
    err.write(cow.subarray(3)); // no newline: written when the stream ends
    out.end();
    err.end();
    await log.finished;
    const entries = await collect(readLogs(path));
    expect(entries.map((e) => [e.stream, e.log])).toEqual([
      ['stdout', 'héllo wörld 🐄\n'],
      ['stdout', 'second ✓ line\n'],
      ['stderr', '🐄'],
    ]);
    expect(readFileSync(path, 'utf8')).not.toContain('\ufffd');
  });

  it('reads a log whose last line is being written, cut inside a character', async () => {
    const path = join(cleanups.tempDir('engine-logs'), 'c-json.log');
    const line = `${JSON.stringify({ log: 'ünïcode\n', stream: 'stdout', time: new Date().toISOString() })}\n`;
    const bytes = Buffer.from(line + line, 'utf8');
    // The second line cut after the first of ü's two bytes (`{"log":"` is 8 bytes).
    const cut = Buffer.byteLength(line) + 9;
    writeFileSync(path, bytes.subarray(0, cut));
    let done = false;
    const seen: string[] = [];
    const reader = (async () => {
      for await (const e of readLogs(path, { follow: true, isDone: () => done })) seen.push(e.log);
    })();
    await new Promise((r) => setTimeout(r, 120));
    appendFileSync(path, bytes.subarray(cut));
    done = true;
    await reader;
    expect(seen).toEqual(['ünïcode\n', 'ünïcode\n']);
  });

  it('gives the last N lines with tail', async () => {
    const path = join(cleanups.tempDir('engine-logs'), 'c-json.log');
    const log = new LogWriter(path);
    const s = new PassThrough();
    log.attach(s, 'stdout');
    s.end('1\n2\n3\n');
    await log.finished;
    expect((await collect(readLogs(path, { tail: 2 }))).map((e) => e.log)).toEqual(['2\n', '3\n']);
    expect(await collect(readLogs(path, { tail: 0 }))).toEqual([]);
  });

  it('keeps bytes that are not UTF-8 exact (raw), and a prompt cut inside a character whole', async () => {
    const path = join(cleanups.tempDir('engine-logs'), 'c-json.log');
    const log = new LogWriter(path);
    const out = new PassThrough();
    log.attach(out, 'stdout');
    const binary = Buffer.from([0x00, 0xff, 0xfe, 0x41, 0x0a]);
    out.write(binary);
    // A prompt with no newline, cut inside 'é': the part written after the pause ends before it.
    const prompt = Buffer.from('café? ', 'utf8');
    out.write(prompt.subarray(0, 4));
    await new Promise((r) => setTimeout(r, 100));
    out.end(prompt.subarray(4));
    await log.finished;
    const entries = await collect(readLogs(path));
    expect(entryBytes(entries[0])).toEqual(binary);
    expect(entries[0].log).toContain('\ufffd'); // what docker logs shows of it, as json-file
    expect(entries.slice(1).map((e) => [e.log, e.raw])).toEqual([
      ['caf', undefined],
      ['é? ', undefined],
    ]);
    expect(Buffer.concat(entries.map(entryBytes))).toEqual(Buffer.concat([binary, prompt]));
  });
  it('writes a chunk of many lines, a line with no end and a rotation whole and in order', async () => {
    const dir = cleanups.tempDir('engine-logs');
    const path = join(dir, 'c-json.log');
    const log = new LogWriter(path, { maxSize: 200_000, maxFile: 20 });
    const out = new PassThrough();
    const err = new PassThrough();
    log.attach(out, 'stdout');
    log.attach(err, 'stderr');
    const lines = `${Array.from({ length: 20000 }, (_, i) => i).join('\n')}\n`;
    out.write(lines); // one chunk: one write for all its lines
    err.write('between\n');
    // 300 kB without a newline: cut into entries as it comes, never one of 300 kB.
    const long = Buffer.alloc(300_000, 'y');
    for (let i = 0; i < long.length; i += 50_000) out.write(long.subarray(i, i + 50_000));
    out.end('\n');
    err.end();
    await log.finished;
    const entries = await collect(readLogs(path));
    const text = (s: string) =>
      Buffer.concat(entries.filter((e) => e.stream === s).map(entryBytes)).toString('utf8');
    expect(text('stdout')).toBe(`${lines}${'y'.repeat(300_000)}\n`);
    expect(text('stderr')).toBe('between\n');
    expect(Math.max(...entries.map((e) => e.log.length))).toBeLessThanOrEqual(64 * 1024 + 1);
    // Rotated as it went: every file within max-size (give or take one entry), lines across
    // files in order (checked above through readLogs, which reads PATH.N ... PATH).
    expect(existsSync(`${path}.1`)).toBe(true);
    for (const f of [path, `${path}.1`]) expect(statSync(f).size).toBeLessThan(200_000 + 70_000);
  });

  it('reads a log with a damaged line among whole ones (one parse per read, then line by line)', async () => {
    const path = join(cleanups.tempDir('engine-logs'), 'c-json.log');
    const entry = (log: string) =>
      `${JSON.stringify({ log, stream: 'stdout', time: new Date().toISOString() })}\n`;
    writeFileSync(path, `${entry('a\n')}{"log":"cut sho\n${entry('b,{"x":1}\n')}`);
    expect((await collect(readLogs(path))).map((e) => e.log)).toEqual(['a\n', 'b,{"x":1}\n']);
  });

  it('rotates within one chunk of many lines: no file passes max-size', async () => {
    const path = join(cleanups.tempDir('engine-logs'), 'c-json.log');
    const log = new LogWriter(path, { maxSize: 1024, maxFile: 3 });
    const out = new PassThrough();
    log.attach(out, 'stdout');
    out.end(Array.from({ length: 200 }, (_, i) => `line-${i}\n`).join(''));
    await log.finished;
    for (const f of [path, `${path}.1`, `${path}.2`])
      expect(readFileSync(f).length).toBeLessThanOrEqual(1024);
    expect((await collect(readLogs(path))).at(-1)?.log).toBe('line-199\n');
  });
});
