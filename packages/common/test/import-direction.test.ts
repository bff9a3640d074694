// Which workspace package may import which. Scans every packages/*/src/**/*.ts (static imports and
// re-exports, `import type`, side-effect imports, dynamic `import()`, `require()` and
// `require.resolve()` with a literal specifier, and relative paths that leave the package) and
// checks each package's manifest dependencies and tsconfig references against the same table:
//
//   edge ↛ publisher, publisher ↛ edge      the edge process does not load amqplib, the publisher no uWS SSE hub
//   common ↛ any other workspace           everything builds on it
//   nothing in src/ ↛ testkit              testkit is for tests only (it is not in the image)
//   only all-in-one imports edge and publisher together
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const PACKAGES = join(ROOT, 'packages');

/** Workspace packages (directory names under packages/) each package's src/ may import. */
const ALLOWED: Record<string, readonly string[]> = {
  common: [],
  client: [],
  publisher: ['common'],
  edge: ['common', 'client'],
  'all-in-one': ['common', 'client', 'edge', 'publisher'],
  // spawns every binary for the tests; nothing imports it from src/
  testkit: ['common', 'client', 'edge', 'publisher', 'all-in-one'],
};

interface ImportSite {
  specifier: string;
  line: number;
}

/** Module specifiers a TypeScript source names (comments ignored), with their 1-based line. */
function importsOf(source: string): ImportSite[] {
  // blank out comments, keeping offsets (and so line numbers) intact; '//' inside a string such as
  // 'http://x' is left alone by only treating '//' at a line start or after whitespace/;{}, as a comment
  const text = source
    .replace(/\/\*[\s\S]*?\*\//g, (c) => c.replace(/[^\n]/g, ' '))
    .replace(/(^|[\s;{}(),])\/\/[^\n]*/g, (c, lead: string) => lead + ' '.repeat(c.length - lead.length));
  const patterns = [
    /\b(?:import|export)\s+(?:type\s+)?[^'";]*?\bfrom\s*['"]([^'"]+)['"]/g, // import x from 'm', export { x } from 'm'
    /\bimport\s*['"]([^'"]+)['"]/g, // import 'm'
    /\bimport\s*\(\s*['"]([^'"]+)['"]\s*[,)]/g, // import('m')
    /\brequire(?:\.resolve)?\s*\(\s*['"]([^'"]+)['"]\s*[,)]/g, // require('m'), require.resolve('m')
  ];
  const out: ImportSite[] = [];
  for (const re of patterns) {
    for (const m of text.matchAll(re)) {
      const specifier = m[1] ?? '';
      const at = m.index + m[0].lastIndexOf(specifier); // the specifier's line, not the import keyword's
      out.push({ specifier, line: text.slice(0, at).split('\n').length });
    }
  }
  return out.sort((a, b) => a.line - b.line);
}

/** The workspace package (directory name) a specifier in `file` refers to, if any. */
function targetPackage(file: string, specifier: string): string | undefined {
  const scoped = /^@cyclone-sse\/([a-z0-9-]+)/.exec(specifier);
  if (scoped) return packageDirOf(scoped[1] ?? '');
  if (!specifier.startsWith('.')) return undefined;
  const target = resolve(dirname(file), specifier);
  const rel = relative(PACKAGES, target);
  if (rel.startsWith('..')) return undefined;
  return rel.split(sep)[0];
}

/** packages/<dir> whose manifest is named @cyclone-sse/<name> (they are equal today; the map keeps it honest). */
function packageDirOf(name: string): string {
  return manifests.get(`@cyclone-sse/${name}`) ?? `unknown package @cyclone-sse/${name}`;
}

const packageDirs = readdirSync(PACKAGES, { withFileTypes: true })
  .filter((e) => e.isDirectory() && existsSync(join(PACKAGES, e.name, 'package.json')))
  .map((e) => e.name);
const manifests = new Map<string, string>(
  packageDirs.map((d) => [(JSON.parse(readFileSync(join(PACKAGES, d, 'package.json'), 'utf8')) as { name: string }).name, d]),
);

function tsFiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? tsFiles(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

/** Every import in packages/*\/src that crosses into a package its owner may not import. */
function violations(): string[] {
  const out: string[] = [];
  for (const owner of packageDirs) {
    const allowed = ALLOWED[owner];
    if (!allowed) {
      out.push(`packages/${owner}: not in the ALLOWED table of import-direction.test.ts (say what it may import)`);
      continue;
    }
    for (const file of tsFiles(join(PACKAGES, owner, 'src'))) {
      for (const { specifier, line } of importsOf(readFileSync(file, 'utf8'))) {
        const target = targetPackage(file, specifier);
        if (target === undefined || target === owner || allowed.includes(target)) continue;
        out.push(`${relative(ROOT, file)}:${line} imports '${specifier}' (${owner} may import only: ${allowed.join(', ') || 'nothing'})`);
      }
    }
  }
  return out;
}

test('the ALLOWED table encodes the rules (it cannot be loosened quietly)', () => {
  assert.deepEqual(ALLOWED.common, [], 'common imports no other workspace');
  assert.ok(!ALLOWED.edge?.includes('publisher'), 'edge ↛ publisher');
  assert.ok(!ALLOWED.publisher?.includes('edge'), 'publisher ↛ edge');
  for (const [owner, list] of Object.entries(ALLOWED)) {
    if (owner !== 'testkit') assert.ok(!list.includes('testkit'), `${owner} ↛ testkit`);
    if (owner !== 'all-in-one' && owner !== 'testkit') {
      assert.ok(!(list.includes('edge') && list.includes('publisher')), `only all-in-one imports edge and publisher: ${owner}`);
      assert.ok(!list.includes('all-in-one'), `${owner} ↛ all-in-one`);
    }
  }
});

test('the scanner sees every form of import (and not comments)', () => {
  const file = join(PACKAGES, 'edge', 'src', 'x.ts');
  const src = [
    "import { a } from '@cyclone-sse/publisher';", // 1
    'import type {', // 2
    '  B,', // 3
    "} from '@cyclone-sse/publisher/x';", // 4
    "export * from '../../publisher/src/parse.js';", // 5
    "const m = await import('@cyclone-sse/testkit');", // 6
    "require.resolve('@cyclone-sse/client/package.json');", // 7
    "import '@cyclone-sse/edge';", // 8
    "// import { z } from '@cyclone-sse/publisher';", // 9
    "/* import { z } from '@cyclone-sse/publisher'; */", // 10
    "const url = 'http://example.com'; import { c } from './c.js';", // 11
  ].join('\n');
  const found = importsOf(src).map((s) => `${s.line} ${s.specifier} -> ${targetPackage(file, s.specifier) ?? '-'}`);
  assert.deepEqual(found, [
    '1 @cyclone-sse/publisher -> publisher',
    '4 @cyclone-sse/publisher/x -> publisher',
    '5 ../../publisher/src/parse.js -> publisher',
    '6 @cyclone-sse/testkit -> testkit',
    '7 @cyclone-sse/client/package.json -> client',
    '8 @cyclone-sse/edge -> edge',
    '11 ./c.js -> edge',
  ]);
});

test('imports in packages/*/src follow the direction (edge ↛ publisher, publisher ↛ edge, common ↛ others, src ↛ testkit)', () => {
  assert.deepEqual(violations(), []);
});

test('manifest dependencies and tsconfig references follow the same direction', () => {
  const bad: string[] = [];
  for (const owner of packageDirs) {
    const allowed = ALLOWED[owner] ?? [];
    const m = JSON.parse(readFileSync(join(PACKAGES, owner, 'package.json'), 'utf8')) as { dependencies?: Record<string, string> };
    for (const dep of Object.keys(m.dependencies ?? {})) {
      const dir = manifests.get(dep);
      if (dir !== undefined && dir !== owner && !allowed.includes(dir)) bad.push(`packages/${owner}/package.json depends on ${dep}`);
    }
    const tsconfig = join(PACKAGES, owner, 'tsconfig.json');
    if (!existsSync(tsconfig)) continue;
    const refs = (JSON.parse(readFileSync(tsconfig, 'utf8')) as { references?: { path: string }[] }).references ?? [];
    for (const r of refs) {
      const dir = relative(PACKAGES, resolve(PACKAGES, owner, r.path)).split(sep)[0] ?? '';
      if (dir !== owner && !allowed.includes(dir)) bad.push(`packages/${owner}/tsconfig.json references ${r.path}`);
    }
  }
  assert.deepEqual(bad, []);
});
