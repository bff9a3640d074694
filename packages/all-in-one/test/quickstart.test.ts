// The README's first command: `npm start` (flags passed through, here a free port) serves a
// stream that gets a published message, in a process started with the shipped V8 flags. CI runs it
// on Node 20 (Debian 12) and on Node 24 in the Debian 13 root after that root's `npm ci`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { V8_FLAGS_BY_COMPONENT } from '@cyclone-sse/common';
import { RawHttpClient, publishJson } from '@cyclone-sse/testkit';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

test('npm start serves the hub with the shipped V8 flags', { timeout: 120_000 }, async (t) => {
  // its own process group: npm, sh and node stop together
  const child = spawn('npm', ['start', '--silent', '--', '--port', '0', '--metrics-port', '-1', '--drain-seconds', '0'], {
    cwd: ROOT,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  t.after(() => {
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      // already gone
    }
  });
  let out = '';
  let err = '';
  child.stderr.on('data', (d) => (err += d));
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout.on('data', (d) => {
      out += d;
      const m = /cyclone-sse is running on http:\/\/127\.0\.0\.1:(\d+) \(memory broker\)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    void exited.then((code) => reject(new Error(`npm start exited ${code}: ${err}`)));
    setTimeout(() => reject(new Error(`no banner within 100 s: ${out}\n${err}`)), 100_000).unref();
  });
  const sub = await RawHttpClient.request(port, '/?channels=base');
  t.after(() => sub.close());
  await sub.until((x) => x.body.includes(':ok'));
  await publishJson(`http://127.0.0.1:${port}`, { channel: 'base', data: 'quick start' });
  await sub.until((x) => x.body.includes('data: quick start\n\n'));
  // the node process that listens: the one in npm's process group whose argv names the shim
  const pids = readFileSync('/proc/' + child.pid + '/task/' + child.pid + '/children', 'utf8')
    .trim()
    .split(/\s+/)
    .map(Number);
  const all = new Set<number>(pids);
  for (const p of pids) {
    for (const c of readFileSync(`/proc/${p}/task/${p}/children`, 'utf8').trim().split(/\s+/).filter(Boolean)) all.add(Number(c));
  }
  const argvs = [...all].map((p) => readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0').filter(Boolean));
  const hub = argvs.find((a) => a.some((x) => x.endsWith('packages/all-in-one/bin/cyclone-sse.js')));
  assert.ok(hub, JSON.stringify(argvs));
  for (const f of V8_FLAGS_BY_COMPONENT['all-in-one']) assert.ok(hub.includes(f), `${f} in ${hub.join(' ')}`);
  process.kill(-child.pid!, 'SIGTERM');
  await exited;
});
