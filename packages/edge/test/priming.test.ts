/**
 * The priming id (docs/protocol.md#priming-id) on a raw socket: the exact first bytes of a stream with and without
 * a cursor, on the memory and on the Redis broker; a long-poll answer carries none; the priming
 * id resumes on another edge with exactly what was published after it; streams opened while
 * publishes are in flight get exactly the messages after their priming id (both ways the edge
 * takes it: the broker's live position, and one position read). A stream opened while Redis is
 * unreachable: redis-outage.test.ts.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { setTimeout as sleep } from 'node:timers/promises';
import { RedisBroker, createLogger, type Broker, type Cursor } from '@cyclone-sse/common';
import { publishJson, RawHttpClient, startTestHub, testRedisUrl, waitFor, type TestHub } from '@cyclone-sse/testkit';

const REDIS = testRedisUrl();
// --retry-jitter 0: every stream gets exactly `retry: 2000` (the bytes are pinned below).
const QUIET = ['--heartbeat', '3600', '--retry', '2000', '--retry-jitter', '0'];
const XHR = { 'X-Requested-With': 'XMLHttpRequest' };

function redisArgs(t: TestContext, url = REDIS, prefix = `prime${randomBytes(4).toString('hex')}`): string[] {
  t.after(async () => {
    if (url !== REDIS) return;
    const redis = new Redis(url);
    const keys = await redis.keys(`${prefix}:*`);
    if (keys.length > 0) await redis.del(...keys);
    redis.disconnect();
  });
  return ['--redis-url', url, '--redis-prefix', prefix];
}

/**
 * A Redis broker whose live tracker never claims to be in sync, so the edge reads the position;
 * its reply reaches the edge 30 ms late (a slow network), so live messages at or below and above
 * the position it read arrive while the stream waits for it.
 */
class PositionReadBroker extends RedisBroker {
  override livePosition(): undefined {
    return undefined;
  }

  override async position(): Promise<Cursor> {
    const p = await super.position();
    await sleep(30);
    return p;
  }
}

async function open(t: TestContext, hub: TestHub, path: string, headers: Record<string, string> = {}): Promise<RawHttpClient> {
  const c = await RawHttpClient.request(hub.port, path, { headers });
  t.after(() => c.close());
  await c.until((x) => x.body.includes(':ok\n\n'), 5000, 'first bytes');
  assert.equal(c.status, 200);
  assert.equal(c.header('Content-Type'), 'text/event-stream');
  return c;
}

async function publish(hub: TestHub, channel: string, data: string): Promise<string> {
  const r = await publishJson(hub.base, { channel, data });
  assert.equal(r.status, 200, r.text);
  return (r.json as { ids: string[] }).ids[0]!;
}

const PRIMED = /^retry: 2000\nid: ([0-9a-z]{1,32}-\d+)\n:ok\n\n/;

function primingId(c: RawHttpClient): string {
  const m = PRIMED.exec(c.body);
  assert.ok(m, `priming block first: ${JSON.stringify(c.body.slice(0, 80))}`);
  return m[1]!;
}

for (const kind of ['memory', 'redis'] as const) {
  test(`${kind} broker: exact first bytes with and without a cursor; long-poll answers carry none`, async (t) => {
    const hub = await startTestHub(t, [...QUIET, ...(kind === 'redis' ? redisArgs(t) : [])]);
    const top = await hub.hub.broker.position();
    const fresh = await open(t, hub, '/?channels=p');
    assert.equal(fresh.body, `retry: 2000\nid: ${top.epoch}-${top.seq}\n:ok\n\n`);
    assert.equal(fresh.events.length, 0, 'no event for the priming block');

    const m1 = await publish(hub, 'p', 'one');
    await fresh.untilEvents(1);
    assert.equal(fresh.body, `retry: 2000\nid: ${top.epoch}-${top.seq}\n:ok\n\nid: ${m1}\ndata: one\n\n`);

    // Now the top is m1: a new stream is primed there.
    const later = await open(t, hub, '/sse?channels=p&channels=q');
    assert.equal(later.body, `retry: 2000\nid: ${m1}\n:ok\n\n`);

    // With a cursor (header or query parameter): today's first bytes, then the replay.
    const resumed = await open(t, hub, '/?channels=p', { 'Last-Event-ID': `${top.epoch}-${top.seq}` });
    await resumed.untilEvents(1);
    assert.equal(resumed.body, `retry: 2000\n:ok\n\nid: ${m1}\ndata: one\n\n`);
    const byQuery = await open(t, hub, `/?channels=p&lastEventId=${m1}`);
    assert.equal(byQuery.body, 'retry: 2000\n:ok\n\n');

    // Long-poll without a cursor: the answer is the message alone.
    const poll = await RawHttpClient.request(hub.port, '/?channels=lp&_=1', { headers: XHR });
    t.after(() => poll.close());
    await waitFor(
      async () => ((await (await fetch(`${hub.base}/stats`)).json()) as [string, number][]).some(([c]) => c === 'lp'),
      5000,
      'the poll registered',
    );
    const m2 = await publish(hub, 'lp', 'polled');
    await poll.untilComplete();
    assert.equal(poll.body, `id: ${m2}\ndata: polled\n\n`);
    // Long-poll with a cursor: the pending message alone.
    const again = await RawHttpClient.request(hub.port, '/?channels=lp&_=2', { headers: { ...XHR, 'Last-Event-ID': m1 } });
    t.after(() => again.close());
    await again.untilComplete();
    assert.equal(again.body, `id: ${m2}\ndata: polled\n\n`);
  });
}

test('redis: the priming id resumes on another edge with exactly what was published after it', async (t) => {
  const args = [...QUIET, ...redisArgs(t)];
  const a = await startTestHub(t, args);
  const b = await startTestHub(t, args);
  await publish(a, 'x', 'before');
  const first = await open(t, a, '/?channels=x&channels=y');
  const cursor = primingId(first);
  first.close();
  const ids: string[] = [];
  for (let i = 0; i < 5; i++) ids.push(await publish(b, i % 2 ? 'y' : 'x', `m${i}`));
  await publish(b, 'z', 'not mine');
  const second = await open(t, b, '/?channels=x&channels=y', { 'Last-Event-ID': cursor });
  await second.untilEvents(5);
  assert.deepEqual(
    second.events.map((e) => [e.id, e.data]),
    ids.map((id, i) => [id, `m${i}`]),
  );
  assert.ok(second.body.startsWith('retry: 2000\n:ok\n\n'));
});

for (const how of ['live position', 'position read'] as const) {
  test(
    `redis, ${how}: streams opened while publishes are in flight get exactly the messages after their priming id`,
    { timeout: 60_000 },
    async (t) => {
      const prefix = `prime${randomBytes(4).toString('hex')}`;
      const args = [...QUIET, ...redisArgs(t, REDIS, prefix)];
      const broker: Broker | undefined =
        how === 'position read'
          ? new PositionReadBroker({
              url: REDIS,
              prefix,
              historySize: 1000,
              historyTtlSeconds: 3600,
              idempotencyTtlSeconds: 60,
              logger: createLogger('error'),
            })
          : undefined;
      const edge = await startTestHub(t, args, broker);
      const publisher = await startTestHub(t, args); // another process's worth of publishing, same Redis
      const published: { id: string; channel: string }[] = [];
      let stop = false;
      const loop = (async () => {
        for (let i = 0; !stop; i++) {
          const channel = i % 2 ? 'f' : 'g';
          published.push({ id: await publish(publisher, channel, `n${i}`), channel });
        }
      })();
      const streams: RawHttpClient[] = [];
      for (let i = 0; i < 12; i++) {
        await waitFor(() => published.length > i * 4, 10_000, 'publishes running');
        streams.push(await open(t, edge, '/?channels=f&channels=g'));
      }
      stop = true;
      await loop;
      const sentinel = await publish(publisher, 'f', 'sentinel');
      const seq = (id: string) => Number(id.slice(id.lastIndexOf('-') + 1));
      for (const s of streams) {
        await s.until((x) => x.events.some((e) => e.id === sentinel), 10_000, 'the sentinel');
        const from = seq(primingId(s));
        const expected = [...published.map((p) => p.id), sentinel].filter((id) => seq(id) > from);
        assert.deepEqual(
          s.events.map((e) => e.id),
          expected,
          `after ${from}`,
        );
      }
      const froms = new Set(streams.map((s) => primingId(s)));
      assert.ok(froms.size > 1, 'streams were primed at different positions');
    },
  );
}
