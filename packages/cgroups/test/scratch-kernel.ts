import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { alive } from './helpers.js';

/**
 * Stands in for the kernel on a scratch v2 tree, because these hosts have no v2 controllers.
 * It lays files out with the formats of Documentation/admin-guide/cgroup-v2.rst and plays the
 * parts of the kernel the backend waits on: cgroup.freeze (SIGSTOP/SIGCONT of the member
 * processes, `frozen` in cgroup.events), cgroup.kill (SIGKILL), children joining their
 * parent's cgroup, `populated`, and an OOM kill when a test asks for one.
 * Only processes the test started are ever signalled.
 */
export class ScratchV2Kernel {
  readonly root: string;
  private timer: NodeJS.Timeout | undefined;
  private readonly frozen = new Set<string>();

  constructor(root: string, opts: { controllers?: string[]; cpus?: string; mems?: string } = {}) {
    this.root = root;
    const controllers = opts.controllers ?? ['cpuset', 'cpu', 'io', 'memory', 'pids'];
    const w = (name: string, text: string) => writeFileSync(join(root, name), text);
    // The root cgroup's interface files.
    w('cgroup.controllers', `${[...controllers, 'hugetlb', 'rdma', 'misc'].join(' ')}\n`);
    w('cgroup.subtree_control', `${controllers.join(' ')}\n`);
    w('cgroup.procs', '');
    w('cgroup.max.depth', 'max\n');
    w('cpuset.cpus.effective', `${opts.cpus ?? '0-1'}\n`);
    w('cpuset.mems.effective', `${opts.mems ?? '0'}\n`);
    w('cpu.stat', 'usage_usec 0\nuser_usec 0\nsystem_usec 0\n');
    w('memory.stat', 'anon 0\nfile 0\n');
    this.timer = setInterval(() => this.tick(), 5);
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Gives every new cgroup directory its interface files, as mkdir in cgroupfs does. */
  sync(): void {
    for (const dir of this.cgroups()) if (!existsSync(join(dir, 'cgroup.procs'))) this.populate(dir);
  }

  private cgroups(dir = this.root): string[] {
    const out: string[] = [];
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      if (!e.isDirectory()) continue;
      const sub = join(dir, e.name);
      out.push(sub, ...this.cgroups(sub));
    }
    return out;
  }

  private populate(dir: string): void {
    const parent = join(dir, '..');
    const enabled = readFileSync(join(parent, 'cgroup.subtree_control'), 'utf8').trim();
    const files: Record<string, string> = {
      'cgroup.controllers': `${enabled}\n`,
      'cgroup.subtree_control': '',
      'cgroup.procs': '',
      'cgroup.events': 'populated 0\nfrozen 0\n',
      'cgroup.freeze': '0\n',
      'cgroup.kill': '',
      'cpu.stat':
        'usage_usec 0\nuser_usec 0\nsystem_usec 0\nnr_periods 0\nnr_throttled 0\nthrottled_usec 0\nnr_bursts 0\nburst_usec 0\n',
    };
    const on = new Set(enabled.split(/\s+/));
    if (on.has('memory'))
      Object.assign(files, {
        'memory.current': '0\n',
        'memory.max': 'max\n',
        'memory.low': '0\n',
        'memory.high': 'max\n',
        'memory.peak': '0\n',
        'memory.swap.max': 'max\n',
        'memory.swap.current': '0\n',
        'memory.events': 'low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n',
        'memory.stat':
          'anon 0\nfile 0\nkernel 0\nshmem 0\ninactive_anon 0\nactive_anon 0\ninactive_file 0\nactive_file 0\n',
      });
    if (on.has('cpu')) Object.assign(files, { 'cpu.weight': '100\n', 'cpu.max': 'max 100000\n' });
    if (on.has('cpuset'))
      Object.assign(files, {
        'cpuset.cpus': '\n',
        'cpuset.mems': '\n',
        'cpuset.cpus.effective': readFileSync(join(parent, 'cpuset.cpus.effective'), 'utf8'),
        'cpuset.mems.effective': readFileSync(join(parent, 'cpuset.mems.effective'), 'utf8'),
      });
    if (on.has('pids')) Object.assign(files, { 'pids.max': 'max\n', 'pids.current': '0\n' });
    if (on.has('io')) Object.assign(files, { 'io.stat': '', 'io.weight': 'default 100\n' });
    // What the backend wrote before this ran stays (the kernel would have had the file first).
    for (const [name, text] of Object.entries(files))
      if (!existsSync(join(dir, name))) writeFileSync(join(dir, name), text);
  }

  private pids(dir: string): number[] {
    return readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number);
  }

  /** Children of members are members (fork keeps the cgroup); the dead leave. */
  private members(dir: string): number[] {
    const set = new Set(this.pids(dir).filter(alive));
    let grew = true;
    while (grew) {
      grew = false;
      for (const name of readdirSync('/proc')) {
        if (!/^\d+$/.test(name) || set.has(Number(name))) continue;
        try {
          const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
          const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
          if (set.has(ppid) && alive(Number(name))) {
            set.add(Number(name));
            grew = true;
          }
        } catch {
          // Gone meanwhile.
        }
      }
    }
    return [...set];
  }

  private signal(pids: number[], sig: NodeJS.Signals): void {
    for (const pid of pids) {
      try {
        process.kill(pid, sig);
      } catch {
        // Already gone.
      }
    }
  }

  private tick(): void {
    try {
      this.sync();
      for (const dir of this.cgroups()) {
        if (!existsSync(join(dir, 'cgroup.procs'))) continue;
        let pids = this.members(dir);
        const kill = readFileSync(join(dir, 'cgroup.kill'), 'utf8').trim();
        if (kill === '1') {
          this.signal(pids, 'SIGCONT');
          this.signal(pids, 'SIGKILL');
          writeFileSync(join(dir, 'cgroup.kill'), '');
          pids = [];
        }
        const want = readFileSync(join(dir, 'cgroup.freeze'), 'utf8').trim() === '1';
        if (want) this.signal(pids, 'SIGSTOP');
        else if (this.frozen.has(dir)) this.signal(pids, 'SIGCONT');
        if (want) this.frozen.add(dir);
        else this.frozen.delete(dir);
        writeFileSync(join(dir, 'cgroup.procs'), pids.map((p) => `${p}\n`).join(''));
        writeFileSync(
          join(dir, 'cgroup.events'),
          `populated ${pids.length ? 1 : 0}\nfrozen ${want ? 1 : 0}\n`,
        );
        if (existsSync(join(dir, 'pids.current')))
          writeFileSync(join(dir, 'pids.current'), `${pids.length}\n`);
      }
    } catch {
      // A directory removed between listing and reading: the next tick sees the new tree.
    }
  }

  /** What the kernel does when a cgroup hits memory.max with nothing to reclaim. */
  oomKill(dir: string): void {
    const pids = this.members(dir);
    this.signal(pids, 'SIGKILL');
    const events = readFileSync(join(dir, 'memory.events'), 'utf8').replace(
      /^oom (\d+)$/m,
      (_, n) => `oom ${Number(n) + 1}`,
    );
    writeFileSync(
      join(dir, 'memory.events'),
      events.replace(/^oom_kill (\d+)$/m, (_, n) => `oom_kill ${Number(n) + 1}`),
    );
  }
}
