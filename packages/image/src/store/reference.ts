import { ImageError } from '../errors.js';

/** A parsed image reference: `docker.io/library/busybox:latest` or `...@sha256:...`. */
export interface Reference {
  domain: string;
  /** Repository path, e.g. `library/busybox`. */
  path: string;
  tag?: string;
  digest?: string;
}

const DEFAULT_DOMAIN = 'docker.io';
const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const DIGEST = /^sha256:[a-f0-9]{64}$/;
const DOMAIN =
  /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]+)?$|^\[[0-9a-fA-F:]+\](?::[0-9]+)?$/;

function bad(ref: string, why: string): never {
  throw new ImageError('INVALID_REFERENCE', `invalid image reference "${ref}": ${why}`);
}

/**
 * Parses a reference with Docker's rules: a first component with a dot, a colon or
 * `localhost` is a registry, else docker.io; single names on docker.io live under `library/`.
 * A missing tag (and digest) means `latest`.
 */
export function parseReference(ref: string, options: { defaultTag?: boolean } = {}): Reference {
  if (!ref || ref.length > 4096) bad(ref, 'empty or too long');
  let rest = ref;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST.test(digest)) bad(ref, 'the digest must be sha256:<64 lowercase hex digits>');
  }
  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) bad(ref, `bad tag "${tag}" (letters, digits, _ . -, at most 128)`);
  }
  let domain = DEFAULT_DOMAIN;
  const slash = rest.indexOf('/');
  if (slash >= 0) {
    const first = rest.slice(0, slash);
    if (
      first.includes('.') ||
      first.includes(':') ||
      first === 'localhost' ||
      first !== first.toLowerCase()
    ) {
      if (!DOMAIN.test(first)) bad(ref, `bad registry "${first}"`);
      domain = first;
      rest = rest.slice(slash + 1);
    }
  }
  if (domain === 'index.docker.io') domain = DEFAULT_DOMAIN;
  if (!rest) bad(ref, 'no repository name');
  for (const c of rest.split('/')) {
    if (!COMPONENT.test(c)) bad(ref, `bad name component "${c}" (lowercase letters, digits and . _ - only)`);
  }
  if (domain === DEFAULT_DOMAIN && !rest.includes('/')) rest = `library/${rest}`;
  if (tag === undefined && digest === undefined && options.defaultTag !== false) tag = 'latest';
  return { domain, path: rest, tag, digest };
}

/** The full name: `docker.io/library/busybox:latest`. */
export function formatReference(r: Reference): string {
  let s = `${r.domain}/${r.path}`;
  if (r.tag) s += `:${r.tag}`;
  if (r.digest) s += `@${r.digest}`;
  return s;
}

/** The repository without tag or digest: `docker.io/library/busybox`. */
export function repositoryName(r: Reference): string {
  return `${r.domain}/${r.path}`;
}

/** Normalizes a user-typed name: `busybox` -> `docker.io/library/busybox:latest`. */
export function normalizeReference(ref: string): string {
  return formatReference(parseReference(ref));
}

/** The short form docker shows: `docker.io/library/busybox:latest` -> `busybox:latest`. */
export function familiarName(ref: string): string {
  const r = parseReference(ref, { defaultTag: false });
  let name = r.domain === DEFAULT_DOMAIN ? r.path.replace(/^library\//, '') : `${r.domain}/${r.path}`;
  if (r.domain === DEFAULT_DOMAIN && r.path.startsWith('library/') && r.path.slice(8).includes('/'))
    name = r.path;
  if (r.tag) name += `:${r.tag}`;
  if (r.digest) name += `@${r.digest}`;
  return name;
}
