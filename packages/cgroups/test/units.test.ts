import { describe, expect, it } from 'vitest';
import {
  blkioWeightToIoWeight,
  CgroupLimitError,
  formatCpuList,
  parseBytes,
  parseCpuList,
  parseCpus,
  parseMemorySwap,
  sharesToWeight,
  weightToShares,
} from '../src/index.js';

describe('parseBytes (docker RAMInBytes)', () => {
  it.each([
    ['64m', 64 * 1024 ** 2],
    ['64M', 64 * 1024 ** 2],
    ['1g', 1024 ** 3],
    ['1.5GiB', 1.5 * 1024 ** 3],
    ['512kb', 512 * 1024],
    ['512 k', 512 * 1024],
    ['1024', 1024],
    ['10b', 10],
    ['2t', 2 * 1024 ** 4],
    ['0.5k', 512],
  ])('%s is %d bytes', (input, bytes) => {
    expect(parseBytes(input)).toBe(bytes);
  });

  it.each(['', 'm', '-1', '64x', '1.2.3m', '64mbb', 'sixty'])('%j is a typed error', (input) => {
    expect(() => parseBytes(input)).toThrow(CgroupLimitError);
    expect(() => parseBytes(input)).toThrow(/invalid size/);
  });

  it('takes -1 only for memory+swap', () => {
    expect(parseMemorySwap('-1')).toBe(-1);
    expect(parseMemorySwap('128m')).toBe(128 * 1024 ** 2);
  });
});

describe('parseCpus', () => {
  it('gives nano-CPUs exactly', () => {
    expect(parseCpus('0.5')).toBe(500_000_000);
    expect(parseCpus('1.5')).toBe(1_500_000_000);
    expect(parseCpus(2)).toBe(2_000_000_000);
    expect(parseCpus('0.000000001')).toBe(1);
  });
  it('refuses the malformed and the too precise', () => {
    expect(() => parseCpus('half')).toThrow(/invalid number of CPUs/);
    expect(() => parseCpus('-1')).toThrow(/invalid number of CPUs/);
    expect(() => parseCpus('0.0000000001')).toThrow(/too precise/);
  });
});

describe('weights as runc converts them', () => {
  it('maps v1 shares to v2 weight', () => {
    expect(sharesToWeight(2)).toBe(1);
    expect(sharesToWeight(1024)).toBe(39);
    expect(sharesToWeight(262144)).toBe(10000);
    expect(sharesToWeight(0)).toBe(0);
  });
  it('maps weights back onto shares that convert to the same weight', () => {
    for (const w of [1, 39, 100, 5000, 10000]) expect(sharesToWeight(weightToShares(w))).toBe(w);
  });
  it('maps blkio weight to io.weight', () => {
    expect(blkioWeightToIoWeight(10)).toBe(1);
    expect(blkioWeightToIoWeight(1000)).toBe(10000);
    expect(blkioWeightToIoWeight(500)).toBe(4950);
  });
});

describe('cpu lists', () => {
  it('parses and formats', () => {
    expect(parseCpuList('0-2,4,7-8')).toEqual([0, 1, 2, 4, 7, 8]);
    expect(formatCpuList([8, 0, 1, 2, 4, 7])).toBe('0-2,4,7-8');
    expect(parseCpuList('')).toEqual([]);
  });
  it('refuses malformed lists', () => {
    expect(() => parseCpuList('0-')).toThrow(/invalid list/);
    expect(() => parseCpuList('3-1')).toThrow(/below the start/);
  });
});
