import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { corralBin, type Result, removeTree, runCorral, tempDir, until } from '@corral/testkit';

export { type Result, until };

/** A private data root for one test file, and the corral CLI pointed at it. */
export class Sandbox {
  readonly root: string;

  /** `root`: a data root of the test's own choosing (made by corral); a fresh temp folder by default. */
  constructor(root?: string) {
    this.root = root ?? tempDir('cli');
  }

  /** Runs the CLI; async so that the test worker stays responsive while it runs. */
  corral(args: string[], input?: string): Promise<Result> {
    return runCorral(this.root, args, { input });
  }

  /**
   * Removes every container (killing what runs), then checks nothing is left mounted. What a
   * failed test left is unmounted and removed all the same, and the leftovers fail the test.
   */
  async teardown(): Promise<void> {
    const containers = join(this.root, 'containers');
    const ids = existsSync(containers) ? readdirSync(containers) : [];
    if (ids.length) await this.corral(['rm', '-f', ...ids]);
    // Networks keep their bridge while they exist: take every bridge and rule of this root down.
    if (existsSync(join(this.root, 'network', 'networks'))) await this.corral(['network', 'down']);
    const left = this.mounts();
    removeTree(this.root);
    if (left.length) throw new Error(`mounts left behind:\n${left.join('\n')}`);
  }

  /** Polls `corral top NAME` until its lines satisfy `ready`, and returns them. */
  async topUntil(name: string, ready: (lines: string[]) => boolean, what: string): Promise<string[]> {
    let lines: string[] = [];
    await until(async () => {
      lines = (await this.corral(['top', name])).out.split('\n');
      return ready(lines);
    }, what);
    return lines;
  }

  mounts(): string[] {
    return readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .filter((l) => l.includes(this.root));
  }
}

export const alive = (pid: number) => existsSync(`/proc/${pid}`);

/**
 * Runs the CLI with `global` flags (`--root R`, `--host H`) on a terminal of its own
 * (util-linux `script`), feeding `input` one line at a time, as a person types it.
 */
export function onTerminal(
  global: string[],
  args: string[],
  input = '',
): Promise<{ status: number | null; out: string }> {
  const cmd = [process.execPath, corralBin, ...global, ...args]
    .map((a) => `'${a.replace(/'/g, `'\\''`)}'`)
    .join(' ');
  return new Promise((resolve) => {
    const child = spawn('script', ['-qec', cmd, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const lines = input.split(/(?<=\n)/).filter(Boolean);
    const feed = () => {
      const line = lines.shift();
      if (line === undefined) return;
      child.stdin.write(line);
      setTimeout(feed, 300);
    };
    setTimeout(feed, 1000);
    child.on('close', (status) => resolve({ status, out }));
  });
}
