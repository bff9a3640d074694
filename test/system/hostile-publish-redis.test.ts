import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import {
  RawHttpClient,
  publishJson,
  spawnNode,
  startCanary,
  startRedis,
  waitFor,
  type NodeProcess,
  type RedisServer,
} from '@cyclone-sse/testkit';

// Issue 11, points 4 and 12: on a private redis-server (it is stopped or paused here).

const FIXED_503 = 'the message broker is unavailable; retry later (a retry with the same idempotency key is never applied twice)';

async function cluster(t: TestContext): Promise<{ redis: RedisServer; edge: NodeProcess; publisher: NodeProcess }> {
  const redis = await startRedis();
  t.after(() => redis.stop());
  const common = ['--redis-url', redis.url, '--redis-prefix', 'hpr', '--log-level', 'info'];
  const edge = await spawnNode('edge', [...common, '--drain-seconds', '0']);
  t.after(() => edge.stop(3000));
  const publisher = await spawnNode('publisher', common);
  t.after(() => publisher.stop(3000));
  return { redis, edge, publisher };
}

test('Redis stopped: 503 bodies carry one fixed message (no ioredis text), the cause is logged once', async (t) => {
  const { redis, edge, publisher } = await cluster(t);
  // The canary runs while Redis is up, beside an attack that is refused; it cannot run on a
  // stopped Redis, which is the point of the second half.
  const canary = await startCanary({ port: edge.port, base: publisher.base }, { intervalMs: 25 });
  const attack = await publishJson(publisher.base, { channels: Array(5000).fill('x'), data: 'y' });
  assert.equal(attack.status, 400);
  await waitFor(() => canary.sent.length >= 5, 10_000, 'canary messages');
  await canary.stop();

  await redis.stop();
  const answers = [];
  for (let i = 0; i < 5; i++) answers.push(await publishJson(publisher.base, { channel: 'c', data: String(i) }));
  for (const r of answers) {
    assert.equal(r.status, 503, r.text);
    assert.deepEqual(r.json, { statusCode: 503, code: 'BROKER_UNAVAILABLE', error: 'Service Unavailable', message: FIXED_503 });
    assert.doesNotMatch(r.text, /ECONNREFUSED|127\.0\.0\.1|Connection|ioredis|stream/i);
  }
  const logged = publisher
    .output()
    .split('\n')
    .filter((l) => l.includes('"event":"redis_publish_failed"'));
  assert.equal(logged.length, 1, 'the cause is logged once per state change, not per request');
  assert.equal(
    publisher
      .output()
      .split('\n')
      .filter((l) => l.includes('"event":"request_failed"')).length,
    0,
  );
});

test('a publish whose answer times out while Redis is paused is settled: 200 with its ids, applied once', async (t) => {
  const { redis, edge, publisher } = await cluster(t);
  const sub = await RawHttpClient.request(edge.port, '/?channels=slow');
  t.after(() => sub.close());
  await sub.until((c) => c.body.includes(':ok'), 5000, 'subscriber open');
  const admin = new Redis(redis.url);
  t.after(() => admin.disconnect());
  // Writes wait 7 s: longer than the publisher's 5 s command timeout; the publish is applied
  // when the pause ends, after the client already timed out.
  await admin.call('CLIENT', 'PAUSE', '7000', 'WRITE');
  const r = await publishJson(publisher.base, { channel: 'slow', data: 'applied late' });
  assert.equal(r.status, 200, r.text);
  const ids = (r.json as { ids: string[] }).ids;
  assert.equal(ids.length, 1);
  const sentinel = await publishJson(publisher.base, { channel: 'slow', data: 'sentinel' });
  assert.equal(sentinel.status, 200, sentinel.text);
  await sub.untilEvents(2, 10_000);
  assert.deepEqual(
    sub.events.map((e) => [e.id, e.data]),
    [
      [ids[0], 'applied late'],
      [(sentinel.json as { ids: string[] }).ids[0], 'sentinel'],
    ],
  );
});
