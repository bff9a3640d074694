/**
 * The publish API (docs/protocol.md#publishing) seen from a publisher and from subscribers on the same hub: the
 * seed's form contract, JSON single/multi/batch, event, idempotency, auth, CORS and metrics.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  channelsPath,
  httpRequest,
  openStream,
  publishForm,
  publishJson,
  RawHttpClient,
  scrapeMetric,
  seqOf,
  startTestHub,
  type JsonResponse,
  type TestHub,
} from '@cyclone-sse/testkit';

// Heartbeats off for the length of a test and one `retry:` value for every stream, so a stream's
// bytes can be compared exactly.
const QUIET = ['--heartbeat', '3600', '--retry-jitter', '0'];
const ID = /^[0-9a-z]{1,32}-\d+$/;
/** retry, the priming id (a stream opened without a cursor), :ok. */
const FIRST_BYTES = /^retry: 2000\nid: [0-9a-z]{1,32}-\d+\n:ok\n\n/;

/** Everything the stream carried after its first bytes (which must be exactly retry + id + :ok). */
function framesOf(s: RawHttpClient): string {
  const body = s.body;
  const first = FIRST_BYTES.exec(body);
  assert.ok(first, `stream starts with ${String(FIRST_BYTES)}; got ${JSON.stringify(body.slice(0, 60))}`);
  return body.slice(first[0].length);
}

function ids(r: JsonResponse): string[] {
  return (r.json as { ids: string[] }).ids;
}

function epochOf(id: string): string {
  return id.slice(0, id.lastIndexOf('-'));
}

function assertOkJson(r: JsonResponse, n: number): string[] {
  assert.equal(r.status, 200, r.text);
  assert.match(r.headers.get('content-type') ?? '', /^application\/json/);
  assert.equal(r.headers.get('access-control-allow-origin'), '*');
  const got = ids(r);
  assert.equal(got.length, n);
  for (const id of got) assert.match(id, ID);
  // Exact body: no extra fields, compact JSON.
  assert.equal(r.text, JSON.stringify({ status: 'ok', ids: got }));
  return got;
}

async function publishedCount(hub: TestHub, outcome: string): Promise<number> {
  const v = await scrapeMetric(hub.metricsBase, `cyclone_sse_publisher_publishes_total{source="http",outcome="${outcome}"}`);
  assert.ok(!Number.isNaN(v), 'publishes_total is exported');
  return v;
}

test('form: repeatable channel + message → exactly {"status": "ok"}; one message per channel, two ids', { timeout: 20_000 }, async (t) => {
  const hub = await startTestHub(t, QUIET);
  const both = await openStream(hub.port, channelsPath(['a', 'b']), { t });
  const onlyB = await openStream(hub.port, channelsPath(['b']), { t });

  const r = await publishForm(hub.base, [
    ['channel', 'a'],
    ['channel', 'b'],
    ['message', '[123, 124]'],
  ]);
  assert.equal(r.status, 200);
  assert.equal(r.text, '{"status": "ok"}');
  assert.match(r.headers.get('content-type') ?? '', /^application\/json/);
  assert.equal(r.headers.get('access-control-allow-origin'), '*');

  await both.untilEvents(2);
  await onlyB.untilEvents(1);
  const [e1, e2] = both.events;
  assert.equal(both.events.length, 2);
  assert.equal(e1!.data, '[123, 124]');
  assert.equal(e2!.data, '[123, 124]');
  assert.match(e1!.id!, ID);
  assert.match(e2!.id!, ID);
  assert.equal(epochOf(e1!.id!), epochOf(e2!.id!));
  assert.ok(seqOf(e2!.id!) > seqOf(e1!.id!), `ids increase: ${e1!.id} then ${e2!.id}`);
  assert.equal(framesOf(both), `id: ${e1!.id}\ndata: [123, 124]\n\nid: ${e2!.id}\ndata: [123, 124]\n\n`);
  // The b subscriber sees b's copy (the second id) only.
  assert.deepEqual(onlyB.events, [{ id: e2!.id, data: '[123, 124]' }]);
});

test('form: works without a Content-Type (seed clients) and with the message in the query string', { timeout: 20_000 }, async (t) => {
  const hub = await startTestHub(t, QUIET);
  const s = await openStream(hub.port, channelsPath(['seed']), { t });

  const raw = await RawHttpClient.request(hub.port, '/publish', { method: 'POST', body: 'channel=seed&message=no-type' });
  t.after(() => raw.close());
  await raw.until((c) => c.body === '{"status": "ok"}', 5000, 'seed answer');
  assert.equal(raw.status, 200);
  raw.close();

  const q = await httpRequest(`${hub.base}/publish?channel=seed&message=in-query`, { method: 'POST' });
  assert.equal(q.status, 200, q.text);
  assert.equal(q.text, '{"status": "ok"}');

  await s.untilEvents(2);
  assert.deepEqual(
    s.events.map((e) => e.data),
    ['no-type', 'in-query'],
  );
});

test('auth: key in the form body, key in the query, Authorization: Bearer (form and JSON) are accepted', { timeout: 20_000 }, async (t) => {
  const hub = await startTestHub(t, [...QUIET, '--http-secret', 's3cret']);
  const s = await openStream(hub.port, channelsPath(['auth']), { t });

  const inBody = await publishForm(hub.base, [
    ['channel', 'auth'],
    ['message', 'body-key'],
    ['key', 's3cret'],
  ]);
  assert.equal(inBody.status, 200, inBody.text);
  assert.equal(inBody.text, '{"status": "ok"}');

  const inQuery = await httpRequest(`${hub.base}/publish?key=s3cret`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: 'channel=auth&message=query-key',
  });
  assert.equal(inQuery.status, 200, inQuery.text);

  const bearerForm = await publishForm(
    hub.base,
    [
      ['channel', 'auth'],
      ['message', 'bearer-form'],
    ],
    { Authorization: 'Bearer s3cret' },
  );
  assert.equal(bearerForm.status, 200, bearerForm.text);

  const bearerJson = await publishJson(hub.base, { channel: 'auth', data: 'bearer-json' }, { Authorization: 'Bearer s3cret' });
  const [jsonId] = assertOkJson(bearerJson, 1);

  const queryJson = await httpRequest(`${hub.base}/publish?key=s3cret`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ channel: 'auth', data: 'query-json' }),
  });
  assertOkJson(queryJson, 1);

  // And a wrong one is refused, so the above really went through the check.
  const wrong = await publishJson(hub.base, { channel: 'auth', data: 'wrong' }, { Authorization: 'Bearer s3cre' });
  assert.equal(wrong.status, 401);
  const sentinel = await publishJson(hub.base, { channel: 'auth', data: 'sentinel' }, { Authorization: 'Bearer s3cret' });
  assert.equal(sentinel.status, 200);

  await s.untilEvents(6);
  assert.deepEqual(
    s.events.map((e) => e.data),
    ['body-key', 'query-key', 'bearer-form', 'bearer-json', 'query-json', 'sentinel'],
  );
  assert.equal(s.events[3]!.id, jsonId);
});

test('JSON single: {"status":"ok","ids":["<epoch>-<n>"]} and the subscriber gets that id and data', { timeout: 20_000 }, async (t) => {
  const hub = await startTestHub(t, QUIET);
  const s = await openStream(hub.port, channelsPath(['a']), { t });
  const r = await publishJson(hub.base, { channel: 'a', data: 'x' });
  const [id] = assertOkJson(r, 1);
  await s.untilEvents(1);
  assert.equal(framesOf(s), `id: ${id}\ndata: x\n\n`);

  // The next publish gets a larger sequence number in the same epoch.
  const r2 = await publishJson(hub.base, { channel: 'a', data: 'y' });
  const [id2] = assertOkJson(r2, 1);
  assert.equal(epochOf(id2!), epochOf(id!));
  assert.ok(seqOf(id2!) > seqOf(id!));
  await s.untilEvents(2);
  assert.deepEqual(s.events, [
    { id, data: 'x' },
    { id: id2, data: 'y' },
  ]);
});

test('JSON channels: one id per channel in the order given; a subscriber on both receives it twice', { timeout: 20_000 }, async (t) => {
  const hub = await startTestHub(t, QUIET);
  const both = await openStream(hub.port, channelsPath(['a', 'b']), { t });
  const r = await publishJson(hub.base, { channels: ['b', 'a'], data: 'multi' });
  const [idB, idA] = assertOkJson(r, 2);
  assert.notEqual(idA, idB);
  assert.ok(seqOf(idA!) > seqOf(idB!), 'channels are sequenced in the order given');
  await both.untilEvents(2);
  assert.deepEqual(both.events, [
    { id: idB, data: 'multi' },
    { id: idA, data: 'multi' },
  ]);

  const onlyA = await openStream(hub.port, channelsPath(['a']), { t });
  const r2 = await publishJson(hub.base, { channels: ['a', 'b', 'c'], data: 'three' });
  const three = assertOkJson(r2, 3);
  await onlyA.untilEvents(1);
  await both.untilEvents(4);
  assert.deepEqual(onlyA.events, [{ id: three[0], data: 'three' }]);
  assert.deepEqual(both.events.slice(2), [
    { id: three[0], data: 'three' },
    { id: three[1], data: 'three' },
  ]);
});

test('JSON data: a non-string value is serialised; a string is passed verbatim (not re-encoded)', { timeout: 20_000 }, async (t) => {
  const hub = await startTestHub(t, QUIET);
  const s = await openStream(hub.port, channelsPath(['d']), { t });
  const values: unknown[] = [{ a: 1, b: [true, null], c: 'é✓' }, 42, ['ev', { x: 1 }], false, '["eventName", {"k": "v"}]', 'ünïcødé 🚀'];
  const sent: string[] = [];
  for (const data of values) {
    const r = await publishJson(hub.base, { channel: 'd', data });
    const [id] = assertOkJson(r, 1);
    sent.push(id!);
  }
  await s.untilEvents(values.length);
  assert.deepEqual(
    s.events,
    ['{"a":1,"b":[true,null],"c":"é✓"}', '42', '["ev",{"x":1}]', 'false', '["eventName", {"k": "v"}]', 'ünïcødé 🚀'].map((data, i) => ({
      id: sent[i],
      data,
    })),
  );
  assert.deepEqual(JSON.parse(s.events[0]!.data), values[0]);
});

test('JSON event → an event: line; multi-line data → one data: line per line (raw bytes)', { timeout: 20_000 }, async (t) => {
  const hub = await startTestHub(t, QUIET);
  const s = await openStream(hub.port, channelsPath(['ev']), { t });
  const r1 = await publishJson(hub.base, { channel: 'ev', data: '{"n":1}', event: 'update' });
  const [id1] = assertOkJson(r1, 1);
  const r2 = await publishJson(hub.base, { channel: 'ev', data: 'l1\nl2\r\nl3\rl4' });
  const [id2] = assertOkJson(r2, 1);
  const r3 = await publishForm(hub.base, [
    ['channel', 'ev'],
    ['message', 'from-form'],
    ['event', 'formev'],
  ]);
  assert.equal(r3.status, 200, r3.text);
  await s.untilEvents(3);
  const id3 = s.events[2]!.id!;
  assert.equal(
    framesOf(s),
    `id: ${id1}\nevent: update\ndata: {"n":1}\n\n` +
      `id: ${id2}\ndata: l1\ndata: l2\ndata: l3\ndata: l4\n\n` +
      `id: ${id3}\nevent: formev\ndata: from-form\n\n`,
  );
  assert.deepEqual(s.events[0], { id: id1, event: 'update', data: '{"n":1}' });
  assert.equal(s.events[1]!.data, 'l1\nl2\nl3\nl4');
});

test('JSON batch: applied in order, answered with an array of {status, ids}', { timeout: 20_000 }, async (t) => {
  const hub = await startTestHub(t, QUIET);
  const s = await openStream(hub.port, channelsPath(['x', 'y']), { t });
  const r = await publishJson(hub.base, [
    { channel: 'x', data: 'one' },
    { channels: ['y', 'x'], data: 'two', event: 'e2' },
    { channel: 'other', data: 'not-mine' },
    { channel: 'y', data: { three: 3 } },
  ]);
  assert.equal(r.status, 200, r.text);
  assert.match(r.headers.get('content-type') ?? '', /^application\/json/);
  const answers = r.json as { status: string; ids: string[] }[];
  assert.ok(Array.isArray(answers));
  assert.equal(answers.length, 4);
  assert.deepEqual(
    answers.map((a) => Object.keys(a).sort()),
    Array(4).fill(['ids', 'status']),
  );
  assert.deepEqual(
    answers.map((a) => a.status),
    ['ok', 'ok', 'ok', 'ok'],
  );
  assert.deepEqual(
    answers.map((a) => a.ids.length),
    [1, 2, 1, 1],
  );
  assert.equal(r.text, JSON.stringify(answers));
  const all = answers.flatMap((a) => a.ids);
  for (let i = 1; i < all.length; i++) assert.ok(seqOf(all[i]!) > seqOf(all[i - 1]!), `batch applied in order: ${all.join(' ')}`);

  await s.untilEvents(4);
  assert.deepEqual(s.events, [
    { id: answers[0]!.ids[0], data: 'one' },
    { id: answers[1]!.ids[0], event: 'e2', data: 'two' },
    { id: answers[1]!.ids[1], event: 'e2', data: 'two' },
    { id: answers[3]!.ids[0], data: '{"three":3}' },
  ]);
});

test('idempotency: the same id twice → identical answer, delivered once (sentinel)', { timeout: 20_000 }, async (t) => {
  const hub = await startTestHub(t, QUIET);
  const s = await openStream(hub.port, channelsPath(['idem', 'idem2']), { t });
  const body = { channels: ['idem', 'idem2'], data: 'once', id: 'order-42' };
  const first = await publishJson(hub.base, body);
  const firstIds = assertOkJson(first, 2);
  const retry = await publishJson(hub.base, body);
  assert.equal(retry.status, 200);
  assert.equal(retry.text, first.text, 'a retried publish answers exactly the first answer');
  // Same key, different payload: still the first answer, nothing new published.
  const changed = await publishJson(hub.base, { ...body, data: 'changed' });
  assert.equal(changed.text, first.text);
  // In a batch too.
  const batch = await publishJson(hub.base, [body, { channel: 'idem', data: 'fresh', id: 'order-43' }]);
  assert.equal(batch.status, 200, batch.text);
  const batchAnswers = batch.json as { status: string; ids: string[] }[];
  assert.deepEqual(batchAnswers[0], { status: 'ok', ids: firstIds });

  const sentinel = await publishJson(hub.base, { channel: 'idem', data: 'sentinel' });
  const [sentinelId] = assertOkJson(sentinel, 1);
  await s.until((c) => c.events.some((e) => e.data === 'sentinel'), 5000, 'sentinel');
  assert.deepEqual(s.events, [
    { id: firstIds[0], data: 'once' },
    { id: firstIds[1], data: 'once' },
    { id: batchAnswers[1]!.ids[0], data: 'fresh' },
    { id: sentinelId, data: 'sentinel' },
  ]);
});

test('idempotency through the form contract (id field)', { timeout: 20_000 }, async (t) => {
  const hub = await startTestHub(t, QUIET);
  const s = await openStream(hub.port, channelsPath(['f']), { t });
  for (let i = 0; i < 2; i++) {
    const r = await publishForm(hub.base, [
      ['channel', 'f'],
      ['message', 'form-once'],
      ['id', 'form-key'],
    ]);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.text, '{"status": "ok"}');
  }
  const sentinel = await publishJson(hub.base, { channel: 'f', data: 'sentinel' });
  assert.equal(sentinel.status, 200);
  await s.until((c) => c.events.some((e) => e.data === 'sentinel'), 5000, 'sentinel');
  assert.deepEqual(
    s.events.map((e) => e.data),
    ['form-once', 'sentinel'],
  );
});

test('CORS preflight OPTIONS /publish → 204 with Allow-Methods/Headers and Allow-Origin *', { timeout: 20_000 }, async (t) => {
  const hub = await startTestHub(t, QUIET);
  const c = await RawHttpClient.request(hub.port, '/publish', {
    method: 'OPTIONS',
    headers: {
      Origin: 'http://example.test',
      'Access-Control-Request-Method': 'POST',
      'Access-Control-Request-Headers': 'authorization, content-type',
    },
  });
  t.after(() => c.close());
  await c.until((x) => x.head !== '', 5000, 'preflight answer');
  assert.equal(c.status, 204);
  assert.equal(c.header('access-control-allow-origin'), '*');
  const methods = (c.header('access-control-allow-methods') ?? '').split(',').map((m) => m.trim());
  assert.ok(methods.includes('POST'), `Allow-Methods includes POST: ${methods.join(',')}`);
  const allowHeaders = (c.header('access-control-allow-headers') ?? '')
    .toLowerCase()
    .split(',')
    .map((h) => h.trim());
  assert.ok(allowHeaders.includes('authorization') && allowHeaders.includes('content-type'), `Allow-Headers: ${allowHeaders.join(',')}`);

  // A cross-origin publish answer carries the CORS header too.
  const r = await publishJson(hub.base, { channel: 'cors', data: 'x' }, { Origin: 'http://example.test' });
  assert.equal(r.status, 200);
  assert.equal(r.headers.get('access-control-allow-origin'), '*');
});

test('metrics: publishes_total{source="http",outcome="ok"} rises by the number of messages', { timeout: 20_000 }, async (t) => {
  const hub = await startTestHub(t, QUIET);
  const s = await openStream(hub.port, channelsPath(['m1', 'm2']), { t });
  const okBefore = await publishedCount(hub, 'ok');
  const dupBefore = await publishedCount(hub, 'duplicate');
  const rejBefore = await publishedCount(hub, 'rejected');

  // 1 + 2 + 3 (batch: 1 + 2 channels) = 6 messages.
  assert.equal((await publishJson(hub.base, { channel: 'm1', data: 'a', id: 'k1' })).status, 200);
  assert.equal(
    (
      await publishForm(hub.base, [
        ['channel', 'm1'],
        ['channel', 'm2'],
        ['message', 'b'],
      ])
    ).status,
    200,
  );
  assert.equal(
    (
      await publishJson(hub.base, [
        { channel: 'm1', data: 'c' },
        { channels: ['m1', 'm2'], data: 'd' },
      ])
    ).status,
    200,
  );
  // Not counted as ok: a duplicate and a rejected publish.
  assert.equal((await publishJson(hub.base, { channel: 'm1', data: 'a', id: 'k1' })).status, 200);
  assert.equal((await publishJson(hub.base, { channel: 'm1' })).status, 400);

  await s.untilEvents(6);
  assert.deepEqual(
    s.events.map((e) => e.data),
    ['a', 'b', 'b', 'c', 'd', 'd'],
  );
  assert.equal((await publishedCount(hub, 'ok')) - okBefore, 6);
  assert.equal((await publishedCount(hub, 'duplicate')) - dupBefore, 1);
  assert.equal((await publishedCount(hub, 'rejected')) - rejBefore, 1);
});
