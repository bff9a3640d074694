/**
 * The client stays small: minified (esbuild) + gzip -9 under a budget. The size is printed as a
 * test diagnostic (also `npm run size -w @cyclone-sse/client`).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { gzipSync } from 'node:zlib';
import { fileURLToPath } from 'node:url';
import { readFileSync } from 'node:fs';
import { build } from 'esbuild';

const BUDGET = 3 * 1024;

test('client: minified + gzipped size is within the budget, and it bundles with no imports', async (t) => {
  const entry = fileURLToPath(new URL('../src/index.ts', import.meta.url));
  const out = await build({
    entryPoints: [entry],
    bundle: true,
    minify: true,
    format: 'esm',
    target: 'es2022',
    write: false,
    logLevel: 'silent',
    metafile: true,
  });
  const min = out.outputFiles[0]!.contents;
  const gz = gzipSync(min, { level: 9 }).length;
  t.diagnostic(`@cyclone-sse/client: ${min.length} B minified, ${gz} B minified+gzipped`);
  assert.equal(Object.keys(out.metafile.inputs).length, 1, 'no dependencies: one input file');
  assert.ok(gz <= BUDGET, `${gz} B minified+gzipped exceeds the ${BUDGET} B budget`);
});

test('client: the built file the edge serves is one standalone ES module', () => {
  const built = readFileSync(fileURLToPath(new URL('../dist/index.js', import.meta.url)), 'utf8');
  assert.doesNotMatch(built, /^\s*import\s/m, 'no import statements');
  assert.doesNotMatch(built, /sourceMappingURL/, 'no source map reference (nothing to fetch)');
  assert.match(built, /export function connect\(/);
});
