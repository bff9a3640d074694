/**
 * Riding out a Redis outage on one process (the all-in-one on Redis: the edge with the publish
 * routes), on a private redis-server that the tests kill and restart
 * (docs/protocol.md#while-redis-is-unreachable): publishes answer 503 at once; /readyz stays 200
 * and says Redis is down; a stream opened meanwhile gets 200 and its first bytes — the priming id
 * of the position the live stream reached — keeps getting heartbeats, and receives exactly what
 * was published after Redis came back (or a reset when Redis lost its data); a resume waits and
 * then replays; a long-poll answers the empty poll at its deadline; waiting streams count against
 * --max-connections.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createBroker, createLogger, parseConfig, parseId, RedisBroker, type Cursor } from '@cyclone-sse/common';
import {
  freePort,
  httpRequest,
  publishJson,
  RawHttpClient,
  scrapeMetric,
  startRedis,
  startTestHub,
  waitFor,
  type RedisServer,
  type TestHub,
} from '@cyclone-sse/testkit';
import { startEdgeNode, type EdgeNode } from '../src/node.js';

// --retry-jitter 0: every stream gets exactly `retry: 2000` (the bytes are pinned below).
const QUIET = ['--heartbeat', '3600', '--retry', '2000', '--retry-jitter', '0'];
const XHR = { 'X-Requested-With': 'XMLHttpRequest' };

async function redisHub(t: TestContext, opts: { appendonly: boolean; args?: string[] }): Promise<{ redis: RedisServer; hub: TestHub }> {
  const redis = await startRedis({ appendonly: opts.appendonly });
  t.after(() => redis.stop());
  const prefix = `outage${randomBytes(3).toString('hex')}`;
  const hub = await startTestHub(t, [...(opts.args ?? QUIET), '--redis-url', redis.url, '--redis-prefix', prefix]);
  return { redis, hub };
}

async function publish(hub: TestHub, channel: string, data: string): Promise<string> {
  const r = await publishJson(hub.base, { channel, data });
  assert.equal(r.status, 200, r.text);
  return (r.json as { ids: string[] }).ids[0]!;
}

/** Publishes until Redis takes it (503 while the broker reconnects); the id it got. */
async function publishWhenBack(hub: TestHub, channel: string, data: string): Promise<string> {
  let id: string | undefined;
  await waitFor(
    async () => {
      const r = await publishJson(hub.base, { channel, data });
      if (r.status === 200) id = (r.json as { ids: string[] }).ids[0];
      else assert.equal(r.status, 503, r.text);
      return r.status === 200;
    },
    20_000,
    'publishing again',
    50,
  );
  return id!;
}

/** Waits until the edge's live stream delivered `id` (the position a new stream is primed with). */
async function reached(hub: TestHub, id: string): Promise<void> {
  const broker = hub.hub.broker;
  await waitFor(() => {
    const p = broker.reachedPosition?.();
    return p !== undefined && `${p.epoch}-${p.seq}` === id;
  }, 5000);
}

async function killRedis(hub: TestHub, redis: RedisServer): Promise<void> {
  await redis.kill9();
  await waitFor(() => !hub.hub.broker.isReady(), 10_000, 'the broker noticed');
}

async function open(t: TestContext, hub: TestHub, path: string, headers: Record<string, string> = {}): Promise<RawHttpClient> {
  const c = await RawHttpClient.request(hub.port, path, { headers });
  t.after(() => c.close());
  return c;
}

async function opened(c: RawHttpClient): Promise<void> {
  await c.until((x) => x.body.includes(':ok\n\n'), 5000, 'first bytes');
  assert.equal(c.status, 200);
  assert.equal(c.header('Content-Type'), 'text/event-stream');
}

function frame(id: string, data: string): string {
  return `id: ${id}\ndata: ${data}\n\n`;
}

test('a stream opened while Redis is down: 200, the priming id it reached, heartbeats; then exactly what was published after Redis came back', async (t) => {
  const { redis, hub } = await redisHub(t, { appendonly: true, args: ['--heartbeat', '0.2', '--retry', '2000', '--retry-jitter', '0'] });
  const before = [await publish(hub, 'w', 'b0'), await publish(hub, 'w', 'b1')];
  await reached(hub, before[1]!);
  await killRedis(hub, redis);

  const started = Date.now();
  const refused = await publishJson(hub.base, { channel: 'w', data: 'down' });
  assert.ok(Date.now() - started < 1000, 'a publish while Redis is down is answered at once');
  assert.equal(refused.status, 503);
  assert.equal((refused.json as { code: string }).code, 'BROKER_UNAVAILABLE');

  const ready = await httpRequest(`${hub.metricsBase}/readyz`);
  assert.equal(ready.status, 200, 'the edge stays ready: it can hold streams');
  const body = ready.json as { status: string; redis: string; redisDownSeconds: number };
  assert.equal(body.status, 'ready');
  assert.equal(body.redis, 'down');
  assert.ok(body.redisDownSeconds >= 0);
  assert.equal((await httpRequest(`${hub.metricsBase}/livez`)).status, 200);

  const c = await open(t, hub, '/?channels=w');
  await opened(c);
  const first = `retry: 2000\nid: ${before[1]}\n:ok\n\n`;
  assert.ok(c.body.startsWith(first), JSON.stringify(c.body));
  await c.until((x) => x.body.length >= first.length + 3 * 3, 5000, 'heartbeats while waiting');
  assert.match(c.body.slice(first.length), /^(:\n\n)+$/, 'only heartbeats while Redis is down');
  assert.equal(await scrapeMetric(hub.metricsBase, 'cyclone_sse_edge_connections_waiting'), 1);
  assert.ok((await scrapeMetric(hub.metricsBase, 'cyclone_sse_edge_redis_down_seconds')) > 0);

  await redis.restart();
  const after = [await publishWhenBack(hub, 'w', 'a0'), await publish(hub, 'w', 'a1')];
  await c.untilEvents(2, 10_000);
  assert.deepEqual(
    c.events.map((e) => [e.id, e.data, e.event]),
    [
      [after[0], 'a0', undefined],
      [after[1], 'a1', undefined],
    ],
  );
  assert.equal(await scrapeMetric(hub.metricsBase, 'cyclone_sse_edge_connections_waiting'), 0);
  assert.equal(await scrapeMetric(hub.metricsBase, 'cyclone_sse_edge_connections_waited_total'), 1);
  assert.equal(await scrapeMetric(hub.metricsBase, 'cyclone_sse_edge_redis_down_seconds'), 0);
  assert.ok((await scrapeMetric(hub.metricsBase, 'cyclone_sse_edge_redis_down_seconds_total')) > 0);
  const up = (await httpRequest(`${hub.metricsBase}/readyz`)).json as { redis: string; redisDownSeconds: number };
  assert.deepEqual([up.redis, up.redisDownSeconds], ['up', 0]);
});

test('a resume while Redis is down waits, then replays what history holds after its cursor, then live', async (t) => {
  const { redis, hub } = await redisHub(t, { appendonly: true });
  const ids: string[] = [];
  for (let i = 0; i < 4; i++) ids.push(await publish(hub, 'r', `m${i}`));
  await killRedis(hub, redis);
  const c = await open(t, hub, '/?channels=r', { 'Last-Event-ID': ids[1]! });
  await opened(c);
  assert.equal(c.body, 'retry: 2000\n:ok\n\n', 'the first bytes of a resume, at once');
  await redis.restart();
  const live = await publishWhenBack(hub, 'r', 'live');
  await c.untilEvents(3, 10_000);
  assert.equal(c.body, `retry: 2000\n:ok\n\n${frame(ids[2]!, 'm2')}${frame(ids[3]!, 'm3')}${frame(live, 'live')}`);
});

test('Redis back without its data: a stream opened during the outage gets the reset (epoch), then live', async (t) => {
  const { redis, hub } = await redisHub(t, { appendonly: false });
  const last = await publish(hub, 'n', 'old');
  await reached(hub, last);
  await killRedis(hub, redis);
  const c = await open(t, hub, '/?channels=n');
  await opened(c);
  assert.equal(c.body, `retry: 2000\nid: ${last}\n:ok\n\n`);
  await redis.restart();
  await c.untilEvents(1, 15_000);
  const epoch = (await hub.hub.broker.position()).epoch;
  assert.notEqual(epoch, last.split('-')[0], 'a new epoch');
  const reset = `id: ${epoch}-0\nevent: reset\ndata: {"channels":["n"],"reason":"epoch"}\n\n`;
  assert.equal(c.body, `retry: 2000\nid: ${last}\n:ok\n\n${reset}`);
  const live = await publish(hub, 'n', 'new');
  await c.untilEvents(2, 5000);
  assert.equal(c.body, `retry: 2000\nid: ${last}\n:ok\n\n${reset}${frame(live, 'new')}`);
});

test('long-polls while Redis is down answer the empty poll at their deadline (200, never a 5xx)', async (t) => {
  const { redis, hub } = await redisHub(t, { appendonly: true, args: [...QUIET, '--long-poll-timeout', '0.5'] });
  const id = await publish(hub, 'lp', 'x');
  await killRedis(hub, redis);
  for (const headers of [{ ...XHR, 'Last-Event-ID': id }, XHR]) {
    const c = await open(t, hub, '/?channels=lp', headers);
    await c.untilComplete(5000);
    assert.equal(c.status, 200);
    assert.equal(c.header('Content-Length'), '3');
    assert.equal(c.body, ':\n\n');
  }
});

test('waiting streams count against --max-connections; a client that leaves is forgotten', async (t) => {
  const { redis, hub } = await redisHub(t, { appendonly: true, args: [...QUIET, '--max-connections', '2'] });
  await killRedis(hub, redis);
  const a = await open(t, hub, '/?channels=m');
  const b = await open(t, hub, '/?channels=m');
  await opened(a);
  await opened(b);
  const refused = await open(t, hub, '/?channels=m');
  await refused.untilComplete();
  assert.equal(refused.status, 200, 'a refusal is never a non-200 for an EventSource');
  assert.match(refused.body, /^retry: \d+\n\n$/);
  assert.equal(await scrapeMetric(hub.metricsBase, 'cyclone_sse_edge_connections_waiting'), 2);
  a.close();
  await waitFor(async () => (await scrapeMetric(hub.metricsBase, 'cyclone_sse_edge_connections_waiting')) === 1, 5000, 'a forgotten');
  assert.equal(await scrapeMetric(hub.metricsBase, 'cyclone_sse_edge_connections'), 1);
});

/** A Redis broker that cannot tell the position its live stream reached. */
class NoReachedPositionBroker extends RedisBroker {
  override reachedPosition(): Cursor | undefined {
    return undefined;
  }
}

test('a broker that cannot tell the reached position: the priming id follows :ok once Redis is back', async (t) => {
  const redis = await startRedis({ appendonly: true });
  t.after(() => redis.stop());
  const broker = new NoReachedPositionBroker({
    url: redis.url,
    prefix: `outage${randomBytes(3).toString('hex')}`,
    historySize: 100,
    historyTtlSeconds: 3600,
    idempotencyTtlSeconds: 60,
    logger: createLogger('error'),
  });
  const hub = await startTestHub(t, QUIET, broker);
  const last = await publish(hub, 'f', 'old');
  await killRedis(hub, redis);
  const c = await open(t, hub, '/?channels=f');
  await opened(c);
  assert.equal(c.body, 'retry: 2000\n:ok\n\n');
  await redis.restart();
  await c.until((x) => x.body.length > 'retry: 2000\n:ok\n\n'.length, 15_000, 'the priming id');
  // Nothing was published meanwhile: the position is the last seq — in the restarted Redis's new
  // epoch (a restart is a new primary term; the old epoch resumes through the lineage).
  const primed = /^retry: 2000\n:ok\n\nid: (\S+)\n\n$/.exec(c.body)?.[1];
  assert.ok(primed, c.body);
  assert.equal(parseId(primed)!.seq, parseId(last)!.seq);
  const live = await publish(hub, 'f', 'new');
  assert.equal(parseId(live)!.epoch, parseId(primed)!.epoch);
  await c.untilEvents(1, 5000);
  assert.equal(c.body, `retry: 2000\n:ok\n\nid: ${primed}\n\n${frame(live, 'new')}`);
});

test('an edge starting while Redis is unreachable: /livez answers at once, /readyz says starting until Redis is there', async (t) => {
  const redis = await startRedis();
  t.after(() => redis.stop());
  await redis.kill9(); // its port is free again: nothing answers there until the restart
  const metricsPort = await freePort();
  const outcome = await parseConfig('edge', [
    '--port',
    '0',
    '--metrics-port',
    String(metricsPort),
    '--redis-url',
    redis.url,
    '--redis-prefix',
    `outage${randomBytes(3).toString('hex')}`,
  ]);
  assert.equal(outcome.kind, 'config');
  if (outcome.kind !== 'config') return;
  const logger = createLogger('error');
  const broker = createBroker(outcome.config, logger);
  const starting = startEdgeNode(outcome.config, logger, { broker });
  let node: EdgeNode | undefined = undefined; // set once started
  t.after(async () => {
    if (node) await node.stop();
    else await Promise.all([broker.close(), starting.catch(() => undefined)]); // a start cut short
  });
  const base = `http://127.0.0.1:${metricsPort}`;
  await waitFor(async () => (await httpRequest(`${base}/livez`).catch(() => undefined))?.status === 200, 10_000, '/livez');
  const ready = await httpRequest(`${base}/readyz`);
  assert.equal(ready.status, 503);
  assert.deepEqual(ready.json, { status: 'not_ready', reason: 'starting: waiting for the redis broker' });
  await redis.restart();
  node = await starting;
  const up = await httpRequest(`${base}/readyz`);
  assert.equal(up.status, 200);
  assert.deepEqual(up.json, { status: 'ready', reason: 'ok', redis: 'up', redisDownSeconds: 0 });
});
