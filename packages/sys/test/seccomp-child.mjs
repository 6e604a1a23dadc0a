// Loads a seccomp filter compiled from argv[2] (JSON; bigints as "123n") and runs raw syscalls
// under it, one JSON line per call: { ret } or { errno }. Then runs argv[3..] with execv
// when given (a program the filter is inherited by).
import { spawnSync } from 'node:child_process';
import { compileSeccomp, loadSeccompFilter, PR, prctl, syscallNumber } from '../dist/index.js';
import { koffi, libc } from '../dist/libc.js';

const syscall = libc.func(
  'int64_t syscall(int64_t nr, int64_t a, int64_t b, int64_t c, int64_t d, int64_t e, int64_t f)',
);
const spec = JSON.parse(process.argv[2], (_k, v) =>
  typeof v === 'string' && /^\d+n$/.test(v) ? BigInt(v.slice(0, -1)) : v,
);
prctl(PR.SET_NO_NEW_PRIVS, 1);
loadSeccompFilter(compileSeccomp(spec.rules, spec.defaultAction, spec.defaultErrno));
for (const [name, ...args] of spec.calls ?? []) {
  const nr = typeof name === 'number' ? name : syscallNumber(name);
  const a = [0n, 0n, 0n, 0n, 0n, 0n].map((z, i) => BigInt.asIntN(64, BigInt(args[i] ?? z)));
  const ret = syscall(nr, ...a);
  console.log(JSON.stringify(ret === -1 ? { errno: koffi.errno() } : { ret: String(ret) }));
}
if (spec.exec) {
  const r = spawnSync(spec.exec[0], spec.exec.slice(1), { encoding: 'utf8' });
  console.log(JSON.stringify({ status: r.status, signal: r.signal, stderr: r.stderr }));
}
