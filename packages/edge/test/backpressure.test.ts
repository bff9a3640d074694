import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openStream, publishJson, scrapeMetrics, startTestHub, waitFor } from '@cyclone-sse/testkit';

/** Publishes `count` messages of `size` bytes in batches; returns their ids in order. */
async function flood(base: string, channel: string, count: number, size: number, tag: string): Promise<string[]> {
  const ids: string[] = [];
  const pad = 'z'.repeat(size);
  for (let i = 0; i < count; i += 50) {
    const batch = Array.from({ length: Math.min(50, count - i) }, (_, j) => ({ channel, data: `${tag}${i + j}:${pad}` }));
    const r = await publishJson(base, batch);
    assert.equal(r.status, 200, r.text);
    for (const a of r.json as { ids: string[] }[]) ids.push(a.ids[0]!);
  }
  return ids;
}

test('a reader that stops reading is closed as slow; others get everything; it resumes without loss', async (t) => {
  const { port, base, metricsBase } = await startTestHub(t, [
    '--max-queued-bytes',
    '262144',
    '--max-body',
    '4194304',
    '--history-size',
    '5000',
    '--history-max-bytes-per-channel',
    '67108864',
    '--heartbeat',
    '60',
  ]);
  const slow = await openStream(port, '/?channels=bp');
  const fast = await openStream(port, '/?channels=bp');
  t.after(() => [slow, fast].forEach((c) => c.close()));
  slow.socket.pause();
  const ids = await flood(base, 'bp', 1600, 16 * 1024, 'm');
  await fast.untilEvents(ids.length, 30_000);
  assert.deepEqual(
    fast.events.map((e) => e.id),
    ids,
    'the healthy subscriber got everything',
  );
  await waitFor(
    async () => (await scrapeMetrics(metricsBase)).get('cyclone_sse_edge_connections_closed_total{reason="slow"}') === 1,
    10_000,
    'slow close counted',
  );
  // The slow reader reads what reached it, then sees the end of the stream.
  slow.socket.resume();
  await slow.untilEnded(20_000);
  const got = slow.events.map((e) => e.id);
  assert.ok(got.length < ids.length, 'it was cut off before the end');
  assert.deepEqual(got, ids.slice(0, got.length), 'what it got is a prefix, in order');
  // Reconnect with the last id it got: the rest arrives, nothing twice.
  const again = await openStream(port, '/?channels=bp', { lastEventId: got[got.length - 1] });
  t.after(() => again.close());
  await again.untilEvents(ids.length - got.length, 30_000);
  assert.deepEqual([...got, ...again.events.map((e) => e.id)], ids);
});

test('a reader that reads slowly but keeps up is never disconnected (uWS stall timer stays off)', async (t) => {
  const { port, base, metricsBase } = await startTestHub(t, [
    '--max-queued-bytes',
    '67108864',
    '--max-body',
    '4194304',
    '--history-size',
    '10000',
    '--history-max-bytes-per-channel',
    '67108864',
  ]);
  const reader = await openStream(port, '/?channels=sl');
  t.after(() => reader.close());
  const all: string[] = [];
  // Three rounds: stop reading while ~10 MB are published (more than the kernel buffers hold),
  // then read again; 15 s in all, past uWS's 10 s timer.
  for (let round = 0; round < 3; round++) {
    reader.socket.pause();
    all.push(...(await flood(base, 'sl', 640, 16 * 1024, `r${round}-`)));
    await new Promise((r) => setTimeout(r, 4000));
    reader.socket.resume();
    await reader.untilEvents(all.length, 30_000);
  }
  assert.deepEqual(
    reader.events.map((e) => e.id),
    all,
  );
  assert.equal(reader.ended, false, 'still connected');
  const m = await scrapeMetrics(metricsBase);
  assert.ok((m.get('cyclone_sse_edge_backpressure_total') ?? 0) >= 1, 'backpressure happened');
  assert.equal(m.get('cyclone_sse_edge_connections_closed_total{reason="slow"}'), 0);
});

test('coalescing: a burst reaches a paused subscriber as complete frames, in order, in fewer writes', async (t) => {
  const { port, base, metricsBase } = await startTestHub(t, ['--heartbeat', '60']);
  const c = await openStream(port, '/?channels=co');
  t.after(() => c.close());
  const before = await scrapeMetrics(metricsBase);
  c.socket.pause();
  const batch = Array.from({ length: 40 }, (_, i) => ({ channel: 'co', data: `b${i}`, event: i % 2 ? 'odd' : undefined }));
  const r = await publishJson(base, batch);
  const ids = (r.json as { ids: string[] }[]).map((a) => a.ids[0]!);
  c.socket.resume();
  await c.untilEvents(40);
  assert.deepEqual(
    c.events.map((e) => [e.id, e.data]),
    ids.map((id, i) => [id, `b${i}`]),
  );
  assert.ok(c.body.endsWith('\n\n'), 'complete frames');
  const after = await scrapeMetrics(metricsBase);
  const writes = after.get('cyclone_sse_edge_writes_total')! - before.get('cyclone_sse_edge_writes_total')!;
  const deliveries = after.get('cyclone_sse_edge_deliveries_total')! - before.get('cyclone_sse_edge_deliveries_total')!;
  assert.equal(deliveries, 40);
  assert.equal(writes, 1, 'one write for the whole burst');
});
