import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Cleanups } from '@corral/testkit';
import { afterEach, describe, expect, it } from 'vitest';
import { type EngineEvent, EventLog, parseFilters, parseTime } from '../src/events.js';

const cleanups = new Cleanups();
afterEach(() => cleanups.run());

async function collect(gen: AsyncGenerator<EngineEvent>): Promise<EngineEvent[]> {
  const out: EngineEvent[] = [];
  for await (const e of gen) out.push(e);
  return out;
}

describe('events', () => {
  it("appends Docker's events and reads them back by time and filter", async () => {
    const log = new EventLog(cleanups.tempDir('engine-events'));
    const start = Date.now() - 1;
    log.emit('container', 'create', 'c1', { name: 'web', image: 'busybox' });
    log.emit('container', 'start', 'c1', { name: 'web', image: 'busybox' });
    log.emit('container', 'create', 'c2', { name: 'db', image: 'alpine' });
    log.emit('image', 'pull', 'sha256:1', { name: 'busybox' });
    const until = Date.now() + 1;
    const all = await collect(log.read({ since: start, until }));
    expect(all.map((e) => `${e.Type} ${e.Action} ${e.Actor.ID}`)).toEqual([
      'container create c1',
      'container start c1',
      'container create c2',
      'image pull sha256:1',
    ]);
    expect(all[0]).toMatchObject({ status: 'create', id: 'c1', from: 'busybox', scope: 'local' });
    const web = await collect(log.read({ since: start, until, filters: parseFilters(['container=web']) }));
    expect(web.map((e) => e.Action)).toEqual(['create', 'start']);
    const creates = await collect(log.read({ since: start, until, filters: parseFilters(['event=create']) }));
    expect(creates.map((e) => e.Actor.ID)).toEqual(['c1', 'c2']);
    const images = await collect(log.read({ since: start, until, filters: parseFilters(['type=image']) }));
    expect(images.map((e) => e.Action)).toEqual(['pull']);
    const busybox = await collect(
      log.read({ since: start, until, filters: parseFilters(['image=busybox']) }),
    );
    expect(busybox.map((e) => e.Action)).toEqual(['create', 'start', 'pull']);
  });

  it('streams new events to a reader that follows, until its signal aborts', async () => {
    const log = new EventLog(cleanups.tempDir('engine-events'));
    const stop = new AbortController();
    const seen: string[] = [];
    const reader = (async () => {
      for await (const e of log.read({ signal: stop.signal })) {
        seen.push(e.Action);
        if (seen.length === 2) stop.abort();
      }
    })();
    await new Promise((r) => setTimeout(r, 150));
    log.emit('container', 'die', 'c1', { exitCode: '0' });
    log.emit('container', 'destroy', 'c1');
    await reader;
    expect(seen).toEqual(['die', 'destroy']);
  });

  it('reads a long log from its end for recent events, from its start for older ones', async () => {
    const dir = cleanups.tempDir('engine-events');
    const log = new EventLog(dir);
    // 2,000 events of an hour ago (about 300 KB), written as emit writes them, then two now.
    const hourAgo = Date.now() - 3_600_000;
    const old = Array.from({ length: 2000 }, (_, i) => {
      const ms = hourAgo + i;
      const e = { Type: 'container', Action: 'start', Actor: { ID: `old${i}`, Attributes: {} } };
      return JSON.stringify({ ...e, scope: 'local', time: Math.floor(ms / 1000), timeNano: ms * 1e6 });
    });
    writeFileSync(join(dir, 'events.jsonl'), `${old.join('\n')}\n`);
    const now = Date.now();
    log.emit('container', 'die', 'new1');
    log.emit('container', 'destroy', 'new1');
    const until = Date.now() + 1;
    const recent = await collect(log.read({ since: now, until }));
    expect(recent.map((e) => `${e.Action} ${e.Actor.ID}`)).toEqual(['die new1', 'destroy new1']);
    // Since a time before the log's last 64 KB: every event from then on, the first one too.
    const all = await collect(log.read({ since: hourAgo + 10, until }));
    expect(all).toHaveLength(1992);
    expect(all[0].Actor.ID).toBe('old10');
  });

  it("parses Docker's times and refuses bad filters", () => {
    const now = 1_700_000_000_000;
    expect(parseTime('1700000000', now)).toBe(now);
    expect(parseTime('1700000000.5', now)).toBe(now + 500);
    expect(parseTime('10m', now)).toBe(now - 600_000);
    expect(parseTime('1h30m', now)).toBe(now - 5_400_000);
    expect(parseTime('2023-11-14T22:13:20Z', now)).toBe(now);
    expect(() => parseTime('yesterday')).toThrow(expect.objectContaining({ kind: 'InvalidArgument' }));
    expect(() => parseFilters(['label'])).toThrow(expect.objectContaining({ kind: 'InvalidArgument' }));
    expect(() => parseFilters(['volume=x'])).toThrow(expect.objectContaining({ kind: 'InvalidArgument' }));
    expect(parseFilters(['event=start', 'event=die', 'type=container'])).toEqual({
      event: ['start', 'die'],
      type: ['container'],
    });
  });
});
