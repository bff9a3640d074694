import { test } from 'node:test';
import assert from 'node:assert/strict';
import { httpRequest, publishJson, RawHttpClient, RecordingSubscriber, startCluster, testRedisUrl, waitFor } from '@cyclone-sse/testkit';

const REDIS = testRedisUrl();

test('SIGTERM drain: readiness fails, every stream ends with retry:, clients resume on the other edge with no gap', async (t) => {
  const c = await startCluster(t, { redisUrl: REDIS, edges: 2, edgeArgs: ['--drain-seconds', '1.5'] });
  const [leaving, staying] = c.edges;
  // Direct raw streams on the leaving edge, to see the last bytes.
  const raws = await Promise.all(Array.from({ length: 5 }, () => RawHttpClient.request(leaving!.port, '/?channels=dr')));
  t.after(() => raws.forEach((r) => r.close()));
  await Promise.all(raws.map((r) => r.until((x) => x.body.includes(':ok'), 5000, 'open')));
  // EventSources through nginx, spread over both edges.
  const subs = Array.from({ length: 30 }, () => new RecordingSubscriber(`${c.base}/?channels=dr`));
  t.after(() => subs.forEach((s) => s.close()));
  await Promise.all(subs.map((s) => s.opened()));
  assert.equal((await httpRequest(`${leaving!.metricsBase}/readyz`)).status, 200);

  const published: string[] = [];
  let publishing = true;
  const loop = (async () => {
    for (let i = 0; publishing && i < 2000; i++) {
      const r = await publishJson(c.publishers[0]!.base, { channel: 'dr', data: `q${i}` });
      assert.equal(r.status, 200, r.text);
      published.push((r.json as { ids: string[] }).ids[0]!);
      await new Promise((res) => setTimeout(res, 5));
    }
  })();
  await waitFor(() => published.length >= 20, 10_000, 'some traffic');
  leaving!.kill('SIGTERM');
  // The first stream to end finds the edge already not ready (it is still up, draining the rest).
  await Promise.race(raws.map((r) => r.untilComplete(5000)));
  const ready = await httpRequest(`${leaving!.metricsBase}/readyz`);
  assert.equal(ready.status, 503);
  assert.equal((ready.json as { reason: string }).reason, 'draining');
  for (const r of raws) {
    await r.untilComplete(5000);
    assert.ok(r.complete, 'the response was ended properly (not cut)');
    assert.match(r.body, /\nretry: \d+\n\n$/, 'the stream ends with a retry: hint');
  }
  assert.equal(await leaving!.exited, 0, 'exit 0 after the drain');
  await waitFor(() => published.length >= 200, 20_000, 'traffic after the drain');
  publishing = false;
  await loop;
  await waitFor(() => subs.every((s) => s.received.length >= published.length), 20_000, 'catch-up', 50);
  for (const s of subs) assert.deepEqual(s.ids, published, 'no gap, no duplicate');
  assert.ok(
    subs.some((s) => s.opens > 1),
    'some clients moved to the other edge',
  );
  const onStaying = ((await httpRequest(`${staying!.base}/stats`)).json as [string, number][]).find(([x]) => x === 'dr')?.[1];
  assert.equal(onStaying, 30, 'all EventSources now on the remaining edge');
});
