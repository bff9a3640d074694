import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { httpRequest, publishJson, RecordingSubscriber, scrapeMetric, startCluster, startRedis, waitFor } from '@cyclone-sse/testkit';

async function ready(base: string): Promise<boolean> {
  return (await httpRequest(`${base}/readyz`).catch(() => ({ status: 0 }))).status === 200;
}

async function redisState(base: string): Promise<string | undefined> {
  const r = await httpRequest(`${base}/readyz`).catch(() => ({ json: undefined }));
  return (r.json as { redis?: string } | undefined)?.redis;
}

test('CLIENT KILL TYPE pubsub under a 2 ms publish loop: nothing lost, repair counted', async (t) => {
  const redis = await startRedis();
  t.after(() => redis.stop());
  const c = await startCluster(t, { redisUrl: redis.url, edges: 1 });
  const admin = new Redis(redis.url);
  t.after(() => admin.disconnect());
  const subs = Array.from({ length: 5 }, () => new RecordingSubscriber(`${c.base}/?channels=f`));
  t.after(() => subs.forEach((s) => s.close()));
  await Promise.all(subs.map((s) => s.opened()));

  const published: string[] = [];
  let kills = 0;
  for (let i = 0; i < 600; i++) {
    const r = await publishJson(c.publishers[0]!.base, { channel: 'f', data: `x${i}` });
    assert.equal(r.status, 200, r.text);
    published.push((r.json as { ids: string[] }).ids[0]!);
    if (i % 150 === 75) kills += Number(await admin.call('CLIENT', 'KILL', 'TYPE', 'pubsub'));
    await sleep(2);
  }
  assert.ok(kills >= 4, `killed the subscriber connection (${kills})`);
  await waitFor(() => subs.every((s) => s.received.length >= published.length), 20_000, 'catch-up', 50);
  for (const s of subs) assert.deepEqual(s.ids, published);
  const edge = c.edges[0]!.metricsBase;
  assert.ok((await scrapeMetric(edge, 'cyclone_sse_edge_gap_repairs_total')) >= 1, 'gap repair counted');
});

test('redis kill -9 + restart with AOF: 503 while down, no acknowledged publish lost', async (t) => {
  const redis = await startRedis({ appendonly: true, extraArgs: ['--appendfsync', 'always'] });
  t.after(() => redis.stop());
  const c = await startCluster(t, { redisUrl: redis.url, edges: 1 });
  const subs = Array.from({ length: 5 }, () => new RecordingSubscriber(`${c.base}/?channels=aof`));
  t.after(() => subs.forEach((s) => s.close()));
  await Promise.all(subs.map((s) => s.opened()));
  const pub = c.publishers[0]!.base;
  const acked: string[] = [];
  const publish = async (data: string) => {
    const r = await publishJson(pub, { channel: 'aof', data });
    if (r.status === 200) acked.push((r.json as { ids: string[] }).ids[0]!);
    return r;
  };
  for (let i = 0; i < 100; i++) assert.equal((await publish(`a${i}`)).status, 200);
  await redis.kill9();
  const down = await publish('while-down');
  assert.equal(down.status, 503);
  assert.equal((down.json as { code: string }).code, 'BROKER_UNAVAILABLE');
  // The edge stays ready (it can hold streams); its /readyz body says Redis is down.
  await waitFor(async () => (await redisState(c.edges[0]!.metricsBase)) === 'down', 10_000, 'edge saw Redis down');
  assert.ok(await ready(c.edges[0]!.metricsBase), 'edge ready while Redis is down');
  await redis.restart();
  await waitFor(async () => (await redisState(c.edges[0]!.metricsBase)) === 'up', 20_000, 'edge saw Redis up again');
  await waitFor(async () => (await publish('probe')).status === 200, 20_000, 'publisher recovers');
  for (let i = 0; i < 100; i++) assert.equal((await publish(`b${i}`)).status, 200);
  await waitFor(() => subs.every((s) => s.received.length >= acked.length), 20_000, 'catch-up', 50);
  for (const s of subs) {
    assert.deepEqual(s.ids, acked, 'every acknowledged publish, once, in order');
    assert.ok(!s.received.some((r) => r.type === 'reset'));
  }
});

test('redis kill -9 + restart without persistence: epoch changes, clients get reset, then live', async (t) => {
  const redis = await startRedis();
  t.after(() => redis.stop());
  const c = await startCluster(t, { redisUrl: redis.url, edges: 1 });
  const subs = Array.from({ length: 3 }, () => new RecordingSubscriber(`${c.base}/?channels=e1&channels=e2`));
  t.after(() => subs.forEach((s) => s.close()));
  await Promise.all(subs.map((s) => s.opened()));
  const pub = c.publishers[0]!.base;
  const before: string[] = [];
  for (let i = 0; i < 20; i++) before.push(((await publishJson(pub, { channel: 'e1', data: `p${i}` })).json as { ids: string[] }).ids[0]!);
  await waitFor(() => subs.every((s) => s.received.length >= 20), 10_000, 'pre-restart messages');
  const oldEpoch = before[0]!.split('-')[0];
  await redis.kill9();
  assert.equal((await publishJson(pub, { channel: 'e1', data: 'down' })).status, 503);
  await redis.restart();
  let after: string | undefined;
  await waitFor(
    async () => {
      const r = await publishJson(pub, { channel: 'e2', data: 'after' });
      if (r.status === 200) after = (r.json as { ids: string[] }).ids[0];
      return r.status === 200;
    },
    20_000,
    'publisher recovers',
  );
  assert.notEqual(after!.split('-')[0], oldEpoch, 'new epoch');
  await waitFor(() => subs.every((s) => s.has('after')), 20_000, 'live message after the restart');
  for (const s of subs) {
    assert.deepEqual(s.ids.slice(0, 20), before);
    const rest = s.received.slice(20);
    const resetIdx = rest.findIndex((r) => r.type === 'reset');
    assert.ok(resetIdx >= 0, 'a reset event was sent');
    const body = JSON.parse(rest[resetIdx]!.data) as { channels: string[]; reason: string };
    assert.deepEqual(body.channels.sort(), ['e1', 'e2']);
    assert.equal(rest[resetIdx]!.id.split('-')[0], after!.split('-')[0], 'reset carries the new epoch');
    const afterIdx = rest.findIndex((r) => r.data === 'after');
    assert.ok(afterIdx > resetIdx, 'reset before the live message');
    assert.equal(rest.filter((r) => r.data === 'after').length, 1);
  }
});

test('edge stalled past the pub/sub output-buffer limit: Redis drops it, the edge repairs from history', async (t) => {
  const redis = await startRedis();
  t.after(() => redis.stop());
  // History is written by the publisher: it must hold the whole stall.
  const c = await startCluster(t, {
    redisUrl: redis.url,
    edges: 1,
    publisherArgs: ['--history-size', '20000', '--history-max-bytes-per-channel', '67108864'],
  });
  const admin = new Redis(redis.url);
  t.after(() => admin.disconnect());
  await admin.config('SET', 'client-output-buffer-limit', 'pubsub 256kb 64kb 1');
  const subs = Array.from({ length: 3 }, () => new RecordingSubscriber(`${c.base}/?channels=ob`));
  t.after(() => subs.forEach((s) => s.close()));
  await Promise.all(subs.map((s) => s.opened()));
  const edgePid = c.edges[0]!.pid;
  const payload = 'y'.repeat(1024);
  const published: string[] = [];
  process.kill(edgePid, 'SIGSTOP');
  try {
    for (let b = 0; b < 100; b++) {
      const batch = Array.from({ length: 100 }, (_, i) => ({ channel: 'ob', data: `${b * 100 + i}:${payload}` }));
      const r = await publishJson(c.publishers[0]!.base, batch);
      assert.equal(r.status, 200, r.text);
      for (const a of r.json as { ids: string[] }[]) published.push(a.ids[0]!);
    }
    // Redis must have dropped the stalled subscriber.
    // (Redis 7.0 has no disconnection counter in INFO: the stalled edge cannot reconnect, so
    // the drop shows as no pub/sub client left.)
    await waitFor(
      async () => String(await admin.call('CLIENT', 'LIST', 'TYPE', 'pubsub')).trim() === '',
      15_000,
      'output-buffer disconnection',
    );
  } finally {
    process.kill(edgePid, 'SIGCONT');
  }
  await waitFor(() => subs.every((s) => s.received.length >= published.length), 30_000, 'catch-up', 50);
  for (const s of subs) assert.deepEqual(s.ids, published);
  assert.ok((await scrapeMetric(c.edges[0]!.metricsBase, 'cyclone_sse_edge_gap_repairs_total')) >= 1);
});
