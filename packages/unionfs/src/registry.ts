import { UnionFsError } from './errors.js';
import { FuseUnionFs } from './fuse/backend.js';
import { OverlayUnionFs } from './overlay/index.js';
import type { BackendName, UnionFs } from './types.js';

const factories = new Map<string, () => UnionFs>([
  ['overlay', () => new OverlayUnionFs()],
  ['fuse', () => new FuseUnionFs()],
]);

/** Backends that are planned but not built yet: asking for them is a clear error. */
const planned: Record<string, string> = {};

/** Adds (or replaces) a backend under `name`; for backends living in their own package. */
export function registerUnionFs(name: BackendName, factory: () => UnionFs): void {
  factories.set(name, factory);
}

/** The names of the backends that can be used now. */
export function unionFsBackends(): string[] {
  return [...factories.keys()];
}

/** The backend called `name` (`overlay`, `fuse`, or one registered). */
export function getUnionFs(name: string = 'overlay'): UnionFs {
  const make = factories.get(name);
  if (make) return make();
  if (planned[name]) throw new UnionFsError('BACKEND_UNAVAILABLE', planned[name]);
  throw new UnionFsError(
    'UNKNOWN_BACKEND',
    `unknown union backend "${name}": choose one of ${[...factories.keys(), ...Object.keys(planned)].join(', ')}`,
  );
}
