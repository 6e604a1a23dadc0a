// Memory that a long-lived process gives back. A container's keeper copies its program's
// output into the log in chunks that malloc serves; after a burst, the freed chunks stay in
// malloc's arenas (glibc returns only the free top of its main heap by itself): a keeper that
// logged 200,000 lines settled at 10 MiB private instead of 8 (engine/src/keeper-trim.ts).
import { lazy, libc } from './libc.js';

const trim = lazy(() => ({ call: libc.func('int malloc_trim(size_t pad)') }));

/**
 * glibc's malloc_trim(0): gives the free memory of every arena back to the system (the free
 * pages in the middle of the heaps too). Returns whether any was released.
 */
export function mallocTrim(): boolean {
  return trim.call(0) === 1;
}
