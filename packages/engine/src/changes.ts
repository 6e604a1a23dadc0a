// Dockerfile instructions that change an image's config (docker commit --change, docker
// import --change): one parser for the CLI and corrald. Each change is one instruction:
// CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, STOPSIGNAL, USER, VOLUME or WORKDIR, as Docker takes.
import { posix } from 'node:path';
import type { ContainerConfig, ImageStore } from '@corral/image';
import { EngineError } from './errors.js';

const ALLOWED = ['CMD', 'ENTRYPOINT', 'ENV', 'EXPOSE', 'LABEL', 'STOPSIGNAL', 'USER', 'VOLUME', 'WORKDIR'];

function invalid(change: string, why: string): EngineError {
  return new EngineError('InvalidArgument', `invalid change "${change}": ${why}`);
}

/** A JSON array of strings (the exec form), or undefined when `rest` is not one. */
function jsonForm(rest: string): string[] | undefined {
  if (!rest.startsWith('[')) return undefined;
  try {
    const v = JSON.parse(rest);
    if (Array.isArray(v) && v.every((x) => typeof x === 'string')) return v;
  } catch {
    // not JSON: Docker then takes the shell form
  }
  return undefined;
}

/**
 * Splits words as the Dockerfile does for ENV, LABEL, EXPOSE and VOLUME: on blanks, with
 * double and single quotes and backslash escapes (quotes removed).
 */
export function splitWords(text: string, change = text): string[] {
  const words: string[] = [];
  let cur = '';
  let inWord = false;
  let quote: '"' | "'" | null = null;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (quote) {
      if (ch === quote) quote = null;
      else if (ch === '\\' && quote === '"' && i + 1 < text.length) {
        cur += text[i + 1] === '$' ? '\\$' : text[i + 1];
        i++;
      } else cur += ch;
    } else if (ch === '"' || ch === "'") {
      quote = ch;
      inWord = true;
    } else if (ch === '\\' && i + 1 < text.length) {
      // An escaped $ stays escaped for the substitution that follows (which unescapes it).
      cur += text[i + 1] === '$' ? '\\$' : text[i + 1];
      i++;
      inWord = true;
    } else if (/\s/.test(ch)) {
      if (inWord) words.push(cur);
      cur = '';
      inWord = false;
    } else {
      cur += ch;
      inWord = true;
    }
  }
  if (quote) throw invalid(change, `unterminated ${quote} quote`);
  if (inWord) words.push(cur);
  return words;
}

/** KEY=VALUE pairs (or the old `KEY VALUE` form with one pair) of ENV and LABEL. */
function pairs(rest: string, change: string): [string, string][] {
  const words = splitWords(rest, change);
  if (!words.length) throw invalid(change, 'it needs at least one argument');
  if (!words[0]!.includes('=')) {
    // ENV KEY value with spaces: the first word is the key, the rest (as written) the value.
    const m = /^\s*(\S+)\s+(.*)$/s.exec(rest);
    if (!m) throw invalid(change, 'it needs a value');
    return [[m[1]!, m[2]!.trim()]];
  }
  return words.map((w) => {
    const eq = w.indexOf('=');
    if (eq <= 0) throw invalid(change, `"${w}" is not KEY=VALUE`);
    return [w.slice(0, eq), w.slice(eq + 1)];
  });
}

/** `$VAR` and `${VAR}` from the config's Env so far (Docker substitutes in ENV, WORKDIR, ...). */
function substitute(text: string, env: string[]): string {
  const lookup = (k: string) => {
    for (let i = env.length - 1; i >= 0; i--)
      if (env[i]!.startsWith(`${k}=`)) return env[i]!.slice(k.length + 1);
    return '';
  };
  return text.replace(/\\\$|\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)/g, (m, a, b) =>
    m === '\\$' ? '$' : lookup(a ?? b),
  );
}

/** The exec form as given, or the shell form run by /bin/sh -c. */
function command(rest: string): string[] {
  return jsonForm(rest) ?? ['/bin/sh', '-c', rest];
}

function port(spec: string, change: string): string[] {
  const m = /^(\d+)(?:-(\d+))?(?:\/(tcp|udp|sctp))?$/i.exec(spec);
  if (!m) throw invalid(change, `invalid port "${spec}": PORT[-END][/PROTO]`);
  const first = Number(m[1]);
  const last = m[2] === undefined ? first : Number(m[2]);
  if (first < 1 || last > 65535 || last < first) throw invalid(change, `invalid port range "${spec}"`);
  const proto = (m[3] ?? 'tcp').toLowerCase();
  return Array.from({ length: last - first + 1 }, (_, i) => `${first + i}/${proto}`);
}

/**
 * Applies Docker's commit/import changes to an image config (returns a new one; the input is
 * left as it was). Bad input (an unknown or unsupported instruction, a malformed argument)
 * is an InvalidArgument naming the change.
 */
export function applyChanges(base: ContainerConfig, changes: readonly string[]): ContainerConfig {
  const c: ContainerConfig = structuredClone(base);
  for (const raw of changes) {
    const change = raw.trim();
    if (!change) continue;
    const m = /^(\S+)\s*(.*)$/s.exec(change)!;
    const word = m[1]!.toUpperCase();
    const rest = m[2]!.trim();
    if (!ALLOWED.includes(word))
      throw invalid(change, `${m[1]} is not a valid change command (${ALLOWED.join(', ')})`);
    const env = c.Env ?? [];
    switch (word) {
      case 'CMD':
        c.Cmd = command(rest);
        break;
      case 'ENTRYPOINT':
        c.Entrypoint = command(rest);
        break;
      case 'ENV': {
        let next = [...env];
        for (const [k, v] of pairs(rest, change)) {
          const value = substitute(v, next);
          next = [...next.filter((e) => !e.startsWith(`${k}=`)), `${k}=${value}`];
        }
        c.Env = next;
        break;
      }
      case 'LABEL':
        c.Labels = { ...(c.Labels ?? {}) };
        for (const [k, v] of pairs(rest, change)) c.Labels[substitute(k, env)] = substitute(v, env);
        break;
      case 'EXPOSE': {
        const words = splitWords(rest, change);
        if (!words.length) throw invalid(change, 'it needs at least one port');
        c.ExposedPorts = { ...(c.ExposedPorts ?? {}) };
        for (const w of words) for (const p of port(substitute(w, env), change)) c.ExposedPorts[p] = {};
        break;
      }
      case 'VOLUME': {
        const dirs = jsonForm(rest) ?? splitWords(rest, change);
        if (!dirs.length || dirs.some((d) => !d.trim())) throw invalid(change, 'it needs a path');
        c.Volumes = { ...(c.Volumes ?? {}) };
        for (const d of dirs) c.Volumes[substitute(d, env)] = {};
        break;
      }
      case 'USER':
      case 'STOPSIGNAL': {
        const v = substitute(rest, env);
        if (!v || /\s/.test(v)) throw invalid(change, 'it needs exactly one argument');
        if (word === 'USER') c.User = v;
        else c.StopSignal = v;
        break;
      }
      case 'WORKDIR': {
        const v = substitute(rest, env);
        if (!v) throw invalid(change, 'it needs a path');
        // A relative path is relative to the workdir before it, as in a Dockerfile.
        c.WorkingDir = posix.resolve(c.WorkingDir || '/', v);
        break;
      }
    }
  }
  return c;
}

/** What a container ran with (its record's config), as commit takes it over the image's. */
export interface RunConfig {
  cmd: string[];
  /** The words of `cmd` that were the entrypoint, when the record knows. */
  entrypoint?: string[];
  env: string[];
  workdir: string;
  user: string;
  labels?: Record<string, string>;
}

/**
 * Docker's commit: the new image runs as the container did. Its command is split into
 * Entrypoint and Cmd as the record says (an older record: by the image's Entrypoint, or its
 * first word when it no longer starts with it); its Env, User, Labels and a WorkingDir of its own.
 */
function fromContainer(base: ContainerConfig, run: RunConfig): ContainerConfig {
  const c: ContainerConfig = { ...base, Env: [...run.env] };
  const image = base.Entrypoint ?? [];
  const entrypoint =
    run.entrypoint ??
    (image.length <= run.cmd.length && image.every((w, i) => run.cmd[i] === w) ? image : run.cmd.slice(0, 1));
  c.Entrypoint = entrypoint.length ? [...entrypoint] : null;
  const rest = run.cmd.slice(entrypoint.length);
  c.Cmd = rest.length ? rest : null;
  if (run.user) c.User = run.user;
  if (run.labels && Object.keys(run.labels).length) c.Labels = { ...run.labels };
  if (run.workdir && run.workdir !== (base.WorkingDir || '/')) c.WorkingDir = run.workdir;
  return c;
}

/**
 * The config of an image committed from a container of `baseImage` (by id): the base's, then
 * what the container ran with (`run`), then the fields a client gave (the API's commit body),
 * then the changes. Bad changes fail before anything is read.
 */
export async function changedConfig(
  store: ImageStore,
  baseImage: string | null | undefined,
  given: ContainerConfig | undefined,
  changes: readonly string[] | undefined,
  run?: RunConfig,
): Promise<ContainerConfig | undefined> {
  if (!run && !changes?.length && !(given && Object.keys(given).length)) return undefined;
  applyChanges({}, changes ?? []);
  const image = baseImage ? (store.record(baseImage) ?? store.resolve(baseImage)) : undefined;
  const base = image ? ((await store.readConfig(image.configDigest)).config ?? {}) : {};
  return applyChanges({ ...(run ? fromContainer(base, run) : base), ...given }, changes ?? []);
}
