import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openStream, publishJson, RawHttpClient, scrapeMetrics, startTestHub } from '@cyclone-sse/testkit';

/** A refused stream carries only `retry: N\n\n`, no `:ok`. */
const ANY_FIRST_BYTES = { firstBytes: '\n\n' };

const refused = (c: RawHttpClient) => c.status === 200 && /^retry: \d+\n\n$/.test(c.body);

test('--max-connections: the next stream gets 200 + retry: and ends; others are served meanwhile', async (t) => {
  const { port, base, metricsBase } = await startTestHub(t, ['--max-connections', '3']);
  const open: RawHttpClient[] = [];
  for (let i = 0; i < 3; i++) open.push(await openStream(port, '/?channels=cap', ANY_FIRST_BYTES));
  t.after(() => open.forEach((c) => c.close()));
  const extra = await RawHttpClient.request(port, '/?channels=cap');
  await extra.until((x) => x.ended || refused(x), 5000, 'refusal');
  assert.ok(refused(extra), extra.text);
  assert.equal(extra.header('Content-Type'), 'text/event-stream');
  const id = ((await publishJson(base, { channel: 'cap', data: 'still-served' })).json as { ids: string[] }).ids[0];
  for (const c of open) await c.until((x) => x.events.some((e) => e.id === id), 5000, 'delivery to the admitted streams');
  const m = await scrapeMetrics(metricsBase);
  assert.equal(m.get('cyclone_sse_edge_connections_refused_total{reason="max_connections"}'), 1);
  assert.equal(m.get('cyclone_sse_edge_connections_closed_total{reason="limit"}'), 1);
  // A slot frees up when one leaves.
  open.pop()!.close();
  let again: RawHttpClient | undefined;
  for (let i = 0; i < 50 && !again; i++) {
    const c = await openStream(port, '/?channels=cap', ANY_FIRST_BYTES);
    if (c.body.includes(':ok')) again = c;
    else c.close();
  }
  assert.ok(again, 'admitted after a slot freed');
  again.close();
});

test('--max-connections-per-ip with X-Forwarded-For from a trusted proxy only', async (t) => {
  const { port } = await startTestHub(t, ['--max-connections-per-ip', '2', '--trusted-proxies', '127.0.0.0/8']);
  const a1 = await openStream(port, '/?channels=ip', { ...ANY_FIRST_BYTES, headers: { 'X-Forwarded-For': '203.0.113.7' } });
  const a2 = await openStream(port, '/?channels=ip', { ...ANY_FIRST_BYTES, headers: { 'X-Forwarded-For': '198.51.100.1, 203.0.113.7' } });
  const b1 = await openStream(port, '/?channels=ip', { ...ANY_FIRST_BYTES, headers: { 'X-Forwarded-For': '203.0.113.8' } });
  t.after(() => [a1, a2, b1].forEach((c) => c.close()));
  for (const c of [a1, a2, b1]) assert.match(c.body, /:ok/);
  const a3 = await openStream(port, '/?channels=ip', { ...ANY_FIRST_BYTES, headers: { 'X-Forwarded-For': '203.0.113.7' } });
  t.after(() => a3.close());
  assert.ok(refused(a3), `third stream from 203.0.113.7 refused: ${a3.body}`);
  const b2 = await openStream(port, '/?channels=ip', { ...ANY_FIRST_BYTES, headers: { 'X-Forwarded-For': '203.0.113.8' } });
  t.after(() => b2.close());
  assert.match(b2.body, /:ok/, 'another client is still admitted');
});

test('X-Forwarded-For is ignored when the peer is not a trusted proxy', async (t) => {
  const { port } = await startTestHub(t, ['--max-connections-per-ip', '1']);
  const a = await openStream(port, '/?channels=ip', { ...ANY_FIRST_BYTES, headers: { 'X-Forwarded-For': '203.0.113.1' } });
  const b = await openStream(port, '/?channels=ip', { ...ANY_FIRST_BYTES, headers: { 'X-Forwarded-For': '203.0.113.2' } });
  t.after(() => [a, b].forEach((c) => c.close()));
  assert.match(a.body, /:ok/);
  assert.ok(refused(b), 'both come from 127.0.0.1: the header was not trusted');
});
