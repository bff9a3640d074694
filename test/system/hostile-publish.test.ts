import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { SignJWT } from 'jose';
import {
  RawHttpClient,
  httpRequest,
  parseMetrics,
  publishForm,
  publishJson,
  spawnNode,
  startCanary,
  watchRss,
  type Canary,
  type JsonResponse,
  type NodeProcess,
  waitFor,
} from '@cyclone-sse/testkit';
import { testRedisUrl } from '@cyclone-sse/testkit';

// Issue 11, publishing side: every case against the all-in-one (memory broker) and a cluster
// (edge + publisher on Redis, own key prefix), each with a canary subscriber and publisher beside it.

const REDIS = testRedisUrl();
const MiB = 1024 * 1024;
const JWT_KEY = 'hostile-publish-test-key-0123456789abcdef';

interface Hub {
  mode: 'all-in-one' | 'cluster';
  /** Where subscribers connect. */
  port: number;
  /** Where publishes go. */
  base: string;
  /** The process whose memory and metrics the publish path uses. */
  publisher: NodeProcess;
  prefix: string;
  canary(headers?: Record<string, string>): Promise<Canary>;
  alive(): Promise<void>;
}

async function startHub(t: TestContext, mode: Hub['mode'], args: string[] = []): Promise<Hub> {
  const prefix = `hp${randomBytes(4).toString('hex')}`;
  const procs: NodeProcess[] = [];
  const exited: string[] = [];
  const track = (p: NodeProcess, name: string) => {
    procs.push(p);
    void p.exited.then((code) => exited.push(`${name} exited with ${code}`));
    return p;
  };
  t.after(async () => {
    await Promise.all(procs.map((p) => p.stop(3000)));
    if (mode === 'cluster') await dropPrefix(prefix);
  });
  let port: number;
  let publisher: NodeProcess;
  if (mode === 'all-in-one') {
    publisher = track(await spawnNode('all-in-one', ['--log-level', 'info', ...args]), 'all-in-one');
    port = publisher.port;
  } else {
    const common = ['--redis-url', REDIS, '--redis-prefix', prefix, '--log-level', 'info'];
    const edge = track(await spawnNode('edge', [...common, '--drain-seconds', '0']), 'edge');
    publisher = track(await spawnNode('publisher', [...common, ...args]), 'publisher');
    port = edge.port;
  }
  const hub: Hub = {
    mode,
    port,
    base: publisher.base,
    publisher,
    prefix,
    canary: (headers) => startCanary({ port, base: publisher.base }, { intervalMs: 25, minMessages: 3, ...(headers ? { headers } : {}) }),
    async alive() {
      for (const p of procs) assert.equal((await httpRequest(`${p.metricsBase}/livez`)).status, 200);
      assert.deepEqual(exited, [], `${mode}: every process stayed up`);
    },
  };
  return hub;
}

async function dropPrefix(prefix: string): Promise<void> {
  const r = new Redis(REDIS);
  const keys: string[] = [];
  for await (const batch of r.scanStream({ match: `${prefix}:*`, count: 1000 })) keys.push(...(batch as string[]));
  if (keys.length > 0) await r.del(...keys);
  r.disconnect();
}

function assertRefused(r: JsonResponse, status: number, code: string): void {
  assert.equal(r.status, status, r.text);
  const body = r.json as { statusCode: number; code: string; error: string; message: string };
  assert.equal(body.code, code, r.text);
  assert.equal(body.statusCode, status);
}

async function subscribe(port: number, channels: string[], query = ''): Promise<RawHttpClient> {
  const c = await RawHttpClient.request(port, `/?${channels.map((c) => `channels=${encodeURIComponent(c)}`).join('&')}${query}`);
  await c.until((x) => x.body.includes(':ok'), 5000, 'subscriber open');
  return c;
}

/** "Nothing was delivered on `channel`": a sentinel published afterwards is the first event. */
async function assertNothingDelivered(hub: Hub, sub: RawHttpClient, channel: string): Promise<void> {
  const r = await publishJson(hub.base, { channel, data: 'sentinel' });
  assert.equal(r.status, 200, r.text);
  await sub.untilEvents(1, 5000);
  assert.deepEqual(
    sub.events.map((e) => e.data),
    ['sentinel'],
  );
}

/** Lets the canary publish a few more messages beside the finished attack, then checks it. */
async function finish(canary: Canary): Promise<void> {
  await waitFor(() => canary.sent.length >= 5, 10_000, 'canary messages');
  await canary.stop();
}

async function refusals(hub: Hub, limit: string): Promise<number> {
  const m = parseMetrics((await httpRequest(`${hub.publisher.metricsBase}/metrics`)).text);
  return m.get(`cyclone_sse_publisher_refusals_total{limit="${limit}"}`) ?? 0;
}

for (const mode of ['all-in-one', 'cluster'] as const) {
  test(`${mode}: one channel named 20 000 times (JSON and form) is 400 TOO_MANY_CHANNELS, nothing applied, RSS flat`, async (t) => {
    const hub = await startHub(t, mode);
    const canary = await hub.canary();
    const sub = await subscribe(hub.port, ['dup']);
    const rss = watchRss(hub.publisher.pid);
    const before = rss.peak();
    const data = 'x'.repeat(220_000);
    assertRefused(await publishJson(hub.base, { channels: Array(20_000).fill('dup'), data }), 400, 'TOO_MANY_CHANNELS');
    assertRefused(
      await publishForm(hub.base, [...Array<[string, string]>(20_000).fill(['channel', 'dup']), ['message', data]]),
      400,
      'TOO_MANY_CHANNELS',
    );
    // Under the limit, duplicates are removed: one message, one id.
    const ok = await publishJson(hub.base, { channels: ['dup', 'dup', 'dup'], data: 'once' });
    assert.equal(ok.status, 200, ok.text);
    assert.equal((ok.json as { ids: string[] }).ids.length, 1);
    await sub.untilEvents(1, 5000);
    const sentinel = await publishJson(hub.base, { channel: 'dup', data: 'sentinel' });
    assert.equal(sentinel.status, 200);
    await sub.untilEvents(2, 5000);
    assert.deepEqual(
      sub.events.map((e) => e.data),
      ['once', 'sentinel'],
    );
    const grew = rss.stop() - before;
    assert.ok(grew < 64 * MiB, `RSS grew ${Math.round(grew / MiB)} MiB (bound 64 MiB)`);
    assert.equal(await refusals(hub, 'channels'), 2);
    await finish(canary);
    await hub.alive();
    sub.close();
  });

  test(`${mode}: fan-out past --max-publish-fanout-bytes (one message and a batch) is 413, nothing applied; the largest allowed publish goes through`, async (t) => {
    const hub = await startHub(t, mode);
    const canary = await hub.canary();
    const channels = Array.from({ length: 40 }, (_, i) => `fan-${i}`);
    const sub = await subscribe(hub.port, ['fan-0']);
    assertRefused(await publishJson(hub.base, { channels, data: 'y'.repeat(300_000) }), 413, 'FANOUT_TOO_LARGE');
    const batch = Array.from({ length: 10 }, () => ({ channels: channels.slice(0, 10), data: 'z'.repeat(90_000) }));
    assertRefused(await publishJson(hub.base, batch), 413, 'FANOUT_TOO_LARGE');
    await assertNothingDelivered(hub, sub, 'fan-0');
    // 8 channels × ~1 MiB frames is just under the 8 MiB default: accepted, delivered, and on
    // the cluster the edge's pub/sub connection is not dropped (no gap repair, no loss).
    const big = 'w'.repeat(MiB - 2048);
    for (let i = 0; i < 3; i++) {
      const r = await publishJson(hub.base, { channels: channels.slice(0, 8), data: big });
      assert.equal(r.status, 200, r.text.slice(0, 300));
    }
    await sub.untilEvents(4, 20_000);
    assert.deepEqual(
      sub.events.map((e) => e.data.length),
      [8, big.length, big.length, big.length],
    );
    assert.equal(await refusals(hub, 'fanout_bytes'), 2);
    await finish(canary);
    await hub.alive();
    sub.close();
  });

  test(`${mode}: history is bounded by bytes; a resume past dropped entries gets reset, not a gap`, async (t) => {
    const cap = 16 * MiB;
    const hub = await startHub(t, mode, ['--history-max-bytes', String(cap), '--history-max-bytes-per-channel', String(4 * MiB)]);
    const canary = await hub.canary();
    const rss = watchRss(hub.publisher.pid);
    const before = rss.peak();
    const data = 'h'.repeat(100_000);
    let firstId = '';
    // 400 requests × 8 channels × 100 KB = 320 MB pushed; without the bound all of it is kept.
    for (let i = 0; i < 400; i++) {
      const r = await publishJson(hub.base, { channels: Array.from({ length: 8 }, (_, c) => `hist-${i % 100}-${c}`), data });
      assert.equal(r.status, 200, r.text);
      if (i === 0) firstId = (r.json as { ids: string[] }).ids[0]!;
    }
    const grew = rss.stop() - before;
    // The bound: the history cap plus the garbage of ~100 KB request bodies and frames between
    // collections (in-process with a forced GC, the history's buffers are 16 MiB).
    t.diagnostic(`${mode}: RSS of the publishing process grew ${Math.round(grew / MiB)} MiB over 320 MB published`);
    // Unbounded, the history alone would hold the 320 MB.
    if (mode === 'all-in-one') assert.ok(grew < cap + 112 * MiB, `RSS grew ${Math.round(grew / MiB)} MiB (bound: history cap + 112 MiB)`);
    else {
      const r = new Redis(REDIS);
      t.after(() => r.disconnect());
      let used = 0;
      for await (const keys of r.scanStream({ match: `${hub.prefix}:h:*`, count: 1000 })) {
        for (const k of keys as string[]) used += Number((await r.call('MEMORY', 'USAGE', k)) ?? 0);
      }
      assert.ok(used < cap * 1.25, `Redis history streams use ${Math.round(used / MiB)} MiB (bound 1.25 × ${cap / MiB} MiB)`);
      assert.ok(Number(await r.get(`${hub.prefix}:htotal`)) <= cap);
    }
    const resume = await subscribe(hub.port, ['hist-0-0'], `&lastEventId=${encodeURIComponent(firstId)}`);
    await resume.until((c) => c.events.some((e) => e.event === 'reset'), 5000, 'event: reset');
    resume.close();
    await finish(canary);
    await hub.alive();
  });

  test(`${mode}: reserved event names are 400 RESERVED_EVENT (JSON and form)`, async (t) => {
    const hub = await startHub(t, mode);
    const canary = await hub.canary();
    const sub = await subscribe(hub.port, ['ev']);
    for (const event of ['reset', 'token-expired', 'cyclone-anything', 'CYCLONE-x']) {
      assertRefused(await publishJson(hub.base, { channel: 'ev', event, data: 'x' }), 400, 'RESERVED_EVENT');
      assertRefused(
        await publishForm(hub.base, [
          ['channel', 'ev'],
          ['event', event],
          ['message', 'x'],
        ]),
        400,
        'RESERVED_EVENT',
      );
    }
    // A batch with one reserved event publishes nothing.
    assertRefused(
      await publishJson(hub.base, [
        { channel: 'ev', data: 'a' },
        { channel: 'ev', event: 'reset', data: 'b' },
      ]),
      400,
      'RESERVED_EVENT',
    );
    await assertNothingDelivered(hub, sub, 'ev');
    assert.equal(await refusals(hub, 'reserved_event'), 9);
    await finish(canary);
    await hub.alive();
    sub.close();
  });

  test(`${mode}: splitlines separators: refused in event and string data, escaped in JSON-value data, spaces in the form`, async (t) => {
    const hub = await startHub(t, mode);
    const canary = await hub.canary();
    const sub = await subscribe(hub.port, ['sep']);
    for (const c of ['\u000b', '\u000c', '\u001c', '\u001d', '\u001e', '\u0085', '\u2028', '\u2029']) {
      assertRefused(await publishJson(hub.base, { channel: 'sep', event: `a${c}b`, data: 'x' }), 400, 'INVALID_EVENT');
      const r = await publishJson(hub.base, { channel: 'sep', data: `a${c}id: forged` });
      assertRefused(r, 400, 'INVALID_DATA');
      assert.match((r.json as { message: string }).message, /U\+[0-9A-F]{4}/);
    }
    const ok = await publishJson(hub.base, { channel: 'sep', data: { t: 'a\u2028b\u2029c\u0085d' } });
    assert.equal(ok.status, 200, ok.text);
    const form = await publishForm(hub.base, [
      ['channel', 'sep'],
      ['message', 'p\u2028q\u000br'],
    ]);
    assert.equal(form.status, 200, form.text);
    await sub.untilEvents(2, 5000);
    assert.deepEqual(
      sub.events.map((e) => e.data),
      ['{"t":"a\\u2028b\\u2029c\\u0085d"}', 'p q r'],
    );
    assert.doesNotMatch(sub.body, /[\u000b\u000c\u001c-\u001e\u0085\u2028\u2029]/);
    await finish(canary);
    await hub.alive();
    sub.close();
  });

  test(`${mode}: idempotency keys are scoped per publisher and channel list, and must be strings`, async (t) => {
    const hub = await startHub(t, mode, ['--publisher-jwt-key', JWT_KEY]);
    const token = (sub: string, channels: string[]) =>
      new SignJWT({ channels }).setProtectedHeader({ alg: 'HS256' }).setSubject(sub).setExpirationTime('10m').sign(Buffer.from(JWT_KEY));
    const auth = async (sub: string, channels: string[]) => ({ Authorization: `Bearer ${await token(sub, channels)}` });
    const canary = await hub.canary(await auth('canary', ['canary-*']));
    const a = await auth('tenant-a', ['a-*']);
    const b = await auth('tenant-b', ['b-*']);
    const subs = await subscribe(hub.port, ['a-orders', 'b-orders', 'a-other']);
    const ra = await publishJson(hub.base, { channel: 'a-orders', id: 'order-1001', data: 'from a' }, a);
    const rb = await publishJson(hub.base, { channel: 'b-orders', id: 'order-1001', data: 'from b' }, b);
    const again = await publishJson(hub.base, { channel: 'a-orders', id: 'order-1001', data: 'from a (retry)' }, a);
    const other = await publishJson(hub.base, { channel: 'a-other', id: 'order-1001', data: 'a, other channel' }, a);
    for (const r of [ra, rb, again, other]) assert.equal(r.status, 200, r.text);
    const id = (r: JsonResponse) => (r.json as { ids: string[] }).ids[0];
    assert.notEqual(id(ra), id(rb));
    assert.equal(id(again), id(ra), 'a retry by the same tenant is answered from its record');
    assert.notEqual(id(other), id(ra));
    await subs.untilEvents(3, 5000);
    assert.deepEqual(
      subs.events.map((e) => e.data),
      ['from a', 'from b', 'a, other channel'],
    );
    assertRefused(await publishJson(hub.base, { channel: 'a-orders', id: Number.MAX_SAFE_INTEGER + 1, data: 'n' }, a), 400, 'INVALID_ID');
    await finish(canary);
    await hub.alive();
    subs.close();
  });
}
