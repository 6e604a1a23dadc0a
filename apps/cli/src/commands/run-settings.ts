// The flags of settingFlags read into the engine's create options. The engine checks them
// (a clear error naming the flag, before anything is made); here they are only parsed.
import { existsSync, writeFileSync } from 'node:fs';
import { isatty } from 'node:tty';
import {
  type CreateContainerOptions,
  createProgressRenderer,
  EngineError,
  type HealthConfig,
  parseDevice,
  parseDuration,
  parseLabels,
  parseLogOpts,
  parseShmSize,
  parseSysctls,
  parseUlimit,
  readKeyValueFile,
} from '@corral/engine';
import { type ParsedArgs, UsageError } from '../args.js';
import { bool, int, list, str } from './common.js';

function healthcheck(a: ParsedArgs): HealthConfig | undefined {
  const flags = ['health-cmd', 'health-interval', 'health-retries', 'health-timeout', 'health-start-period'];
  if (bool(a, 'no-healthcheck')) {
    const given = flags.find((f) => str(a, f) !== undefined);
    if (given) throw new UsageError(`--no-healthcheck conflicts with --${given}`);
    return { Test: ['NONE'] };
  }
  if (!flags.some((f) => str(a, f) !== undefined)) return undefined;
  const dur = (f: string) => (str(a, f) === undefined ? undefined : parseDuration(str(a, f)!, `--${f}`));
  const retries = int(a, 'health-retries');
  if (retries !== undefined && retries < 0) throw new UsageError('--health-retries cannot be negative');
  const cmd = str(a, 'health-cmd');
  return {
    Test: cmd ? ['CMD-SHELL', cmd] : [],
    Interval: dur('health-interval'),
    Timeout: dur('health-timeout'),
    StartPeriod: dur('health-start-period'),
    Retries: retries,
  };
}

/** The streams of `-a`: a set of stdin, stdout, stderr (all three when the flag is absent). */
export function attachedStreams(a: ParsedArgs): Set<'stdin' | 'stdout' | 'stderr'> {
  const given = list(a, 'attach').map((s) => s.toLowerCase());
  for (const s of given)
    if (s !== 'stdin' && s !== 'stdout' && s !== 'stderr')
      throw new UsageError(
        `invalid argument "${s}" for -a, --attach: valid streams are STDIN, STDOUT and STDERR`,
      );
  return new Set(given.length ? (given as ('stdin' | 'stdout' | 'stderr')[]) : ['stdin', 'stdout', 'stderr']);
}

/** Create options from the flags of settingFlags (env-file entries come before -e's, as Docker's). */
export function settingOptions(a: ParsedArgs): Partial<CreateContainerOptions> {
  const envFiles = list(a, 'env-file').flatMap((f) =>
    readKeyValueFile(f, '--env-file', (k) => process.env[k]),
  );
  const labels = {
    ...parseLabels(list(a, 'label-file').flatMap((f) => readKeyValueFile(f, '--label-file'))),
    ...parseLabels(list(a, 'label')),
  };
  const shm = str(a, 'shm-size');
  const pull = str(a, 'pull');
  if (pull !== undefined && !['missing', 'always', 'never'].includes(pull))
    throw new UsageError(`invalid --pull ${pull}: missing, always or never`);
  const logOpts = list(a, 'log-opt');
  const logDriver = str(a, 'log-driver');
  return {
    env: [...envFiles, ...list(a, 'env')],
    labels,
    ulimits: list(a, 'ulimit').map(parseUlimit),
    groupAdd: list(a, 'group-add'),
    devices: list(a, 'device').map(parseDevice),
    shmSize: shm === undefined ? undefined : parseShmSize(shm),
    sysctls: parseSysctls(list(a, 'sysctl')),
    oomKillDisable: bool(a, 'oom-kill-disable'),
    oomScoreAdj: int(a, 'oom-score-adj'),
    ...(logOpts.length || logDriver ? { logConfig: { type: logDriver, config: parseLogOpts(logOpts) } } : {}),
    healthcheck: healthcheck(a),
    pull: pull as CreateContainerOptions['pull'],
    platform: str(a, 'platform'),
  };
}

/** `--cidfile`: refused when the file exists (Docker's rule), checked before anything is made. */
export function checkCidfile(a: ParsedArgs): void {
  const file = str(a, 'cidfile');
  if (file && existsSync(file))
    throw new EngineError(
      'InvalidArgument',
      `--cidfile ${file}: the container ID file exists, make sure the other container isn't running or delete ${file}`,
    );
}

/** Writes the container's id to the `--cidfile` (created exclusively: a racing run fails). */
export function writeCidfile(a: ParsedArgs, id: string): void {
  const file = str(a, 'cidfile');
  if (!file) return;
  try {
    writeFileSync(file, id, { flag: 'wx', mode: 0o644 });
  } catch (e) {
    throw new EngineError('InvalidArgument', `--cidfile ${file}: ${(e as Error).message}`);
  }
}

/**
 * What the user sees of a pull that create starts (a missing image): on a terminal, Docker's
 * lines and bars on stderr; in a pipe nothing. `finish` ends the display (call it once).
 */
export function pullDisplay(): { options: Partial<CreateContainerOptions>; finish: () => void } {
  // isatty first: process.stderr is made only for a terminal (see attach.ts's consoleSize).
  if (!isatty(2) || !process.stderr.isTTY) return { options: {}, finish: () => {} };
  const progress = createProgressRenderer(process.stderr);
  let pulled = false;
  return {
    options: {
      onPullStart: (ref) => {
        pulled = true;
        process.stderr.write(`Unable to find image '${ref}' locally\n`);
      },
      onPullProgress: (e) => progress.update(e),
      onPullDone: (digest) => {
        pulled = false; // drawn for good here: finish() has nothing more to draw
        progress.finish();
        process.stderr.write(`Digest: ${digest}\n`);
      },
    },
    finish: () => {
      if (pulled) progress.finish();
      pulled = false;
    },
  };
}
