import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  httpRequest,
  openFanOutSubscribers,
  publishFanOut,
  publishJson,
  RecordingSubscriber,
  startCluster,
  strictlyIncreasing,
  amqpTestTopology,
  testRedisUrl,
  waitFor,
} from '@cyclone-sse/testkit';

const REDIS = testRedisUrl();

test('2 edges + 2 publishers behind nginx: 200 subscribers get every message of their channels once, in one order', async (t) => {
  const { exchange, publisherArgs, ch } = await amqpTestTopology(t, 't');
  const c = await startCluster(t, { redisUrl: REDIS, publishers: 2, publisherArgs });

  const channels = Array.from({ length: 10 }, (_, i) => `ch${i}`);
  const subs = await openFanOutSubscribers(t, c.base, 200, (i) => [channels[i % 10]!, channels[(i + 3) % 10]!]);
  // Both edges hold subscribers.
  for (const e of c.edges) {
    const stats = (await httpRequest(`${e.base}/stats`)).json as [string, number][];
    assert.ok(stats.length > 0, 'each edge has subscribers');
  }

  // 2 000 messages: even ones over HTTP (nginx → either publisher), odd ones over AMQP.
  const { expected } = await publishFanOut(c.base, { exchange, ch }, channels, 2000, subs);
  // Reference order per channel pair: the first subscriber with that pair.
  const reference = new Map<string, string[]>();
  for (const { sub, channels: mine } of subs) {
    const want = new Set(mine.flatMap((x) => [...expected.get(x)!]));
    const got = sub.received.map((r) => r.data);
    assert.equal(got.length, want.size, 'no duplicate, no extra');
    assert.deepEqual(new Set(got), want, 'exactly the published messages of its channels');
    assert.ok(strictlyIncreasing(sub.ids), 'ids strictly increasing');
    const key = mine.join('+');
    const ids = sub.ids.join(',');
    if (!reference.has(key)) reference.set(key, sub.ids);
    else assert.equal(ids, reference.get(key)!.join(','), 'same order on every edge');
  }
});

test('edge SIGKILLed mid-stream: clients resume through nginx on the other edge with no gap and no duplicate', async (t) => {
  const c = await startCluster(t, { redisUrl: REDIS, publishers: 1 });
  const subs = Array.from({ length: 40 }, () => new RecordingSubscriber(`${c.base}/?channels=k1&channels=k2`));
  t.after(() => subs.forEach((s) => s.close()));
  await Promise.all(subs.map((s) => s.opened()));
  const onFirst = ((await httpRequest(`${c.edges[0]!.base}/stats`)).json as [string, number][]).find(([x]) => x === 'k1')?.[1] ?? 0;
  assert.ok(onFirst > 0, 'the edge to kill holds subscribers');

  const published: string[] = [];
  let killed = false;
  for (let i = 0; i < 400; i++) {
    const r = await publishJson(c.base, { channel: i % 2 ? 'k1' : 'k2', data: `d${i}` });
    assert.equal(r.status, 200, r.text);
    published.push((r.json as { ids: string[] }).ids[0]!);
    if (i === 150) {
      c.edges[0]!.kill('SIGKILL');
      killed = true;
    }
  }
  assert.ok(killed);
  await waitFor(() => subs.every((s) => s.received.length >= published.length), 30_000, 'all subscribers to catch up', 50);
  for (const s of subs) {
    assert.deepEqual(s.ids, published, 'exact published list after the reconnect');
    assert.ok(!s.received.some((r) => r.type === 'reset'));
  }
  assert.ok(
    subs.some((s) => s.opens > 1),
    'some clients reconnected',
  );
});
