/**
 * Refused requests on the public port: every rejection has the right status, the JSON error shape
 * {statusCode, code, error, message} and the CORS header; a refused request delivers nothing
 * (proven with a sentinel), and afterwards the same hub still serves a fresh subscribe + publish.
 * The cases live beside what they test (edge: subscribe and stream paths; publisher: /publish).
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { publishJson } from './http.js';
import { startTestHub, type TestHub } from './hub.js';
import { RawHttpClient } from './sse-client.js';
import { channelsPath, openStream } from './stream.js';

const REASONS: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  404: 'Not Found',
  405: 'Method Not Allowed',
  413: 'Payload Too Large',
  414: 'URI Too Long',
};

export interface RawRequest {
  method?: string;
  headers?: Record<string, string>;
  body?: string;
}

/** One request over a raw socket; resolves once the whole Content-Length body has arrived. */
export async function rawCall(t: TestContext, port: number, path: string, opts: RawRequest = {}): Promise<RawHttpClient> {
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
export function assertError(c: RawHttpClient, status: number, code: string, message?: RegExp): void {
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

function authHeaders(secret: string | undefined): Record<string, string> {
  return secret ? { Authorization: `Bearer ${secret}` } : {};
}

let sentinelCounter = 0;

/**
 * Proves the hub still works after a bad request: a witness subscriber opened before the case
 * and a fresh one opened after it both receive exactly one sentinel (so nothing from the bad
 * request was delivered to `channel`).
 */
export async function assertStillServes(
  t: TestContext,
  hub: TestHub,
  witness: RawHttpClient,
  channel: string,
  secret?: string,
): Promise<void> {
  const fresh = await openStream(hub.port, channelsPath([channel]), { t });
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

/** One refused request: how to send it, the status and catalogue code it must get. */
export interface RefusalCase {
  name: string;
  args?: string[];
  secret?: string;
  /** Sends the bad request; `ch` is a channel watched by a witness subscriber. */
  send: (t: TestContext, hub: TestHub, ch: string) => Promise<RawHttpClient>;
  status: number;
  code: string;
  message?: RegExp;
}

/** A POST with a JSON body (a string is sent as is). */
export const jsonRequest = (body: unknown, headers: Record<string, string> = {}): RawRequest => ({
  method: 'POST',
  headers: { 'Content-Type': 'application/json', ...headers },
  body: typeof body === 'string' ? body : JSON.stringify(body),
});
/** A POST with a form body. */
export const formRequest = (body: string, headers: Record<string, string> = {}): RawRequest => ({
  method: 'POST',
  headers: { 'Content-Type': 'application/x-www-form-urlencoded', ...headers },
  body,
});

/** Sends a GET of `path`. */
export const getPath = (path: string) => (t: TestContext, hub: TestHub) => rawCall(t, hub.port, path);
/** Sends the request `make` builds for the witnessed channel, to /publish or `path`. */
export const sendRequest =
  (make: (ch: string) => RawRequest, path = '/publish') =>
  (t: TestContext, hub: TestHub, ch: string) =>
    rawCall(t, hub.port, path, make(ch));

/**
 * One test per case on a fresh all-in-one hub: a witness subscriber on a channel, the bad request,
 * the exact error answer, then proof the hub still serves (only the sentinel was delivered).
 */
export function refusalTests(cases: RefusalCase[]): void {
  for (const c of cases) {
    test(`${c.name} → ${c.status} ${c.code}; the hub still serves afterwards`, { timeout: 20_000 }, async (t) => {
      const args = [...(c.args ?? []), ...(c.secret ? ['--http-secret', c.secret] : [])];
      const hub = await startTestHub(t, args);
      const ch = `bad-${sentinelCounter}-${Math.random().toString(36).slice(2)}`;
      const witness = await openStream(hub.port, channelsPath([ch]), { t });

      const answer = await c.send(t, hub, ch);
      assertError(answer, c.status, c.code, c.message);

      await assertStillServes(t, hub, witness, ch, c.secret);
    });
  }
}
