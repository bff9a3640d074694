// The repository owns its design: docs/architecture.md names the file of every behaviour, and
// comments point into docs/. These checks keep both true as files move: every relative link in
// the docs resolves (file, and heading for a #fragment), the behaviour table stays a real index,
// and no source comment points at a design document outside the repository.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** GitHub's heading anchor: lower case, punctuation dropped, spaces to hyphens. */
function slug(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-');
}

/** The anchors of a Markdown file's headings (fenced code skipped; repeated headings get -1, -2, …). */
function anchorsOf(file: string): Set<string> {
  const out = new Set<string>();
  const seen = new Map<string, number>();
  let fenced = false;
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (line.startsWith('```')) fenced = !fenced;
    const m = fenced ? null : /^#{1,6}\s+(.*)$/.exec(line);
    if (!m) continue;
    const base = slug(m[1] ?? '');
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    out.add(n === 0 ? base : `${base}-${n}`);
  }
  return out;
}

/** Relative link targets `[text](target)` of a Markdown file, outside fenced code. */
function linksOf(file: string): string[] {
  const out: string[] = [];
  let fenced = false;
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (line.startsWith('```')) fenced = !fenced;
    if (fenced) continue;
    for (const m of line.matchAll(/\]\(([^)\s]+)\)/g)) {
      const target = m[1] ?? '';
      if (!/^[a-z][a-z0-9+.-]*:/i.test(target)) out.push(target);
    }
  }
  return out;
}

/** Why `target`, linked from `from`, does not resolve; undefined when it does. */
function brokenLink(from: string, target: string): string | undefined {
  const [path = '', fragment] = target.split('#');
  const file = path === '' ? from : resolve(dirname(from), path);
  if (!existsSync(file)) return `${target}: no such file`;
  if (fragment === undefined || fragment === '') return undefined;
  if (!file.endsWith('.md') || statSync(file).isDirectory()) return `${target}: a fragment into a non-Markdown file`;
  return anchorsOf(file).has(fragment) ? undefined : `${target}: no heading #${fragment} in ${relative(ROOT, file)}`;
}

const markdown = [
  'README.md',
  ...readdirSync(join(ROOT, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .map((f) => `docs/${f}`),
];

test('slug() makes GitHub anchors', () => {
  assert.equal(slug('Resume, long-poll and the live stream (edge)'), 'resume-long-poll-and-the-live-stream-edge');
  assert.equal(slug('Browser client (`@cyclone-sse/client`, `/client.js`)'), 'browser-client-cyclone-sseclient-clientjs');
  assert.equal(slug('Priming id'), 'priming-id');
});

test('brokenLink() notices a missing file and a missing heading', () => {
  const from = join(ROOT, 'docs', 'architecture.md');
  assert.equal(brokenLink(from, 'protocol.md#priming-id'), undefined);
  assert.match(brokenLink(from, 'protocol.md#no-such-heading') ?? '', /no heading/);
  assert.match(brokenLink(from, '../packages/common/src/no-such-file.ts') ?? '', /no such file/);
});

for (const doc of markdown) {
  test(`every relative link in ${doc} resolves (file and heading)`, () => {
    const from = join(ROOT, doc);
    const broken = linksOf(from).flatMap((t) => brokenLink(from, t) ?? []);
    assert.deepEqual(broken, []);
  });
}

test('docs/architecture.md ends with a behaviour → file table of at least 30 rows, each linking a file', () => {
  const text = readFileSync(join(ROOT, 'docs', 'architecture.md'), 'utf8');
  const at = text.indexOf('## Where things live');
  assert.ok(at > 0, 'section "Where things live"');
  const rows = text
    .slice(at)
    .split('\n')
    .filter((l) => l.startsWith('| ') && !l.startsWith('| behaviour') && !l.startsWith('| ---'));
  assert.ok(rows.length >= 30, `${rows.length} rows`);
  for (const row of rows) assert.match(row, /\]\(\.\.\/[^)]+\)/, `row links a file: ${row}`);
});

/** Source, test and tooling files whose comments may point into docs/. */
function codeFiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    if (e.name === 'node_modules' || e.name === 'dist' || e.name.startsWith('.')) return [];
    const p = join(dir, e.name);
    if (e.isDirectory()) return codeFiles(p);
    return /\.(ts|mjs|js|sh|go)$/.test(e.name) ? [p] : [];
  });
}

const CODE = [
  ...readdirSync(join(ROOT, 'packages')).flatMap((p) => [
    ...codeFiles(join(ROOT, 'packages', p, 'src')),
    ...codeFiles(join(ROOT, 'packages', p, 'test')),
  ]),
  ...['test', 'loadtest', 'bench', 'scripts', 'deploy'].flatMap((d) => codeFiles(join(ROOT, d))),
];

test('comments point into docs/, not at a DESIGN document outside the repository', () => {
  const self = fileURLToPath(import.meta.url);
  const bad: string[] = [];
  for (const file of CODE) {
    if (file === self) continue;
    readFileSync(file, 'utf8')
      .split('\n')
      .forEach((line, i) => {
        if (/\bDESIGN\b(\s*§|:)/.test(line)) bad.push(`${relative(ROOT, file)}:${i + 1}: ${line.trim()}`);
      });
  }
  assert.deepEqual(bad, []);
});

test('every docs/<file>.md#<heading> named in code exists', () => {
  const bad: string[] = [];
  for (const file of CODE) {
    for (const m of readFileSync(file, 'utf8').matchAll(/\bdocs\/([a-z0-9-]+\.md)(#[a-z0-9-]+)?/g)) {
      const problem = brokenLink(join(ROOT, 'docs', 'x.md'), `${m[1] ?? ''}${m[2] ?? ''}`);
      if (problem) bad.push(`${relative(ROOT, file)}: ${problem}`);
    }
  }
  assert.deepEqual(bad, []);
});
