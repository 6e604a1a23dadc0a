// Runs one conformance case's operations in a process of its own:
//   node child.js CASE_NAME ROOT
// and prints {"result": ..., "error": null | "ECODE"} as JSON on stdout.
import { CASES } from './cases-more.js';

const [name, root] = process.argv.slice(2);
const c = CASES.find((x) => x.name === name);
let out: { result: unknown; error: string | null };
if (!c) out = { result: null, error: `no case called ${name}` };
else {
  try {
    out = { result: (await c.run(root)) ?? null, error: null };
  } catch (e) {
    out = { result: null, error: (e as NodeJS.ErrnoException).code ?? String(e) };
  }
}
process.stdout.write(`${JSON.stringify(out)}\n`);
