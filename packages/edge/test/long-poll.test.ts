import { test } from 'node:test';
import assert from 'node:assert/strict';
import { publishJson, RawHttpClient, startTestHub } from '@cyclone-sse/testkit';

const XHR = { 'X-Requested-With': 'XMLHttpRequest' };

test('long-poll ends after one live message with a proper length', async (t) => {
  const { port, base } = await startTestHub(t);
  const c = await RawHttpClient.request(port, '/?channels=lp&_=1', { headers: XHR });
  t.after(() => c.close());
  // Prove the poll is registered before publishing: it shows up in /stats.
  for (let i = 0; i < 100; i++) {
    const s = (await (await fetch(`${base}/stats`)).json()) as [string, number][];
    if (s.length > 0) break;
  }
  const r = await publishJson(base, { channel: 'lp', data: 'hello' });
  const [id] = (r.json as { ids: string[] }).ids;
  await c.until((x) => x.head !== '' && x.body.length >= Number(x.header('Content-Length')), 5000, 'complete response');
  assert.equal(c.status, 200);
  assert.equal(c.header('Content-Type'), 'text/event-stream');
  assert.equal(c.header('Transfer-Encoding'), undefined);
  assert.equal(c.body, `id: ${id}\ndata: hello\n\n`);
  assert.equal(Number(c.header('Content-Length')), Buffer.byteLength(c.body));
  // The response is over; the keep-alive connection can carry the next request.
  c.raw = Buffer.alloc(0);
  c.socket.write(`GET /stats HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
  await c.until((x) => x.body.startsWith('['), 5000, 'second response on the same connection');
});

test('long-poll with nothing pending ends after the timeout with a heartbeat', async (t) => {
  const { port } = await startTestHub(t, ['--long-poll-timeout', '0.3']);
  const c = await RawHttpClient.request(port, '/?channels=idle', { headers: XHR });
  t.after(() => c.close());
  await c.until((x) => x.head !== '' && x.body === ':\n\n', 5000, 'timeout answer');
  assert.equal(c.status, 200);
  assert.equal(c.header('Content-Length'), '3');
});

test('long-poll with Last-Event-ID answers pending history at once, capped', async (t) => {
  const { port, base } = await startTestHub(t, ['--long-poll-max-events', '2']);
  const first = await publishJson(base, { channel: 'p', data: 'zero' });
  const [cursor] = (first.json as { ids: string[] }).ids;
  const ids: string[] = [];
  for (const d of ['one', 'two', 'three'])
    ids.push(...((await publishJson(base, { channel: 'p', data: d })).json as { ids: string[] }).ids);
  const c = await RawHttpClient.request(port, '/?channels=p', { headers: { ...XHR, 'Last-Event-ID': cursor! } });
  t.after(() => c.close());
  await c.until((x) => x.head !== '' && x.body.length >= Number(x.header('Content-Length')), 5000, 'answer');
  assert.deepEqual(
    c.events.map((e) => [e.id, e.data]),
    [
      [ids[0], 'one'],
      [ids[1], 'two'],
    ],
  );
  // The next poll continues from the last id it got.
  const d = await RawHttpClient.request(port, '/?channels=p', { headers: { ...XHR, 'Last-Event-ID': ids[1]! } });
  t.after(() => d.close());
  await d.until((x) => x.head !== '' && x.body.length >= Number(x.header('Content-Length')), 5000, 'second answer');
  assert.deepEqual(
    d.events.map((e) => [e.id, e.data]),
    [[ids[2], 'three']],
  );
});

test('a long-poll answer cut by its page size still carries the reset of a trimmed channel (no silent gap on the next poll)', async (t) => {
  // History keeps 3 messages per channel; the answer carries 2 events at most.
  const { port, base } = await startTestHub(t, ['--long-poll-max-events', '2', '--history-size', '3']);
  const first = await publishJson(base, { channel: 'gone', data: 'g0' });
  const cursor = (first.json as { ids: string[] }).ids[0]!;
  // 'gone' gets 5 more: its history (3) no longer reaches back to the cursor. 'busy' gets 3.
  for (let i = 1; i <= 5; i++) await publishJson(base, { channel: 'gone', data: `g${i}` });
  const busy: string[] = [];
  for (let i = 0; i < 3; i++) busy.push(((await publishJson(base, { channel: 'busy', data: `b${i}` })).json as { ids: string[] }).ids[0]!);
  const c = await RawHttpClient.request(port, '/?channels=gone&channels=busy', { headers: { ...XHR, 'Last-Event-ID': cursor } });
  t.after(() => c.close());
  await c.until((x) => x.head !== '' && x.body.length >= Number(x.header('Content-Length')), 5000, 'complete response');
  const events = c.events;
  assert.deepEqual(
    events.filter((e) => e.event === undefined).map((e) => e.id),
    busy.slice(0, 2),
    'the first page of the busy channel',
  );
  const reset = events.find((e) => e.event === 'reset');
  assert.ok(reset, `a reset in the cut answer: ${c.body}`);
  assert.deepEqual((JSON.parse(reset.data) as { channels: string[] }).channels, ['gone']);
  assert.equal(reset.id, busy[1], 'the reset carries the id of the last message written, so ids keep increasing');
});
