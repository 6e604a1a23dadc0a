import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MNT, umount2 } from '@corral/sys';

const bin = fileURLToPath(new URL('../bin/corral.js', import.meta.url));

/** A private data root for one test file, and the corral CLI pointed at it. */
export class Sandbox {
  readonly root: string;

  /** `root`: a data root of the test's own choosing (made by corral); a fresh temp folder by default. */
  constructor(root?: string) {
    this.root = root ?? mkdtempSync(join(tmpdir(), 'corral-cli-'));
  }

  /** Runs the CLI; async so that the test worker stays responsive while it runs. */
  corral(args: string[], input?: string): Promise<Result> {
    return new Promise((resolve) => {
      const child = spawn(process.execPath, [bin, '--root', this.root, ...args], {
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d) => (stdout += d));
      child.stderr.on('data', (d) => (stderr += d));
      child.stdin.end(input ?? '');
      child.on('close', (status) => resolve({ status, stdout, stderr, out: stdout.trim() }));
    });
  }

  /**
   * Removes every container (killing what runs), then checks nothing is left mounted. What a
   * failed test left is unmounted and removed all the same, and the leftovers fail the test.
   */
  async teardown(): Promise<void> {
    const containers = join(this.root, 'containers');
    const ids = existsSync(containers) ? readdirSync(containers) : [];
    if (ids.length) await this.corral(['rm', '-f', ...ids]);
    const left = this.mounts();
    for (const line of [...left].reverse()) umount2(line.split(' ')[4], MNT.DETACH);
    rmSync(this.root, { recursive: true, force: true });
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

export interface Result {
  status: number | null;
  stdout: string;
  stderr: string;
  out: string;
}

export async function until(
  cond: () => boolean | Promise<boolean>,
  what: string,
  ms = 15_000,
): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

export const alive = (pid: number) => existsSync(`/proc/${pid}`);
