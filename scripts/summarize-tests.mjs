// Adds up the JSON reports that each package's vitest run wrote and prints one closing line,
// after the name and first error line of each failed test.
// A workspace package with a test script but no report, or a report with no test in it, fails
// the run: a package without tests must not pass quietly.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';

const dir = process.argv[2] ?? 'test-results';
const root = join(import.meta.dirname, '..');
let passed = 0;
let failed = 0;
let skipped = 0;
let problems = 0;
const reports = new Map();
for (const f of readdirSync(dir).filter((f) => f.endsWith('.json'))) {
  reports.set(f.replace(/\.json$/, ''), JSON.parse(readFileSync(join(dir, f), 'utf8')));
}
for (const [name, r] of reports) {
  passed += r.numPassedTests ?? 0;
  failed += r.numFailedTests ?? 0;
  skipped += (r.numPendingTests ?? 0) + (r.numTodoTests ?? 0);
  if (r.numFailedTests) {
    console.log(`failed in ${name}: ${r.numFailedTests}`);
    // The names and first error lines come last in the log, where a short tail of it still shows them.
    for (const file of r.testResults ?? []) {
      for (const t of file.assertionResults ?? []) {
        if (t.status !== 'failed') continue;
        const why = String(t.failureMessages?.[0] ?? '')
          .split('\n')[0]
          .slice(0, 300);
        console.log(`  ${basename(file.name)} > ${t.fullName}: ${why}`);
      }
    }
  }
  if (!r.numTotalTests) {
    console.log(`no test ran in ${name}`);
    problems++;
  }
}
// Each package's test script names its report: --outputFile.json=.../test-results/NAME.json.
for (const group of ['packages', 'apps', '.']) {
  const folders = group === '.' ? ['test-e2e'] : readdirSync(join(root, group)).map((d) => join(group, d));
  for (const folder of folders) {
    const manifest = join(root, folder, 'package.json');
    if (!existsSync(manifest)) continue;
    const script = JSON.parse(readFileSync(manifest, 'utf8')).scripts?.test;
    const report = /--outputFile\.json=(\S+)/.exec(script ?? '')?.[1];
    if (!script) continue;
    if (!report) {
      console.log(`${folder}: its test script writes no JSON report (--outputFile.json=...)`);
      problems++;
    } else if (!reports.has(basename(report, '.json'))) {
      console.log(`${folder}: no test report (${basename(report)}): its tests did not run`);
      problems++;
    }
  }
}
if (passed + failed === 0) {
  console.log('no test ran');
  process.exit(1);
}
console.log(`tests: ${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(failed || problems ? 1 : 0);
