/**
 * Bad input on the public port (DESIGN §3, §4): every rejection has the right status, the JSON
 * error shape {statusCode, code, error, message} and the CORS header; a rejected publish delivers
 * nothing (proven with a sentinel), and afterwards the same hub still serves a fresh subscribe +
 * publish.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { RawHttpClient, publishJson } from '@cyclone-sse/testkit';
import { startTestHub, type TestHub } from './helpers.js';

const SECRET = 's3cret';

const REASONS: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  404: 'Not Found',
  405: 'Method Not Allowed',
  413: 'Payload Too Large',
  414: 'URI Too Long',
};

interface RawRequest {
  method?: string;
  headers?: Record<string, string>;
  body?: string;
}

/** One request over a raw socket; resolves once the whole Content-Length body has arrived. */
async function rawCall(t: TestContext, port: number, path: string, opts: RawRequest = {}): Promise<RawHttpClient> {
  const c = await RawHttpClient.request(port, path, opts);
  t.after(() => c.close());
  await c.until(
    (x) => {
      if (x.head === '') return false;
      const len = Number(x.header('content-length'));
      return Number.isFinite(len) && Buffer.byteLength(x.body) >= len;
    },
    10_000,
    `complete answer to ${opts.method ?? 'GET'} ${path.slice(0, 80)}`,
  );
  c.close();
  return c;
}

/** Asserts status, exact error JSON shape and code, content type and the CORS header. */
function assertError(c: RawHttpClient, status: number, code: string, message?: RegExp): void {
  assert.equal(c.status, status, `status; got:\n${c.text.slice(0, 2000)}`);
  assert.equal(c.header('access-control-allow-origin'), '*', 'CORS header on an error');
  assert.match(c.header('content-type') ?? '', /^application\/json/);
  const body = JSON.parse(c.body) as Record<string, unknown>;
  assert.deepEqual(Object.keys(body).sort(), ['code', 'error', 'message', 'statusCode']);
  assert.equal(body.statusCode, status);
  assert.equal(body.code, code);
  assert.equal(body.error, REASONS[status]);
  assert.equal(typeof body.message, 'string');
  assert.ok((body.message as string).length > 0, 'message is not empty');
  if (message) assert.match(body.message as string, message);
}

/** Opens a raw stream and waits for its first bytes (the subscription is registered by then). */
async function openStream(t: TestContext, hub: TestHub, channels: string[]): Promise<RawHttpClient> {
  const q = channels.map((c) => `channels=${encodeURIComponent(c)}`).join('&');
  const s = await RawHttpClient.request(hub.port, `/?${q}`);
  t.after(() => s.close());
  await s.until((c) => c.body.includes(':ok\n\n'), 5000, 'first bytes of the stream');
  assert.equal(s.status, 200);
  return s;
}

function authHeaders(secret: string | undefined): Record<string, string> {
  return secret ? { Authorization: `Bearer ${secret}` } : {};
}

let sentinelCounter = 0;

/**
 * Proves the hub still works after a bad request: a witness subscriber opened before the case
 * and a fresh one opened after it both receive exactly one sentinel (so nothing from the bad
 * request was delivered to `channel`).
 */
async function assertStillServes(t: TestContext, hub: TestHub, witness: RawHttpClient, channel: string, secret?: string): Promise<void> {
  const fresh = await openStream(t, hub, [channel]);
  const data = `sentinel-${++sentinelCounter}`;
  const r = await publishJson(hub.base, { channel, data }, authHeaders(secret));
  assert.equal(r.status, 200, r.text);
  const id = (r.json as { ids: string[] }).ids[0];
  for (const sub of [witness, fresh]) {
    await sub.untilEvents(1);
    assert.deepEqual(sub.events, [{ id, data }], 'only the sentinel was delivered');
  }
  witness.close();
  fresh.close();
}

interface Case {
  name: string;
  args?: string[];
  secret?: string;
  /** Sends the bad request; `ch` is a channel watched by a witness subscriber. */
  send: (t: TestContext, hub: TestHub, ch: string) => Promise<RawHttpClient>;
  status: number;
  code: string;
  message?: RegExp;
}

const json = (body: unknown, headers: Record<string, string> = {}): RawRequest => ({
  method: 'POST',
  headers: { 'Content-Type': 'application/json', ...headers },
  body: typeof body === 'string' ? body : JSON.stringify(body),
});
const form = (body: string, headers: Record<string, string> = {}): RawRequest => ({
  method: 'POST',
  headers: { 'Content-Type': 'application/x-www-form-urlencoded', ...headers },
  body,
});

const get = (path: string) => (t: TestContext, hub: TestHub) => rawCall(t, hub.port, path);
const publishRaw = (make: (ch: string) => RawRequest, path = '/publish') => (t: TestContext, hub: TestHub, ch: string) =>
  rawCall(t, hub.port, path, make(ch));

const CASES: Case[] = [
  // ---- subscribe (DESIGN §3)
  { name: 'subscribe without any channels parameter', send: get('/'), status: 400, code: 'INVALID_CHANNEL' },
  { name: 'subscribe with only unknown parameters', send: get('/?uuid=abc&_=123'), status: 400, code: 'INVALID_CHANNEL' },
  { name: 'subscribe with an empty channels=', send: get('/?channels='), status: 400, code: 'INVALID_CHANNEL' },
  { name: 'subscribe with a blank channel (trimmed to empty)', send: get('/?channels=%20%20'), status: 400, code: 'INVALID_CHANNEL' },
  { name: 'subscribe with one good and one empty channel', send: get('/sse?channels=ok&channels='), status: 400, code: 'INVALID_CHANNEL' },
  { name: 'subscribe with %01 in a channel', send: get('/?channels=a%01b'), status: 400, code: 'INVALID_CHANNEL', message: /control/ },
  { name: 'subscribe with %0A in a channel', send: get('/?channels=a%0Ab'), status: 400, code: 'INVALID_CHANNEL', message: /control/ },
  { name: 'subscribe with DEL (%7F) in a channel', send: get('/?channels=a%7Fb'), status: 400, code: 'INVALID_CHANNEL' },
  { name: 'subscribe with invalid UTF-8 (%FF) in a channel', send: get('/?channels=a%FFb'), status: 400, code: 'INVALID_CHANNEL' },
  { name: 'subscribe with a 300-byte channel name', send: get(`/?channels=${'c'.repeat(300)}`), status: 400, code: 'INVALID_CHANNEL', message: /300/ },
  {
    name: 'subscribe with a 256-byte channel of 2-byte characters (bytes, not characters, count)',
    send: get(`/?channels=${encodeURIComponent('é'.repeat(128))}`),
    status: 400,
    code: 'INVALID_CHANNEL',
    message: /256/,
  },
  {
    name: 'subscribe with 65 channels (default limit 64)',
    send: get(`/?${Array.from({ length: 65 }, (_, i) => `channels=ch${i}`).join('&')}`),
    status: 400,
    code: 'INVALID_CHANNEL',
    message: /65/,
  },
  {
    name: 'subscribe with a query longer than --max-query-length',
    args: ['--max-query-length', '256'],
    send: get(`/?channels=a&uuid=${'x'.repeat(300)}`),
    status: 414,
    code: 'URI_TOO_LONG',
  },
  {
    name: 'subscribe with a query longer than the default --max-query-length (16384)',
    send: get(`/?channels=a&uuid=${'x'.repeat(17_000)}`),
    status: 414,
    code: 'URI_TOO_LONG',
  },

  // ---- publish body (DESIGN §4)
  { name: 'publish malformed JSON', send: publishRaw((ch) => json(`{"channel":"${ch}","data":"x"`)), status: 400, code: 'INVALID_BODY' },
  { name: 'publish an empty JSON body', send: publishRaw(() => json('')), status: 400, code: 'INVALID_BODY' },
  { name: 'publish a JSON string instead of an object', send: publishRaw(() => json('"hello"')), status: 400, code: 'INVALID_BODY' },
  { name: 'publish an empty JSON batch', send: publishRaw(() => json([])), status: 400, code: 'INVALID_BODY' },
  {
    name: 'publish a 2 MiB body with Content-Length (default --max-body 1 MiB)',
    send: publishRaw((ch) => json({ channel: ch, data: 'x'.repeat(2 * 1024 * 1024) })),
    status: 413,
    code: 'PAYLOAD_TOO_LARGE',
  },
  {
    name: 'publish a chunked body without Content-Length that exceeds --max-body',
    args: ['--max-body', '1024'],
    send: async (t, hub, ch) => {
      const c = await RawHttpClient.request(hub.port, '/publish', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked' },
      });
      t.after(() => c.close());
      // A valid publish if it were accepted, 4 KiB in 512-byte chunks, never a declared length.
      const body = Buffer.from(JSON.stringify({ channel: ch, data: 'y'.repeat(4096) }));
      for (let i = 0; i < body.length; i += 512) {
        const part = body.subarray(i, i + 512);
        c.socket.write(`${part.length.toString(16)}\r\n`);
        c.socket.write(part);
        c.socket.write('\r\n');
      }
      c.socket.write('0\r\n\r\n');
      await c.until((x) => x.head !== '' && Buffer.byteLength(x.body) >= Number(x.header('content-length')), 10_000, '413 answer');
      c.close();
      assert.equal(c.header('transfer-encoding'), undefined);
      return c;
    },
    status: 413,
    code: 'PAYLOAD_TOO_LARGE',
  },
  {
    name: 'publish a 2 MiB chunked body (default --max-body)',
    send: async (t, hub, ch) => {
      const c = await RawHttpClient.request(hub.port, '/publish', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked' },
      });
      t.after(() => c.close());
      const body = Buffer.from(JSON.stringify({ channel: ch, data: 'z'.repeat(2 * 1024 * 1024) }));
      const CHUNK = 64 * 1024;
      for (let i = 0; i < body.length && c.head === '' && !c.ended; i += CHUNK) {
        const part = body.subarray(i, i + CHUNK);
        const ok = c.socket.write(Buffer.concat([Buffer.from(`${part.length.toString(16)}\r\n`), part, Buffer.from('\r\n')]));
        if (!ok) await new Promise<void>((resolve) => {
          const done = () => { c.socket.off('drain', done); c.socket.off('close', done); c.socket.off('data', done); resolve(); };
          c.socket.on('drain', done);
          c.socket.on('close', done);
          c.socket.on('data', done);
        });
      }
      if (c.head === '' && !c.ended) c.socket.write('0\r\n\r\n');
      await c.until((x) => x.head !== '' && Buffer.byteLength(x.body) >= Number(x.header('content-length')), 15_000, '413 answer');
      c.close();
      return c;
    },
    status: 413,
    code: 'PAYLOAD_TOO_LARGE',
  },
  { name: 'publish JSON with CRLF in event', send: publishRaw((ch) => json({ channel: ch, data: 'x', event: 'a\r\nid: 1' })), status: 400, code: 'INVALID_EVENT' },
  { name: 'publish JSON with LF in event', send: publishRaw((ch) => json({ channel: ch, data: 'x', event: 'a\nb' })), status: 400, code: 'INVALID_EVENT' },
  { name: 'publish JSON with CR in event', send: publishRaw((ch) => json({ channel: ch, data: 'x', event: 'a\rb' })), status: 400, code: 'INVALID_EVENT' },
  { name: 'publish JSON with a non-string event', send: publishRaw((ch) => json({ channel: ch, data: 'x', event: 5 })), status: 400, code: 'INVALID_EVENT' },
  {
    name: 'publish form with CRLF in event',
    send: publishRaw((ch) => form(`channel=${ch}&message=x&event=a%0D%0Adata%3A%20evil`)),
    status: 400,
    code: 'INVALID_EVENT',
  },
  { name: 'publish JSON with LF in id', send: publishRaw((ch) => json({ channel: ch, data: 'x', id: 'k\n1' })), status: 400, code: 'INVALID_ID' },
  { name: 'publish form with LF in id', send: publishRaw((ch) => form(`channel=${ch}&message=x&id=k%0A1`)), status: 400, code: 'INVALID_ID' },
  { name: 'publish JSON without data', send: publishRaw((ch) => json({ channel: ch })), status: 400, code: 'MISSING_MESSAGE' },
  { name: 'publish JSON with data null', send: publishRaw((ch) => json({ channel: ch, data: null })), status: 400, code: 'MISSING_MESSAGE' },
  { name: 'publish JSON without channel', send: publishRaw(() => json({ data: 'x' })), status: 400, code: 'MISSING_CHANNEL' },
  { name: 'publish JSON with channels: []', send: publishRaw(() => json({ channels: [], data: 'x' })), status: 400, code: 'MISSING_CHANNEL' },
  { name: 'publish JSON with channels as a string', send: publishRaw((ch) => json({ channels: ch, data: 'x' })), status: 400, code: 'INVALID_CHANNEL' },
  { name: 'publish JSON with channels containing a number', send: publishRaw((ch) => json({ channels: [ch, 1], data: 'x' })), status: 400, code: 'INVALID_CHANNEL' },
  { name: 'publish JSON with channels containing null', send: publishRaw((ch) => json({ channels: [ch, null], data: 'x' })), status: 400, code: 'INVALID_CHANNEL' },
  { name: 'publish JSON with channel as an object', send: publishRaw(() => json({ channel: { name: 'a' }, data: 'x' })), status: 400, code: 'INVALID_CHANNEL' },
  { name: 'publish JSON with a control character in channel', send: publishRaw((ch) => json({ channels: [ch, 'a\u0001b'], data: 'x' })), status: 400, code: 'INVALID_CHANNEL' },
  { name: 'publish JSON with a 300-byte channel', send: publishRaw((ch) => json({ channels: [ch, 'c'.repeat(300)], data: 'x' })), status: 400, code: 'INVALID_CHANNEL' },
  {
    name: 'publish a batch whose second item is invalid (nothing half-applied)',
    send: publishRaw((ch) => json([{ channel: ch, data: 'first' }, { channel: ch }])),
    status: 400,
    code: 'MISSING_MESSAGE',
  },
  { name: 'publish form without message', send: publishRaw((ch) => form(`channel=${ch}`)), status: 400, code: 'MISSING_MESSAGE' },
  { name: 'publish form with a blank message', send: publishRaw((ch) => form(`channel=${ch}&message=%20%20`)), status: 400, code: 'MISSING_MESSAGE' },
  { name: 'publish form without channel', send: publishRaw(() => form('message=hello')), status: 400, code: 'MISSING_CHANNEL' },
  { name: 'publish form with an empty channel', send: publishRaw(() => form('channel=&message=hello')), status: 400, code: 'MISSING_CHANNEL' },
  { name: 'publish form with %0A in channel', send: publishRaw((ch) => form(`channel=${ch}&channel=a%0Ab&message=hello`)), status: 400, code: 'INVALID_CHANNEL' },

  // ---- auth: checked first (DESIGN §4)
  {
    name: 'publish with a wrong bearer key',
    secret: SECRET,
    send: publishRaw((ch) => json({ channel: ch, data: 'x' }, { Authorization: 'Bearer wrong' })),
    status: 401,
    code: 'UNAUTHORIZED',
  },
  {
    name: 'publish form with a wrong key field',
    secret: SECRET,
    send: publishRaw((ch) => form(`channel=${ch}&message=x&key=wrong`)),
    status: 401,
    code: 'UNAUTHORIZED',
  },
  {
    name: 'publish form with a wrong key in the query string',
    secret: SECRET,
    send: publishRaw((ch) => form(`channel=${ch}&message=x`), '/publish?key=wrong'),
    status: 401,
    code: 'UNAUTHORIZED',
  },
  {
    name: 'publish without any key',
    secret: SECRET,
    send: publishRaw((ch) => json({ channel: ch, data: 'x' })),
    status: 401,
    code: 'UNAUTHORIZED',
  },
  {
    name: 'publish with a key that is a prefix of the secret',
    secret: SECRET,
    send: publishRaw((ch) => json({ channel: ch, data: 'x' }, { Authorization: `Bearer ${SECRET.slice(0, -1)}` })),
    status: 401,
    code: 'UNAUTHORIZED',
  },
  {
    name: 'wrong key + missing message → 401 before validation (form)',
    secret: SECRET,
    send: publishRaw((ch) => form(`channel=${ch}&key=wrong`)),
    status: 401,
    code: 'UNAUTHORIZED',
  },
  {
    name: 'wrong key + missing data → 401 before validation (JSON)',
    secret: SECRET,
    send: publishRaw((ch) => json({ channel: ch }, { Authorization: 'Bearer wrong' })),
    status: 401,
    code: 'UNAUTHORIZED',
  },
  {
    name: 'wrong key + malformed JSON → 401 before validation',
    secret: SECRET,
    send: publishRaw(() => json('{not json', { Authorization: 'Bearer wrong' })),
    status: 401,
    code: 'UNAUTHORIZED',
  },

  // ---- methods and paths
  { name: 'GET /publish', send: get('/publish?channel=a&message=x'), status: 405, code: 'METHOD_NOT_ALLOWED' },
  { name: 'PUT /publish', send: publishRaw((ch) => ({ ...json({ channel: ch, data: 'x' }), method: 'PUT' })), status: 405, code: 'METHOD_NOT_ALLOWED' },
  { name: 'POST / (the stream path)', send: publishRaw((ch) => form(`channel=${ch}&message=x`), '/'), status: 405, code: 'METHOD_NOT_ALLOWED' },
  { name: 'POST /sse', send: publishRaw((ch) => form(`channel=${ch}&message=x`), '/sse?channels=a'), status: 405, code: 'METHOD_NOT_ALLOWED' },
  { name: 'GET an unknown path', send: get('/no/such/path?channels=a'), status: 404, code: 'NOT_FOUND' },
  { name: 'POST an unknown path', send: publishRaw((ch) => form(`channel=${ch}&message=x`), '/publish/extra'), status: 404, code: 'NOT_FOUND' },
];

for (const c of CASES) {
  test(`${c.name} → ${c.status} ${c.code}; the hub still serves afterwards`, { timeout: 20_000 }, async (t) => {
    const args = [...(c.args ?? []), ...(c.secret ? ['--http-secret', c.secret] : [])];
    const hub = await startTestHub(t, args);
    const ch = `bad-${sentinelCounter}-${Math.random().toString(36).slice(2)}`;
    const witness = await openStream(t, hub, [ch]);

    const answer = await c.send(t, hub, ch);
    assertError(answer, c.status, c.code, c.message);

    await assertStillServes(t, hub, witness, ch, c.secret);
  });
}

test('64 channels (the default limit) are accepted and each is live', { timeout: 20_000 }, async (t) => {
  const hub = await startTestHub(t);
  const channels = Array.from({ length: 64 }, (_, i) => `ch${i}`);
  const s = await openStream(t, hub, channels);
  const r = await publishJson(hub.base, { channels: ['ch0', 'ch63'], data: 'edge' });
  assert.equal(r.status, 200, r.text);
  const ids = (r.json as { ids: string[] }).ids;
  await s.untilEvents(2);
  assert.deepEqual(s.events, [{ id: ids[0], data: 'edge' }, { id: ids[1], data: 'edge' }]);
});

test('a 255-byte channel name (the limit) is accepted on both sides', { timeout: 20_000 }, async (t) => {
  const hub = await startTestHub(t);
  const ch = 'é'.repeat(127) + 'x'; // 255 bytes
  assert.equal(Buffer.byteLength(ch), 255);
  const s = await openStream(t, hub, [ch]);
  const r = await publishJson(hub.base, { channel: ch, data: 'long' });
  assert.equal(r.status, 200, r.text);
  await s.untilEvents(1);
  assert.deepEqual(s.events, [{ id: (r.json as { ids: string[] }).ids[0], data: 'long' }]);
});
