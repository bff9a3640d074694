// A fresh clone: one `npm ci` links the three bins (committed shims in packages/*/bin that load
// dist/), `npx cyclone-sse --help` & co. run the local workspace (never the registry), and every
// way of starting a binary runs with its component's V8 flags (V8_FLAGS_BY_COMPONENT) — the shims'
// shebang, `node bin/x.js` (re-exec), the image's CMD, `npm run bench` and testkit's spawnNode all
// name the same flags (the Helm chart's args: deploy/helm/test/chart.test.ts).
//
// Clones the repository's HEAD (committed state) into a temporary folder; `npm ci --prefer-offline`
// takes the packages from the npm cache when they are there.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { V8_FLAGS_BY_COMPONENT, type Component } from '@cyclone-sse/common';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const BINS = {
  'cyclone-sse': 'packages/all-in-one/bin/cyclone-sse.js',
  'cyclone-sse-edge': 'packages/edge/bin/cyclone-sse-edge.js',
  'cyclone-sse-publisher': 'packages/publisher/bin/cyclone-sse-publisher.js',
} as const;
const COMPONENT: Record<keyof typeof BINS, Component> = {
  'cyclone-sse': 'all-in-one',
  'cyclone-sse-edge': 'edge',
  'cyclone-sse-publisher': 'publisher',
};
const ALL_IN_ONE = V8_FLAGS_BY_COMPONENT['all-in-one'];

/** The node command line (argv) of a running process. */
function cmdline(pid: number): string[] {
  return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
}

/** Starts a binary on free ports, waits for its banner, returns the argv of the process serving. */
async function startAndInspect(cmd: string, args: string[], cwd: string): Promise<{ argv: string[]; code: number | null }> {
  const child = spawn(cmd, [...args, '--port', '0', '--metrics-port', '-1', '--drain-seconds', '0'], {
    cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stderr.on('data', (d) => (err += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const killer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (d) => {
      out += d;
      if (/is running on/.test(out)) resolve();
    });
    void exited.then((code) => reject(new Error(`exited ${code}: ${err}`)));
  });
  // the serving process: the child itself, or (re-exec) its only child
  const kids = readFileSync(`/proc/${child.pid}/task/${child.pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  const argv = kids.length === 1 ? cmdline(kids[0]!) : cmdline(child.pid!);
  child.kill('SIGTERM');
  const code = await exited;
  clearTimeout(killer);
  return { argv, code };
}

test('the shims, the image, the bench and spawnNode name the same V8 flags (V8_FLAGS_BY_COMPONENT)', () => {
  for (const [name, shim] of Object.entries(BINS) as [keyof typeof BINS, string][]) {
    const text = readFileSync(join(ROOT, shim), 'utf8');
    const component = COMPONENT[name];
    assert.equal(text.split('\n')[0], `#!/usr/bin/env -S node ${V8_FLAGS_BY_COMPONENT[component].join(' ')}`, shim);
    assert.ok(text.includes(`await launch(entry, '${component}');`), `${shim} re-runs with the ${component} flags`);
  }
  // the edge keeps the small young generation (memory per connection); the publisher does not
  assert.notDeepEqual(V8_FLAGS_BY_COMPONENT.publisher, V8_FLAGS_BY_COMPONENT.edge);
  const docker = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
  const cmd = /^CMD (\[.*\])$/m.exec(docker);
  assert.ok(cmd, 'Dockerfile CMD');
  assert.deepEqual((JSON.parse(cmd[1]!) as string[]).slice(0, 2 + ALL_IN_ONE.length), ['node', ...ALL_IN_ONE, BINS['cyclone-sse']]);
  assert.doesNotMatch(docker, /^ENV NODE_OPTIONS/m, 'one NODE_OPTIONS would give every component the same flags');
  const root = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
  assert.match(root.scripts.start!, /&& packages\/all-in-one\/bin\/cyclone-sse\.js$/, 'npm start runs the shim (shebang flags)');
  const testkit = readFileSync(join(ROOT, 'packages/testkit/src/process.ts'), 'utf8');
  assert.match(testkit, /\[\.\.\.V8_FLAGS_BY_COMPONENT\[which\], binPath\(which\)/);
  for (const bench of ['bench/servers.mjs', 'bench/publisher-throughput.mjs']) {
    assert.match(readFileSync(join(ROOT, bench), 'utf8'), /V8_FLAGS_BY_COMPONENT\.publisher/, `${bench} runs the publisher with its flags`);
  }
});

test('fresh clone: one npm ci links all three bins and each --help runs', { timeout: 420_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cyclone-sse-clone-'));
  try {
    const clone = spawnSync('git', ['clone', '--quiet', '--no-hardlinks', ROOT, join(dir, 'repo')], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(clone.status, 0, clone.stderr);
    const repo = join(dir, 'repo');
    const ci = spawnSync('npm', ['ci', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error'], {
      cwd: repo,
      encoding: 'utf8',
      timeout: 360_000,
      env: { ...process.env, npm_config_update_notifier: 'false' },
    });
    assert.equal(ci.status, 0, `npm ci: ${ci.stdout}\n${ci.stderr}`);
    for (const [name, shim] of Object.entries(BINS)) {
      const link = readlinkSync(join(repo, 'node_modules/.bin', name));
      assert.ok(link.endsWith(shim.replace(/^packages\/([\w-]+)\//, '@cyclone-sse/$1/')), `${name} -> ${link}`);
      // --no-install: a missing link must fail here, not fetch a package of that name
      const help = spawnSync('npx', ['--no-install', name, '--help'], { cwd: repo, encoding: 'utf8', timeout: 30_000 });
      assert.equal(help.status, 0, `npx ${name} --help: ${help.stderr}`);
      assert.match(help.stdout, new RegExp(`^${name} \\[options\\]`), name);
      assert.match(help.stdout, /--port/);
    }
    // the linked bin runs with the flags in the process itself (shebang: no second process)
    const viaBin = await startAndInspect(join(repo, 'node_modules/.bin/cyclone-sse'), [], repo);
    assert.equal(viaBin.code, 0);
    for (const f of ALL_IN_ONE) assert.ok(viaBin.argv.includes(f), `${f} in ${viaBin.argv.join(' ')}`);
    // `node bin/x.js` ignores the shebang: the shim re-runs the entry with the flags, SIGTERM forwarded
    const viaNode = await startAndInspect(process.execPath, [join(repo, BINS['cyclone-sse'])], repo);
    assert.equal(viaNode.code, 0, 'exit status of the child passed through');
    for (const f of ALL_IN_ONE) assert.ok(viaNode.argv.includes(f), `${f} in ${viaNode.argv.join(' ')}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
