import { UnionFsError } from './errors.js';
import { OverlayUnionFs } from './overlay/index.js';
import type { BackendName, UnionFs } from './types.js';

const factories = new Map<string, () => UnionFs>([['overlay', () => new OverlayUnionFs()]]);

/** Backends that are planned but not built yet: asking for them is a clear error. */
const planned: Record<string, string> = {
  fuse: 'the fuse backend is not available yet (it comes in its own issue): use --backend overlay',
};

/** Adds (or replaces) a backend under `name`; for backends living in their own package. */
export function registerUnionFs(name: BackendName, factory: () => UnionFs): void {
  factories.set(name, factory);
}

/** The names of the backends that can be used now. */
export function unionFsBackends(): string[] {
  return [...factories.keys()];
}

/** The backend called `name` (`overlay`, later `fuse`). */
export function getUnionFs(name: string = 'overlay'): UnionFs {
  const make = factories.get(name);
  if (make) return make();
  if (planned[name]) throw new UnionFsError('BACKEND_UNAVAILABLE', planned[name]);
  throw new UnionFsError(
    'UNKNOWN_BACKEND',
    `unknown union backend "${name}": choose one of ${[...factories.keys(), ...Object.keys(planned)].join(', ')}`,
  );
}
