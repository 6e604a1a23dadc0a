import { CgroupLimitError } from './errors.js';

const binaryUnits: Record<string, number> = {
  '': 1,
  k: 1024,
  m: 1024 ** 2,
  g: 1024 ** 3,
  t: 1024 ** 4,
  p: 1024 ** 5,
};

/**
 * Bytes from a human size the way docker reads `-m` (RAMInBytes): binary multipliers, the unit
 * optional and case-insensitive, an optional `i` and `b`: `64m`, `1.5GiB`, `512kb`, `1024`.
 */
export function parseBytes(input: string | number, field = 'memory'): number {
  if (typeof input === 'number') {
    if (Number.isSafeInteger(input) && input >= 0) return input;
    throw new CgroupLimitError(
      field,
      `invalid size: ${input} (want a whole number of bytes or a size such as 64m)`,
    );
  }
  const m = /^(\d+(?:\.\d+)?) ?([kmgtp])?i?b?$/i.exec(input.trim());
  if (!m) throw new CgroupLimitError(field, `invalid size: '${input}' (want a size such as 64m, 1g or 512k)`);
  const bytes = Math.trunc(Number(m[1]) * binaryUnits[(m[2] ?? '').toLowerCase()]);
  if (!Number.isSafeInteger(bytes)) throw new CgroupLimitError(field, `size too large: '${input}'`);
  return bytes;
}

/** `--memory-swap`: a size, or -1 for unlimited swap. */
export function parseMemorySwap(input: string | number): number {
  if (input === -1 || (typeof input === 'string' && input.trim() === '-1')) return -1;
  return parseBytes(input, 'memorySwap');
}

/**
 * Nano-CPUs from `--cpus` (`0.5` -> 500000000), exact to nine decimals like docker's parser.
 */
export function parseCpus(input: string | number): number {
  const s = String(input).trim();
  const m = /^(\d+)(?:\.(\d+))?$/.exec(s);
  if (!m)
    throw new CgroupLimitError(
      'cpus',
      `invalid number of CPUs: '${input}' (want a decimal such as 0.5 or 2)`,
    );
  const frac = m[2] ?? '';
  if (frac.length > 9)
    throw new CgroupLimitError('cpus', `number of CPUs '${input}' is too precise (at most 9 decimals)`);
  const nano = Number(m[1]) * 1e9 + Number(frac.padEnd(9, '0'));
  if (!Number.isSafeInteger(nano)) throw new CgroupLimitError('cpus', `number of CPUs too large: '${input}'`);
  return nano;
}

/** v1 cpu.shares (2..262144) to v2 cpu.weight (1..10000), as runc converts them. */
export function sharesToWeight(shares: number): number {
  if (shares === 0) return 0;
  return 1 + Math.floor(((shares - 2) * 9999) / 262142);
}

/** v2 cpu.weight back to v1 shares (the inverse of sharesToWeight, rounded up). */
export function weightToShares(weight: number): number {
  if (weight === 0) return 0;
  return 2 + Math.ceil(((weight - 1) * 262142) / 9999);
}

/** v1 blkio weight (10..1000) to v2 io.weight (1..10000), as runc converts it. */
export function blkioWeightToIoWeight(weight: number): number {
  if (weight === 0) return 0;
  return 1 + Math.floor(((weight - 10) * 9999) / 990);
}

/** Parses a cpuset list such as `0-2,4` into sorted unique numbers. */
export function parseCpuList(input: string, field = 'cpusetCpus'): number[] {
  const s = input.trim();
  if (s === '') return [];
  const out = new Set<number>();
  for (const part of s.split(',')) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
    if (!m) throw new CgroupLimitError(field, `invalid list '${input}' (want a list such as 0-2,4)`);
    const from = Number(m[1]);
    const to = m[2] === undefined ? from : Number(m[2]);
    if (to < from)
      throw new CgroupLimitError(field, `invalid range '${part}' in '${input}' (the end is below the start)`);
    for (let i = from; i <= to; i++) out.add(i);
  }
  return [...out].sort((a, b) => a - b);
}

/** Formats numbers as a compact cpuset list (`0-2,4`). */
export function formatCpuList(list: readonly number[]): string {
  const sorted = [...new Set(list)].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let i = 0; i < sorted.length; i++) {
    const start = sorted[i];
    while (i + 1 < sorted.length && sorted[i + 1] === sorted[i] + 1) i++;
    parts.push(start === sorted[i] ? `${start}` : `${start}-${sorted[i]}`);
  }
  return parts.join(',');
}
