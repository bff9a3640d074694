import { test } from 'node:test';
import assert from 'node:assert/strict';
import { httpRequest, publishJson, RawHttpClient, scrapeMetrics, startTestHub, waitFor } from '@cyclone-sse/testkit';
import { readFileSync } from 'node:fs';
import { uwsBuild } from '@cyclone-sse/common';

test('metrics move with traffic: 10 messages to 3 subscribers = 30 deliveries', async (t) => {
  const { port, base, metricsBase } = await startTestHub(t);
  const before = await scrapeMetrics(metricsBase);
  for (const name of [
    'cyclone_sse_edge_connections',
    'cyclone_sse_edge_channels',
    'cyclone_sse_edge_deliveries_total',
    'cyclone_sse_edge_messages_received_total',
    'cyclone_sse_edge_writes_total',
    'cyclone_sse_edge_bytes_written_total',
    'cyclone_sse_edge_heartbeats_total',
    'cyclone_sse_edge_resume_replays_total',
    'cyclone_sse_edge_backpressure_total',
    'cyclone_sse_edge_delivery_lag_seconds_count',
    'cyclone_sse_edge_connections_closed_total{reason="slow"}',
    'cyclone_sse_edge_resets_total{reason="trimmed"}',
    'cyclone_sse_edge_connections_refused_total{reason="per_ip"}',
    'cyclone_sse_publisher_publishes_total{source="amqp",outcome="ok"}',
    // prom-client's default metrics under their standard names (stock Node.js dashboards)
    'process_cpu_seconds_total',
    'process_resident_memory_bytes',
    'nodejs_heap_size_used_bytes',
  ])
    assert.ok(before.has(name), `${name} present from start`);
  assert.equal(before.get('cyclone_sse_edge_connections'), 0);
  assert.ok(![...before.keys()].some((k) => /^cyclone_sse_(process|nodejs)_/.test(k)), 'no prefixed default metrics');
  const info = [...before].filter(([k]) => k.startsWith('cyclone_sse_build_info{'));
  assert.equal(info.length, 1, JSON.stringify(info));
  const version = (JSON.parse(readFileSync(new URL('../../common/package.json', import.meta.url), 'utf8')) as { version: string }).version;
  const uws = uwsBuild();
  assert.ok(uws);
  assert.deepEqual(info[0], [
    `cyclone_sse_build_info{version="${version}",node="${process.version}",uws="${uws.package}@${uws.version}"}`,
    1,
  ]);

  const subs = await Promise.all([0, 1, 2].map(() => RawHttpClient.request(port, '/?channels=m&channels=other')));
  t.after(() => subs.forEach((s) => s.close()));
  await Promise.all(subs.map((s) => s.until((x) => x.body.includes(':ok'))));
  let mid = await scrapeMetrics(metricsBase);
  assert.equal(mid.get('cyclone_sse_edge_connections'), 3);
  assert.equal(mid.get('cyclone_sse_edge_channels'), 2);
  for (let i = 0; i < 10; i++) await publishJson(base, { channel: 'm', data: `n${i}` });
  await publishJson(base, { channel: 'nobody', data: 'x' });
  await Promise.all(subs.map((s) => s.untilEvents(10)));
  mid = await scrapeMetrics(metricsBase);
  const d = (name: string) => mid.get(name)! - before.get(name)!;
  assert.equal(d('cyclone_sse_edge_deliveries_total'), 30);
  assert.equal(d('cyclone_sse_edge_messages_received_total'), 11);
  assert.equal(d('cyclone_sse_edge_delivery_lag_seconds_count'), 10, 'lag observed per delivered message');
  assert.equal(d('cyclone_sse_publisher_publishes_total{source="http",outcome="ok"}'), 11);
  assert.ok(d('cyclone_sse_edge_bytes_written_total') >= 30 * 'id: x-1\ndata: n0\n\n'.length);
  subs.forEach((s) => s.close());
  await waitFor(async () => (await scrapeMetrics(metricsBase)).get('cyclone_sse_edge_connections') === 0, 5000, 'gauge back to 0');
  const after = await scrapeMetrics(metricsBase);
  assert.equal(
    after.get('cyclone_sse_edge_connections_closed_total{reason="client"}')! -
      before.get('cyclone_sse_edge_connections_closed_total{reason="client"}')!,
    3,
  );
  assert.equal(after.get('cyclone_sse_edge_channels'), 0);
});

test('/livez and /readyz answer JSON; unknown internal paths are 404', async (t) => {
  const { metricsBase } = await startTestHub(t);
  const live = await httpRequest(`${metricsBase}/livez`);
  assert.equal(live.status, 200);
  assert.deepEqual(live.json, { status: 'ok' });
  const ready = await httpRequest(`${metricsBase}/readyz`);
  assert.equal(ready.status, 200);
  assert.deepEqual(ready.json, { status: 'ready', reason: 'ok' });
  assert.equal((await httpRequest(`${metricsBase}/nope`)).status, 404);
});
