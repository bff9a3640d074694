// The load test's own checks: k6 + k6/x/sse builds (cached by build-k6.sh), the extension's Go
// unit tests pass, and a smoke run against a local cluster (2 edges + publisher + nginx on Redis)
// passes its thresholds with messages delivered and no gap or duplicate.
//
// Needs Go (PATH or /usr/local/go/bin), nginx and Redis on 127.0.0.1:6379 (or $REDIS_URL), and a
// built workspace (`tsc -b`; `npm test` does it). After the one-time k6 build (a few minutes,
// cached under ~/.cache/cyclone-sse), the whole file takes well under a minute.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const loadtest = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const root = resolve(loadtest, '..');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs: number }): Promise<Run> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(cmd, args, { cwd: opts.cwd ?? root, env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGINT'); // run.mjs stops its cluster on SIGINT
      setTimeout(() => child.kill('SIGKILL'), 10_000).unref();
    }, opts.timeoutMs);
    child.on('error', reject);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolvePromise({ code, stdout, stderr });
    });
  });
}

let k6 = '';

test('build-k6.sh builds (or reuses) k6 with k6/x/sse and prints its path last', { timeout: 175_000 }, async () => {
  const r = await run('bash', [join(loadtest, 'build-k6.sh')], { timeoutMs: 170_000 });
  assert.equal(r.code, 0, `build-k6.sh failed:\n${r.stderr}`);
  k6 = r.stdout.trim().split('\n').pop() ?? '';
  assert.match(k6, /\/k6-v\d+\.\d+\.\d+-[0-9a-f]{12}\/k6$/);
  const v = await run(k6, ['version'], { timeoutMs: 20_000 });
  assert.equal(v.code, 0);
  assert.match(v.stdout, /^k6 v1\.8\.1/);
  assert.match(v.stdout, /k6\/x\/sse/);
  // Cached: a second call does not build again.
  const again = await run('bash', [join(loadtest, 'build-k6.sh')], { timeoutMs: 30_000 });
  assert.equal(again.code, 0);
  assert.equal(again.stdout.trim().split('\n').pop(), k6);
  assert.match(again.stderr, /cached/);
});

test("the extension's Go unit tests pass (parser, tracker, sse.open)", { timeout: 150_000 }, async () => {
  // Compiled once by build-k6.sh --test-binary (scripts/ensure-test-deps.sh runs it before the
  // suite), so this test only runs them; `go test` here would compile within the time limit.
  const built = await run('bash', [join(loadtest, 'build-k6.sh'), '--test-binary'], { timeoutMs: 140_000 });
  assert.equal(built.code, 0, `build-k6.sh --test-binary failed:\n${built.stderr}`);
  const bin = built.stdout.trim().split('\n').pop() ?? '';
  assert.match(bin, /\/xk6-sse-test-[0-9a-f]{12}\/xk6-sse\.test$/);
  const r = await run(bin, ['-test.count=1', '-test.v'], { cwd: join(loadtest, 'xk6-sse'), timeoutMs: 60_000 });
  assert.equal(r.code, 0, `Go tests failed:\n${r.stdout}\n${r.stderr}`);
  const passed = r.stdout.match(/^--- PASS/gm)?.length ?? 0;
  assert.ok(passed >= 15, `expected at least 15 passing Go tests, got ${passed}:\n${r.stdout}`);
  assert.doesNotMatch(r.stdout, /^--- FAIL/m);
});

test('smoke run: exit 0, messages delivered, no gaps, no duplicates', { timeout: 120_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cyclone-loadtest-'));
  try {
    const summaryPath = join(dir, 'summary.json');
    const args = [join(loadtest, 'run.mjs'), '--smoke', '--summary', summaryPath];
    if (k6) args.push('--k6', k6);
    const r = await run(process.execPath, args, { timeoutMs: 100_000 });
    assert.equal(r.code, 0, `smoke run failed (exit ${r.code}):\n${r.stdout}\n${r.stderr}`);
    const s = JSON.parse(readFileSync(summaryPath, 'utf8')) as {
      ok: boolean;
      streams: number;
      messages: number;
      gaps: number;
      duplicates: number;
      reorders: number;
      publishes: number;
      deliveryRatio: number;
      latencyMs: Record<string, number>;
    };
    assert.equal(s.ok, true, JSON.stringify(s, null, 2));
    assert.ok(s.messages > 0, 'no message received');
    assert.ok(s.publishes > 0, 'nothing published');
    assert.equal(s.gaps, 0);
    assert.equal(s.duplicates, 0);
    assert.equal(s.reorders, 0);
    assert.equal(s.streams, 20);
    assert.equal(s.deliveryRatio, 1, `delivered ${s.messages} of the expected messages (ratio ${s.deliveryRatio})`);
    assert.ok(s.latencyMs['p(99)']! > 0);
    assert.match(readFileSync(join(dir, 'summary.txt'), 'utf8'), /result: PASS/);
    assert.match(r.stdout, /gaps\s+0\s+count==0 ok/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
