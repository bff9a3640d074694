#!/usr/bin/env node
// Runs every packages/*/test/*.test.ts, test/system/*.test.ts, deploy/helm/test/*.test.ts and
// loadtest/test/*.test.ts with node:test (TypeScript through tsx).
// Where a test lives: in the package whose behaviour it tests (packages/<pkg>/test; the all-in-one
// binary's own tests in packages/all-in-one/test); scenarios that span processes (several binaries,
// nginx, Chromium) in test/system. Helpers used by more than one file live in packages/testkit.
// Extra arguments are passed as file filters: `npm test -- wire resume`.
import { spawnSync } from 'node:child_process';
import { readdirSync, existsSync } from 'node:fs';
import { join } from 'node:path';

const filters = process.argv.slice(2);
const files = [];
const dirs = [
  ...readdirSync('packages').map((pkg) => join('packages', pkg, 'test')),
  join('test', 'system'),
  join('deploy', 'helm', 'test'),
  join('loadtest', 'test'),
];
for (const dir of dirs) {
  if (!existsSync(dir)) continue;
  for (const f of readdirSync(dir).sort()) {
    if (!f.endsWith('.test.ts')) continue;
    const path = join(dir, f);
    if (filters.length === 0 || filters.some((x) => path.includes(x))) files.push(path);
  }
}
if (files.length === 0) {
  console.error('no test files matched');
  process.exit(1);
}
const concurrency = process.env.TEST_CONCURRENCY ?? '3';
// Per file; the opt-in Kubernetes cluster test (CYCLONE_KUBE_TESTS=1) runs for minutes.
const timeout = process.env.TEST_TIMEOUT ?? (process.env.CYCLONE_KUBE_TESTS === '1' ? '1200000' : '180000');
const r = spawnSync(
  process.execPath,
  ['--import', 'tsx', '--test', `--test-concurrency=${concurrency}`, `--test-timeout=${timeout}`, ...files],
  { stdio: 'inherit' },
);
process.exit(r.status ?? 1);
