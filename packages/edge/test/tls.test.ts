import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { publishJson, startTestHub, waitFor } from '@cyclone-sse/testkit';

const ROOT = fileURLToPath(new URL('../../..', import.meta.url));

test('--use-ssl: an EventSource over HTTPS (verified self-signed cert) gets messages published over plain HTTP — one hub', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tls-'));
  const cert = join(dir, 'server.crt');
  const key = join(dir, 'server.key');
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      key,
      '-out',
      cert,
      '-days',
      '1',
      '-subj',
      '/CN=localhost',
      '-addext',
      'subjectAltName=DNS:localhost,IP:127.0.0.1',
    ],
    { stdio: 'ignore' },
  );
  const { hub, base } = await startTestHub(t, ['--use-ssl=1', '--ssl-port', '0', '--ssl-cert', cert, '--ssl-key', key]);
  assert.ok(hub.sslPort, 'HTTPS port bound');

  // A real EventSource (the eventsource package) in a child process that trusts only this cert.
  const script = `
    import { EventSource } from 'eventsource';
    const es = new EventSource('https://127.0.0.1:${hub.sslPort}/?channels=tls');
    es.onopen = () => console.log('OPEN');
    es.onmessage = (e) => { console.log('MSG ' + e.lastEventId + ' ' + e.data); es.close(); process.exit(0); };
    es.onerror = (e) => console.log('ERR ' + (e.message ?? ''));
    setTimeout(() => process.exit(3), 15000);
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
    cwd: ROOT,
    env: { ...process.env, NODE_EXTRA_CA_CERTS: cert },
  });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((r) => child.on('exit', r));
  t.after(() => child.kill());
  await waitFor(() => out.includes('OPEN'), 10_000, `HTTPS EventSource open (${out})`);
  const id = ((await publishJson(base, { channel: 'tls', data: 'secure' })).json as { ids: string[] }).ids[0];
  assert.equal(await exited, 0, out);
  assert.match(out, new RegExp(`MSG ${id} secure`));
  assert.doesNotMatch(out, /ERR/);
});

test('--use-ssl with a missing certificate fails to start with a clear message', async () => {
  const r = spawn(
    process.execPath,
    [
      join(ROOT, 'packages/all-in-one/dist/main.js'),
      '--port',
      '0',
      '--metrics-port',
      '-1',
      '--use-ssl=1',
      '--ssl-cert',
      '/nonexistent.crt',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let err = '';
  r.stderr.on('data', (d) => (err += d));
  const code = await new Promise<number | null>((res) => r.on('exit', res));
  assert.equal(code, 1);
  assert.match(err, /--use-ssl: cannot read \/nonexistent\.crt/);
});
