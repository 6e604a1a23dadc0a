import { spawn } from 'node:child_process';

export interface Result {
  status: number | null;
  /** The signal that ended the program, when one did. */
  signal?: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** stdout, trimmed. */
  out: string;
}

export interface ExecOptions {
  input?: string | Buffer;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

/**
 * Runs a program to its end without blocking the test worker and collects its output; never
 * throws for a non-zero exit (only when the program cannot be started).
 */
export function exec(file: string, args: string[], opts: ExecOptions = {}): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: opts.env ?? process.env,
      cwd: opts.cwd,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    child.on('error', reject);
    // A program that exits without reading its input must not fail the test with EPIPE.
    child.stdin.on('error', () => {});
    child.stdin.end(opts.input ?? '');
    child.on('close', (status, signal) => resolve({ status, signal, stdout, stderr, out: stdout.trim() }));
  });
}

/** Like exec, but a non-zero exit is an error that shows the command and what it printed. */
export async function must(file: string, args: string[], opts: ExecOptions = {}): Promise<Result> {
  const r = await exec(file, args, opts);
  if (r.status !== 0) {
    throw new Error(
      `${file} ${args.join(' ')} exited ${r.status ?? r.signal}\nstdout: ${r.stdout.slice(-4000)}\nstderr: ${r.stderr.slice(-4000)}`,
    );
  }
  return r;
}
