// A .cpuprofile summed up: self time by function and by kind (idle, GC, corral's code, Node's
// own). `kindOf` sorts a call frame into a kind; `where` shortens its file for the listing.
const round = (ms) => Math.round(ms * 10) / 10;

/** corral's package (packages/X, apps/X) as a kind, else Node's builtins and the rest. */
export function packageKind(f) {
  if (/\/(packages|apps)\//.test(f.url))
    return `corral: ${f.url.replace(/^.*\/(packages|apps)\/([^/]+)\/.*$/, '$2')}`;
  return f.url.startsWith('node:') || !f.url ? 'node (builtins, native)' : 'other';
}

export function profileSummary(
  p,
  {
    kindOf = packageKind,
    where = (url) => url.replace(/^.*\/(packages|apps)\//, ''),
    kinds: nKinds = 10,
    functions: nFns = 15,
  } = {},
) {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map();
  for (const [i, id] of p.samples.entries())
    self.set(id, (self.get(id) ?? 0) + (p.timeDeltas[i] ?? 0) / 1000);
  const fns = new Map();
  const kinds = new Map();
  for (const [id, ms] of self) {
    const f = byId.get(id).callFrame;
    const file = f.url ? where(f.url).replace(/^node:/, '') : '';
    const key = `${f.functionName || '(top level)'}${file ? ` ${file}:${f.lineNumber + 1}` : ''}`;
    fns.set(key, (fns.get(key) ?? 0) + ms);
    const kind = /^\((idle|program|garbage collector)\)$/.test(f.functionName) ? f.functionName : kindOf(f);
    kinds.set(kind, (kinds.get(kind) ?? 0) + ms);
  }
  const top = (m, n) =>
    [...m]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([name, ms]) => ({ name, ms: round(ms) }));
  const total = [...self.values()].reduce((a, b) => a + b, 0);
  return { sampledMs: Math.round(total), kinds: top(kinds, nKinds), functions: top(fns, nFns) };
}
