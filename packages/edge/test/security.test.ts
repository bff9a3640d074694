import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, createHmac } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT } from 'jose';
import { httpRequest, publishJson, RawHttpClient, spawnNode, startTestHub, waitFor } from '@cyclone-sse/testkit';

const SECRET = 'test-secret-that-is-at-least-32-bytes-long!';
const enc = new TextEncoder();

async function hsToken(
  claims: Record<string, unknown>,
  opts: { secret?: string; exp?: string | number; nbf?: string | number; aud?: string } = {},
) {
  let j = new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setIssuedAt();
  if (opts.exp !== undefined) j = j.setExpirationTime(opts.exp);
  if (opts.nbf !== undefined) j = j.setNotBefore(opts.nbf);
  if (opts.aud !== undefined) j = j.setAudience(opts.aud);
  return j.sign(enc.encode(opts.secret ?? SECRET));
}

const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
const authz = (token: string) => ({ Authorization: `Bearer ${token}` });
const code = (r: { json: unknown }) => (r.json as { code: string }).code;

test('publisher JWT: channel patterns, forged, expired, not yet valid, wrong audience, alg none', async (t) => {
  const { base } = await startTestHub(t, ['--publisher-jwt-key', SECRET, '--jwt-audience', 'hub']);
  const good = await hsToken({ channels: ['news.*', 'exact'] }, { exp: '5m', aud: 'hub' });
  assert.equal((await publishJson(base, { channel: 'news.sport', data: 'x' }, authz(good))).status, 200);
  assert.equal((await publishJson(base, { channel: 'exact', data: 'x' }, authz(good))).status, 200);
  for (const ch of ['news', 'news.', 'exact2', 'other']) {
    const r = await publishJson(base, { channel: ch, data: 'x' }, authz(good));
    assert.equal(r.status, 403, `${ch}: ${r.text}`);
    assert.equal(code(r), 'FORBIDDEN');
  }
  // A batch with one forbidden channel publishes nothing.
  assert.equal(
    (
      await publishJson(
        base,
        [
          { channel: 'news.a', data: '1' },
          { channel: 'nope', data: '2' },
        ],
        authz(good),
      )
    ).status,
    403,
  );
  const cases: [string, string][] = [
    ['no token', ''],
    ['forged signature', await hsToken({ channels: ['*'] }, { secret: 'another-secret-that-is-32-bytes-long!!', exp: '5m', aud: 'hub' })],
    ['expired', await hsToken({ channels: ['*'] }, { exp: Math.floor(Date.now() / 1000) - 60, aud: 'hub' })],
    ['not yet valid', await hsToken({ channels: ['*'] }, { nbf: Math.floor(Date.now() / 1000) + 600, exp: '1h', aud: 'hub' })],
    ['wrong audience', await hsToken({ channels: ['*'] }, { exp: '5m', aud: 'other' })],
    ['alg none', `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ channels: ['*'], aud: 'hub', exp: Math.floor(Date.now() / 1000) + 60 })}.`],
  ];
  for (const [name, token] of cases) {
    const r = await publishJson(base, { channel: 'news.x', data: 'x' }, token ? authz(token) : {});
    assert.equal(r.status, 401, `${name}: ${r.text}`);
    assert.equal(code(r), 'UNAUTHORIZED');
  }
});

test('publisher JWT: HS/RS confusion is refused (the public key is never an HMAC secret)', async (t) => {
  const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const pem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
  const dir = mkdtempSync(join(tmpdir(), 'jwt-'));
  const pemFile = join(dir, 'pub.pem');
  writeFileSync(pemFile, pem);
  const { base } = await startTestHub(t, ['--publisher-jwt-key', pemFile]);
  const rs = await new SignJWT({ channels: ['*'] }).setProtectedHeader({ alg: 'RS256' }).setExpirationTime('5m').sign(privateKey);
  assert.equal((await publishJson(base, { channel: 'a', data: 'x' }, authz(rs))).status, 200);
  // Attacker signs HS256 with the (public) PEM text as the HMAC key.
  const head = b64({ alg: 'HS256', typ: 'JWT' });
  const body = b64({ channels: ['*'], exp: Math.floor(Date.now() / 1000) + 60 });
  const sig = createHmac('sha256', pem).update(`${head}.${body}`).digest('base64url');
  const r = await publishJson(base, { channel: 'a', data: 'x' }, authz(`${head}.${body}.${sig}`));
  assert.equal(r.status, 401);
});

test('shared secret and JWT together: either works; the key in the query string still works', async (t) => {
  const { base } = await startTestHub(t, ['--http-secret', 'plain-secret', '--publisher-jwt-key', SECRET]);
  assert.equal((await publishJson(base, { channel: 'a', data: 'x' }, authz('plain-secret'))).status, 200);
  assert.equal(
    (await publishJson(base, { channel: 'a', data: 'x' }, authz(await hsToken({ channels: ['a'] }, { exp: '5m' })))).status,
    200,
  );
  const q = await httpRequest(`${base}/publish?key=plain-secret`, {
    method: 'POST',
    body: 'channel=a&message=x',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
  });
  assert.equal(q.status, 200);
  assert.equal((await publishJson(base, { channel: 'a', data: 'x' }, authz('wrong'))).status, 401);
});

async function openWith(port: number, path: string, headers: Record<string, string> = {}) {
  const c = await RawHttpClient.request(port, path, { headers });
  await c.until((x) => x.head !== '' && (x.body.includes('\n\n') || x.complete), 5000, 'answer');
  return c;
}

test('subscriber tokens: private channels need one; cookie, header and query all carry it; patterns per channel', async (t) => {
  const { port } = await startTestHub(t, [
    '--subscriber-jwt-key',
    SECRET,
    '--subscriber-auth',
    'private',
    '--private-channels',
    'private-*',
  ]);
  const token = await hsToken({ channels: ['private-a*'] }, { exp: '10m' });
  const pub = await openWith(port, '/?channels=public');
  t.after(() => pub.close());
  assert.match(pub.body, /:ok/);
  const none = await openWith(port, '/?channels=public&channels=private-ab');
  assert.equal(none.status, 401);
  assert.equal(none.header('Access-Control-Allow-Origin'), '*');
  const ok = [
    await openWith(port, `/?channels=private-ab&token=${token}`),
    await openWith(port, '/?channels=private-ab', authz(token)),
    await openWith(port, '/?channels=private-ab', { Cookie: `other=1; cyclone_sse_token=${token}` }),
  ];
  t.after(() => ok.forEach((c) => c.close()));
  for (const c of ok) assert.match(c.body, /:ok/, c.text);
  const denied = await openWith(port, `/?channels=private-ab&channels=private-b&token=${token}`);
  assert.equal(denied.status, 403);
  assert.match(denied.body, /private-b/);
  const forged = await openWith(
    port,
    `/?channels=private-ab&token=${await hsToken({ channels: ['*'] }, { secret: 'x'.repeat(40), exp: '10m' })}`,
  );
  assert.equal(forged.status, 401);
});

test('an expired subscriber token gets 200 + event: token-expired + retry: (never a 401 that stops EventSource)', async (t) => {
  const { port } = await startTestHub(t, ['--subscriber-jwt-key', SECRET, '--subscriber-auth', 'all']);
  const old = await hsToken({ channels: ['*'] }, { exp: Math.floor(Date.now() / 1000) - 30 });
  const c = await openWith(port, `/?channels=a&token=${old}`);
  await c.untilComplete();
  assert.equal(c.status, 200);
  assert.equal(c.header('Content-Type'), 'text/event-stream');
  assert.match(c.body, /^event: token-expired\ndata: .*\n\nretry: \d+\n\n$/);
});

test('token expiry ends the stream with token-expired before exp; a fresh token resumes without a gap', async (t) => {
  const { port, base } = await startTestHub(t, ['--subscriber-jwt-key', SECRET, '--subscriber-auth', 'all', '--token-expiry-margin', '3']);
  const exp = Math.floor(Date.now() / 1000) + 6;
  const first = await openWith(port, `/?channels=tx&token=${await hsToken({ channels: ['tx'] }, { exp })}`);
  t.after(() => first.close());
  const ids: string[] = [];
  const publishSome = async (n: number) => {
    for (let i = 0; i < n; i++)
      ids.push(((await publishJson(base, { channel: 'tx', data: `v${ids.length}` })).json as { ids: string[] }).ids[0]!);
  };
  await publishSome(3);
  await first.untilComplete(10_000);
  const ended = Date.now();
  assert.ok(ended < exp * 1000, 'ended before exp');
  assert.equal(first.events.at(-1)!.event, 'token-expired');
  assert.match(first.body, /retry: \d+\n\n$/);
  const got = first.events.filter((e) => e.event === undefined).map((e) => e.id!);
  await publishSome(3); // while the client fetches a new token
  const again = await openWith(port, '/?channels=tx', {
    ...authz(await hsToken({ channels: ['tx'] }, { exp: '10m' })),
    'Last-Event-ID': got.at(-1)!,
  });
  t.after(() => again.close());
  await publishSome(2);
  await again.untilEvents(ids.length - got.length);
  assert.deepEqual([...got, ...again.events.map((e) => e.id!)], ids);
});

test('a token in the query string never appears in the logs', async (t) => {
  const node = await spawnNode('all-in-one', ['--log-level', 'debug', '--subscriber-jwt-key', SECRET, '--subscriber-auth', 'all']);
  t.after(() => node.stop());
  const token = await hsToken({ channels: ['a'] }, { exp: '10m' });
  const bad = await hsToken({ channels: ['a'] }, { secret: 'y'.repeat(40), exp: '10m' });
  const c = await openWith(node.port, `/?channels=a&token=${token}`);
  const d = await openWith(node.port, `/?channels=a&token=${bad}`);
  assert.equal(d.status, 401);
  await publishJson(node.base, { channel: 'a', data: 'm' });
  await c.untilEvents(1);
  c.close();
  await waitFor(() => node.output().includes('request_rejected'), 5000, 'rejection logged');
  for (const tok of [token, bad]) {
    assert.ok(!node.output().includes(tok), 'token not logged');
    assert.ok(!node.output().includes(tok.split('.')[2]!), 'signature not logged');
  }
});

test('CORS: allowlist echoes the origin with credentials and Vary; refused and null origins get nothing', async (t) => {
  const { port, base } = await startTestHub(t, ['--cors-origins', 'https://app.example', 'null']);
  const pre = await httpRequest(`${base}/publish`, {
    method: 'OPTIONS',
    headers: { Origin: 'https://app.example', 'Access-Control-Request-Method': 'POST' },
  });
  assert.equal(pre.status, 204);
  assert.equal(pre.headers.get('access-control-allow-origin'), 'https://app.example');
  assert.equal(pre.headers.get('access-control-allow-credentials'), 'true');
  assert.match(pre.headers.get('access-control-allow-methods') ?? '', /POST/);
  assert.match(pre.headers.get('vary') ?? '', /Origin/);
  const s = await openWith(port, '/?channels=c', { Origin: 'https://app.example' });
  t.after(() => s.close());
  assert.equal(s.header('Access-Control-Allow-Origin'), 'https://app.example');
  assert.equal(s.header('Access-Control-Allow-Credentials'), 'true');
  for (const origin of ['https://evil.example', 'null']) {
    const r = await openWith(port, '/?channels=c', { Origin: origin });
    assert.equal(r.header('Access-Control-Allow-Origin'), undefined, origin);
    assert.equal(r.header('Access-Control-Allow-Credentials'), undefined, origin);
    r.close();
  }
  const err = await openWith(port, '/?channels=', { Origin: 'https://app.example' });
  assert.equal(err.status, 400);
  assert.equal(err.header('Access-Control-Allow-Origin'), 'https://app.example');
});

test('injection: a multi-line payload cannot forge id: or event: lines (raw bytes)', async (t) => {
  const { port, base } = await startTestHub(t, ['--heartbeat', '60']);
  const c = await openWith(port, '/?channels=inj');
  t.after(() => c.close());
  const r = await publishJson(base, { channel: 'inj', data: 'x\nid: 999\r\nevent: evil\r\rretry: 1\n' });
  const id = (r.json as { ids: string[] }).ids[0]!;
  await c.untilEvents(1);
  assert.ok(c.body.endsWith(`id: ${id}\ndata: x\ndata: id: 999\ndata: event: evil\ndata: \ndata: retry: 1\ndata: \n\n`), c.body);
  assert.deepEqual(
    c.events,
    [{ id, data: 'x\nid: 999\nevent: evil\n\nretry: 1\n' }].map((e) => ({ ...e })),
  );
  for (const [body, want] of [
    [{ channel: 'inj', data: 'x', event: 'a\nid: 1' }, 'INVALID_EVENT'],
    [{ channel: 'inj', data: 'x', event: 'a\u0000' }, 'INVALID_EVENT'],
    [{ channel: 'inj', data: 'x', id: 'k\r' }, 'INVALID_ID'],
    [{ channel: 'in\u0000j', data: 'x' }, 'INVALID_CHANNEL'],
    [{ channel: 'in\nj', data: 'x' }, 'INVALID_CHANNEL'],
  ] as const) {
    const bad = await publishJson(base, body);
    assert.equal(bad.status, 400);
    assert.equal(code(bad), want);
  }
});

test('JSON nesting deeper than --max-json-depth is refused with 400', async (t) => {
  const { base } = await startTestHub(t, ['--max-json-depth', '8']);
  const deep = { channel: 'd', data: JSON.parse('['.repeat(20) + ']'.repeat(20)) as unknown };
  const r = await publishJson(base, deep);
  assert.equal(r.status, 400);
  assert.match((r.json as { message: string }).message, /nesting/);
  assert.equal((await publishJson(base, { channel: 'd', data: [[1]] })).status, 200);
});
