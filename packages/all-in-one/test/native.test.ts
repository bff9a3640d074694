import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';

const BIN = fileURLToPath(new URL('../../all-in-one/dist/main.js', import.meta.url));

function run(env: NodeJS.ProcessEnv, args: string[], until?: RegExp) {
  const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  let signalled = false;
  child.stdout.on('data', (d) => {
    out += d;
    // One SIGTERM only: a second one landing while the process tears down after a clean stop
    // would kill it by signal.
    if (until && !signalled && until.test(out)) {
      signalled = true;
      child.kill('SIGTERM');
    }
  });
  child.stderr.on('data', (d) => (err += d));
  const killer = setTimeout(() => child.kill('SIGKILL'), 20_000);
  return new Promise<{ code: number | null; signal: NodeJS.Signals | null; out: string; err: string }>((resolve) => {
    child.on('exit', (code, signal) => {
      clearTimeout(killer);
      resolve({ code, signal, out, err });
    });
  });
}

test('without a native uWebSockets.js binary it refuses to start, naming the supported Node versions and glibc', async () => {
  // UWS_USE_FALLBACK=1 makes the loader skip both builds: the path a Node 22 on glibc 2.36 takes.
  const r = await run({ UWS_USE_FALLBACK: '1' }, ['--port', '0', '--metrics-port', '-1']);
  assert.notEqual(r.code, 0);
  assert.match(
    r.err,
    /native binary is not in use \(no build loads on Node\.js v\d+\.\d+\.\d+, linux x64, glibc \d+\.\d+\); refusing to start/,
  );
  assert.match(r.err, /Supported: Node\.js 20, 22 or 24 on Linux x64 with glibc >= 2\.38 .*Node\.js 20 on Linux x64 with glibc >= 2\.27/);
  assert.match(r.err, /Tried: UWS_USE_FALLBACK is set/);
  assert.doesNotMatch(r.out, /is running on/);
  assert.doesNotMatch(r.out + r.err, /Falling back|fallback implementation/, 'no JavaScript fallback was loaded');
});

test('the publisher refuses the same way', async () => {
  const publisher = fileURLToPath(new URL('../../publisher/dist/main.js', import.meta.url));
  const child = spawn(process.execPath, [publisher, '--port', '0', '--metrics-port', '-1', '--redis-url', 'redis://127.0.0.1:1'], {
    env: { ...process.env, UWS_USE_FALLBACK: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  child.stderr.on('data', (d) => (err += d));
  const [code] = (await once(child, 'exit')) as [number | null];
  assert.notEqual(code, 0);
  assert.match(err, /native binary is not in use .*Supported: Node\.js 20, 22 or 24/);
});

test('starts on the native binary and exits 0 on SIGTERM', async () => {
  const r = await run({ UWS_USE_FALLBACK: '' }, ['--port', '0', '--metrics-port', '-1', '--drain-seconds', '0'], /is running on/);
  assert.match(r.out, /cyclone-sse is running on http:\/\/127\.0\.0\.1:\d+ \(memory broker\)/);
  assert.equal(r.code, 0, `signal ${r.signal}; stderr: ${r.err}; stdout: ${r.out.slice(-2000)}`);
});
