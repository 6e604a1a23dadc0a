import { describe, expect, it } from 'vitest';
import { DetachFilter, parseDetachKeys } from '../src/detach-keys.js';
import { encodeFrame, FrameReader } from '../src/keeper-stdin.js';

describe('detach keys', () => {
  it("reads Docker's specs: the default, ctrl-X, single characters, DEL", () => {
    expect([...parseDetachKeys(undefined)]).toEqual([0x10, 0x11]);
    expect([...parseDetachKeys('')]).toEqual([0x10, 0x11]);
    expect([...parseDetachKeys('ctrl-a,b')]).toEqual([1, 0x62]);
    expect([...parseDetachKeys('ctrl-@,ctrl-[,ctrl-\\,ctrl-_,DEL')]).toEqual([0, 27, 28, 31, 127]);
  });

  it("refuses what Docker refuses, with dockerd's words", () => {
    for (const bad of ['ctrl-1', 'ctrl-', 'ctrl-A', 'ab', 'a,,b'])
      expect(() => parseDetachKeys(bad)).toThrow(`Invalid detach keys (${bad}) provided`);
  });

  it('holds a partial sequence back, passes it on when it is not one, and stops at a whole one', () => {
    const f = new DetachFilter(parseDetachKeys('ctrl-p,ctrl-q'));
    expect(f.push(Buffer.from('ls\x10'))).toEqual({ pass: Buffer.from('ls'), detach: false });
    // Not the sequence after all: ctrl-p goes on as typed, before what follows.
    expect(f.push(Buffer.from('x'))).toEqual({ pass: Buffer.from('\x10x'), detach: false });
    // ctrl-p twice: the first goes on, the second may start the sequence.
    expect(f.push(Buffer.from('\x10\x10'))).toEqual({ pass: Buffer.from('\x10'), detach: false });
    expect(f.push(Buffer.from('\x11after'))).toEqual({ pass: Buffer.alloc(0), detach: true });
    const one = new DetachFilter(parseDetachKeys('ctrl-a,b'));
    expect(one.push(Buffer.from('echo\r\x01b'))).toEqual({ pass: Buffer.from('echo\r'), detach: true });
  });
});

describe("the keeper's stdin frames", () => {
  it('round-trips data, end and resize however the bytes are cut', () => {
    const bytes = Buffer.concat([
      encodeFrame({ type: 'data', data: Buffer.from('hello') }),
      encodeFrame({ type: 'resize', cols: 120, rows: 40 }),
      encodeFrame({ type: 'end' }),
    ]);
    const r = new FrameReader();
    const frames = [...bytes].flatMap((b) => r.push(Buffer.from([b])));
    expect(frames).toEqual([
      { type: 'data', data: Buffer.from('hello') },
      { type: 'resize', cols: 120, rows: 40 },
      { type: 'end' },
    ]);
  });

  it('refuses an unknown frame type and an oversized payload', () => {
    expect(() => new FrameReader().push(Buffer.from([0x78, 0, 0, 0, 0]))).toThrow('bad stdin frame');
    expect(() => new FrameReader().push(Buffer.from([0x64, 0xff, 0, 0, 0]))).toThrow('bad stdin frame');
  });
});
