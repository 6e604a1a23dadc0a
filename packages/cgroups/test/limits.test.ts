import { describe, expect, it } from 'vitest';
import {
  type CgroupCapabilities,
  CgroupLimitError,
  type CgroupLimits,
  checkLimits,
  detectCgroupMode,
  hostCapabilities,
  limitsFromOci,
  limitsToOci,
  validateLimits,
} from '../src/index.js';

const MiB = 1024 * 1024;
// A host description, as Cgroup.capabilities() reports one; checkLimits is a pure function of it.
const host: CgroupCapabilities = {
  backend: 'v1',
  controllers: ['cpu', 'cpuacct', 'cpuset', 'memory', 'pids', 'blkio', 'freezer'],
  cpus: [0, 1],
  mems: [0],
  swapAccounting: true,
  blkioWeight: true,
};

function error(limits: CgroupLimits, caps = host): CgroupLimitError {
  try {
    checkLimits(limits, caps);
  } catch (e) {
    if (e instanceof CgroupLimitError) return e;
    throw e;
  }
  throw new Error(`no error for ${JSON.stringify(limits)}`);
}

describe('checkLimits', () => {
  it("resolves cpus into quota and period and gives swap docker's default", () => {
    expect(checkLimits({ memory: 64 * MiB, cpus: '0.5', pidsLimit: 0 }, host)).toEqual({
      memory: 64 * MiB,
      memorySwap: 128 * MiB,
      nanoCpus: 500_000_000,
      cpuPeriod: 100_000,
      cpuQuota: 50_000,
      pidsLimit: -1,
    });
    expect(checkLimits({ memory: 64 * MiB }, { ...host, swapAccounting: false })).toEqual({
      memory: 64 * MiB,
    });
  });

  it.each<[CgroupLimits, string, RegExp]>([
    [{ memory: 4 * MiB }, 'memory', /^Minimum memory limit allowed is 6MB/],
    [{ memory: -7 }, 'memory', /invalid memory limit/],
    [{ memory: 64 * MiB, memorySwap: 32 * MiB }, 'memorySwap', /should be larger than the memory limit/],
    [{ memorySwap: 32 * MiB }, 'memorySwap', /always set the memory limit/],
    [
      { memory: 64 * MiB, memoryReservation: 128 * MiB },
      'memoryReservation',
      /can not be less than memory reservation/,
    ],
    [{ memoryReservation: MiB }, 'memoryReservation', /Minimum memory reservation allowed is 6MB/],
    [{ cpus: 3 }, 'cpus', /^Range of CPUs is from 0\.01 to 2\.00, as there are only 2 CPUs available/],
    [{ cpus: '0.001' }, 'cpus', /Range of CPUs/],
    [{ cpus: 0.5, cpuQuota: 1000 }, 'cpus', /Conflicting options/],
    [{ cpus: 0.5, nanoCpus: 1 }, 'cpus', /disagree/],
    [{ cpuPeriod: 100 }, 'cpuPeriod', /can not be less than 1ms/],
    [{ cpuQuota: 10 }, 'cpuQuota', /can not be less than 1ms/],
    [{ cpuShares: 1 }, 'cpuShares', /between 2 and 262144/],
    [{ cpusetCpus: '0,3' }, 'cpusetCpus', /^Requested CPUs are not available - requested 3, available: 0-1$/],
    [
      { cpusetMems: '1' },
      'cpusetMems',
      /^Requested memory nodes are not available - requested 1, available: 0$/,
    ],
    [{ cpusetCpus: 'a' }, 'cpusetCpus', /invalid list/],
    [{ blkioWeight: 5 }, 'blkioWeight', /Range of blkio weight is from 10 to 1000/],
    [{ pidsLimit: 1.5 }, 'pidsLimit', /whole number/],
  ])('%j is refused (%s)', (limits, field, message) => {
    const e = error(limits);
    expect(e.field).toBe(field);
    expect(e.message).toMatch(message);
  });

  it('accepts its own output again (resolved limits are stored and re-applied)', () => {
    const once = checkLimits({ memory: 64 * MiB, cpus: 1.5, pidsLimit: 0, cpusetCpus: '1,0' }, host);
    expect(checkLimits(once, host)).toEqual(once);
    expect(checkLimits(limitsFromOci(limitsToOci(once)), host)).toMatchObject({
      cpuPeriod: 100_000,
      cpuQuota: 150_000,
    });
  });

  it('names a controller the host lacks', () => {
    const e = error({ pidsLimit: 10 }, { ...host, controllers: ['cpu', 'memory'] });
    expect(e.message).toBe(
      'pidsLimit needs the pids cgroup controller, which this host does not offer here (available: cpu, memory); drop the limit or enable the controller',
    );
    expect(
      error({ memory: 64 * MiB, memorySwap: 128 * MiB }, { ...host, swapAccounting: false }).message,
    ).toMatch(/does not account swap/);
    expect(error({ blkioWeight: 100 }, { ...host, blkioWeight: false }).message).toMatch(
      /no block IO weight/,
    );
  });

  it('validateLimits probes this host', () => {
    const caps = hostCapabilities();
    expect(caps.cpus.length).toBeGreaterThan(0);
    expect(validateLimits({ cpusetCpus: String(caps.cpus[0]) }, detectCgroupMode())).toEqual({
      cpusetCpus: String(caps.cpus[0]),
    });
    expect(() => validateLimits({ cpusetCpus: '4096' })).toThrow(
      /Requested CPUs are not available - requested 4096/,
    );
  });
});

describe('OCI linux.resources', () => {
  it('round-trips the limits corral enforces', () => {
    const limits: CgroupLimits = {
      memory: 64 * MiB,
      memorySwap: 128 * MiB,
      memoryReservation: 32 * MiB,
      cpuShares: 512,
      cpuPeriod: 50_000,
      cpuQuota: 25_000,
      cpusetCpus: '0',
      cpusetMems: '0',
      pidsLimit: 10,
      blkioWeight: 300,
    };
    const oci = limitsToOci(limits);
    expect(oci).toEqual({
      memory: { limit: 64 * MiB, swap: 128 * MiB, reservation: 32 * MiB },
      cpu: { shares: 512, period: 50_000, quota: 25_000, cpus: '0', mems: '0' },
      pids: { limit: 10 },
      blockIO: { weight: 300 },
    });
    expect(limitsFromOci(oci)).toEqual(limits);
  });

  it('turns cpus into quota and period, as docker hands them to runc', () => {
    expect(limitsToOci({ cpus: '1.5' })).toEqual({ cpu: { period: 100_000, quota: 150_000 } });
    expect(limitsToOci({})).toEqual({});
    expect(limitsFromOci(undefined)).toEqual({});
  });

  it('refuses resources corral cannot enforce instead of dropping them', () => {
    expect(() => limitsFromOci({ memory: { limit: 1, kernel: 5 } })).toThrow(
      'linux.resources.memory.kernel is not supported',
    );
    expect(() => limitsFromOci({ hugepageLimits: [{ pageSize: '2MB', limit: 1 }] })).toThrow(
      /hugepageLimits/,
    );
    expect(() =>
      limitsFromOci({ blockIO: { throttleReadBpsDevice: [{ major: 8, minor: 0, rate: 1 }] } }),
    ).toThrow(/throttleReadBpsDevice/);
    // Device rules are the runtime's business, not a limit.
    expect(limitsFromOci({ devices: [{ allow: false, access: 'rwm' }], pids: { limit: 5 } })).toEqual({
      pidsLimit: 5,
    });
  });
});
