import type { ImageConfig } from './types.js';

/**
 * Tools written in Go (skopeo, docker, containerd) re-encode configs with their struct's
 * field order and RFC 3339 times without trailing zeros. Configs made here use the same
 * form, so a conversion by such a tool keeps the bytes and therefore the image ID.
 */
const ORDER: Record<string, string[]> = {
  image: [
    'created',
    'author',
    'architecture',
    'variant',
    'os',
    'os.version',
    'os.features',
    'config',
    'rootfs',
    'history',
  ],
  config: [
    'User',
    'ExposedPorts',
    'Env',
    'Entrypoint',
    'Cmd',
    'Volumes',
    'WorkingDir',
    'Labels',
    'StopSignal',
    'ArgsEscaped',
  ],
  rootfs: ['type', 'diff_ids'],
  history: ['created', 'created_by', 'author', 'comment', 'empty_layer'],
};

/** Go's `omitempty`: no empty strings, false, null, empty lists or maps. */
function isEmpty(v: unknown): boolean {
  if (v === undefined || v === null || v === '' || v === false) return true;
  if (Array.isArray(v)) return v.length === 0;
  return typeof v === 'object' && Object.keys(v as object).length === 0;
}

function ordered(obj: Record<string, unknown>, keys: string[], omitEmpty = false): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const keep = (k: string) => obj[k] !== undefined && !(omitEmpty && isEmpty(obj[k]));
  for (const k of keys) if (keep(k)) out[k] = obj[k];
  for (const k of Object.keys(obj)) if (!(k in out) && keep(k)) out[k] = obj[k];
  return out;
}

/** An RFC 3339 time as Go prints it: no fractional part when it is zero. */
export function goTime(date: Date | string): string {
  const iso = typeof date === 'string' ? date : date.toISOString();
  return iso.replace(/(\.\d*?)0+Z$/, '$1Z').replace(/\.Z$/, 'Z');
}

/** The config's JSON in Go's field order. */
export function canonicalConfigJson(config: ImageConfig): string {
  const c = ordered(config as Record<string, unknown>, ORDER.image);
  if (typeof c.created === 'string') c.created = goTime(c.created);
  if (c.config) c.config = ordered(c.config as Record<string, unknown>, ORDER.config, true);
  if (c.rootfs) c.rootfs = ordered(c.rootfs as Record<string, unknown>, ORDER.rootfs);
  if (Array.isArray(c.history)) {
    c.history = c.history.map((h: Record<string, unknown>) => {
      const o = ordered(h, ORDER.history, true);
      if (typeof o.created === 'string') o.created = goTime(o.created);
      return o;
    });
  }
  return JSON.stringify(c);
}
