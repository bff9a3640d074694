import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { RecordingSubscriber, scrapeMetric, startCluster, startRedis, waitFor } from '@cyclone-sse/testkit';

test('legacy Redis ingest with 2 publisher replicas: each raw PUBLISH arrives exactly once', async (t) => {
  // Its own Redis: with pattern * every raw channel on the server is ingested.
  const redis = await startRedis();
  t.after(() => redis.stop());
  const c = await startCluster(t, { redisUrl: redis.url, edges: 1, publishers: 2, publisherArgs: ['--redis-ingest-pattern', '*'] });
  const raw = new Redis(redis.url);
  t.after(() => raw.disconnect());
  const base = `legacy-${c.prefix}`;
  const sub = new RecordingSubscriber(`${c.base}/?channels=${base}`);
  t.after(() => sub.close());
  await sub.opened();
  // One replica holds the lease and is subscribed.
  await waitFor(
    async () => {
      let leaders = 0;
      for (const p of c.publishers) leaders += await scrapeMetric(p.metricsBase, 'cyclone_sse_publisher_redis_ingest_leader', 0);
      return leaders === 1;
    },
    15_000,
    'exactly one ingest leader',
  );
  const sent: string[] = [];
  for (let i = 0; i < 200; i++) {
    const msg = JSON.stringify([1, 2, i]);
    sent.push(msg);
    await raw.publish(base, msg);
  }
  await raw.publish(base, '"sentinel"');
  await waitFor(() => sub.has('"sentinel"'), 15_000, 'sentinel');
  assert.deepEqual(
    sub.received.map((r) => r.data),
    [...sent, '"sentinel"'],
  );
  // The hub's own channels are never re-ingested: the number of messages in the sequence equals what was sent.
  const seq = Number(await raw.get(`${c.prefix}:seq`));
  assert.equal(seq, 201);
});
