/**
 * Riding out a Redis outage (docs/protocol.md#while-redis-is-unreachable): 2 edges and a
 * publisher (HTTP and AMQP input) on a private redis-server, which is killed (SIGKILL) and
 * restarted on the same port 10 s later — once with its data (AOF), once without (a new epoch).
 * Throughout: /readyz of both edges answers 200 (polled every 100 ms), streams opened before stay
 * open with heartbeats, publishes answer 503 with the JSON error at once, RabbitMQ keeps the AMQP
 * messages queued. Streams opened during the outage — a native Chromium EventSource, the
 * `eventsource` package, raw sockets checking the bytes — get 200 and their first bytes at once,
 * and, once Redis is back, exactly the messages published after it returned, in order, once
 * (after a `reset` when Redis came back empty, as the protocol says for a lost history). And the
 * all-in-one on Redis: a native EventSource whose stream ends every second keeps reconnecting
 * through the outage, is never refused, and resumes without a gap or a duplicate.
 */
import { randomBytes } from 'node:crypto';
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { createServer } from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  CHROMIUM,
  httpRequest,
  launchChromium,
  publishJson,
  RawHttpClient,
  RecordingSubscriber,
  scrapeMetric,
  spawnNode,
  startCluster,
  startRedis,
  strictlyIncreasing,
  amqpTestTopology,
  waitFor,
  type NodeProcess,
  type Received,
} from '@cyclone-sse/testkit';

const OUTAGE_MS = 10_000;
const CHANNELS = '?channels=o&channels=q';

interface Readiness {
  at: number;
  status: number;
  redis?: string;
  redisDownSeconds?: number;
}

/** Polls `/readyz` every 100 ms until stopped; keeps every answer. */
function pollReadiness(base: string): { answers: Readiness[]; stop: () => Promise<void> } {
  const answers: Readiness[] = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      const at = Date.now();
      const r = await httpRequest(`${base}/readyz`).catch(() => undefined);
      const body = r?.json as { redis?: string; redisDownSeconds?: number } | undefined;
      answers.push({ at, status: r?.status ?? 0, redis: body?.redis, redisDownSeconds: body?.redisDownSeconds });
      await sleep(Math.max(0, 100 - (Date.now() - at)));
    }
  })();
  return {
    answers,
    stop: async () => {
      running = false;
      await loop;
    },
  };
}

/** A page on its own origin with a native EventSource on `url`; records messages and resets. */
async function chromiumSubscriber(t: TestContext, url: string) {
  const site = createServer((req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
    res.end(`<!doctype html><html><body><script>
      window.opened = 0; window.errors = 0; window.received = []; window.states = [];
      const es = new EventSource(${JSON.stringify(url)});
      const keep = (e) => window.received.push({ type: e.type, data: e.data, id: e.lastEventId });
      es.onopen = () => { window.opened++; };
      es.onerror = () => { window.errors++; window.states.push(es.readyState); };
      es.onmessage = keep;
      es.addEventListener('reset', keep);
      window.es = es;
    </script></body></html>`);
  });
  site.listen(0, '127.0.0.1');
  await once(site, 'listening');
  t.after(() => new Promise<void>((resolve) => site.close(() => resolve())));
  const browser = await launchChromium();
  t.after(() => browser.close());
  const tab = await browser.newPage();
  await tab.goto(`http://127.0.0.1:${(site.address() as AddressInfo).port}/`);
  await tab.waitForFunction(() => (window as unknown as { opened: number }).opened > 0, undefined, { timeout: 10_000 });
  return {
    state: () =>
      tab.evaluate(() => {
        const w = window as unknown as { opened: number; errors: number; states: number[]; received: Received[]; es: EventSource };
        return { opened: w.opened, errors: w.errors, states: w.states, readyState: w.es.readyState, received: w.received };
      }),
  };
}

/** Data of the messages (not resets) in `received`, in order. */
function messages(received: Received[]): string[] {
  return received.filter((r) => r.type === 'message').map((r) => r.data);
}

/** Raw bytes after the first bytes: heartbeats only (nothing else while Redis is away). */
function onlyHeartbeats(text: string): boolean {
  return /^(:\n\n)*$/.test(text);
}

for (const persist of [true, false]) {
  const variant = persist ? 'restarted with its data (AOF): no reset' : 'restarted empty (new epoch): reset, as the protocol says';
  test(`Redis down for 10 s with no replica, ${variant}`, { timeout: 150_000 }, async (t) => {
    const redis = await startRedis({ appendonly: persist });
    t.after(() => redis.stop());
    const { suffix, exchange, publisherArgs, ch } = await amqpTestTopology(t, 'outage');
    const c = await startCluster(t, {
      redisUrl: redis.url,
      edges: 2,
      edgeArgs: ['--heartbeat', '1', '--long-poll-timeout', '2', '--retry-jitter', '0'], // first bytes pinned below
      publisherArgs,
    });
    const [e0, e1] = c.edges as [NodeProcess, NodeProcess];
    const publisher = c.publishers[0]!;
    const amqpPublish = async (data: string) => {
      ch.publish(exchange, 'q', Buffer.from(data), { persistent: true, messageId: `${suffix}-${data}` });
      await ch.waitForConfirms();
    };

    // Before the outage: one EventSource and one raw stream on each edge; messages over HTTP and AMQP.
    const old = [e0, e1].map((e) => new RecordingSubscriber(`${e.base}/${CHANNELS}`));
    t.after(() => old.forEach((s) => s.close()));
    const oldRaw = await Promise.all([e0, e1].map((e) => RawHttpClient.request(e.port, `/${CHANNELS}`)));
    t.after(() => oldRaw.forEach((r) => r.close()));
    await Promise.all(old.map((s) => s.opened()));
    const before: string[] = [];
    for (let i = 0; i < 5; i++) {
      const r = await publishJson(publisher.base, { channel: 'o', data: `b${i}` });
      assert.equal(r.status, 200, r.text);
      before.push(`b${i}`);
    }
    await amqpPublish('qb0');
    before.push('qb0');
    await waitFor(() => old.every((s) => s.received.length === before.length), 10_000, 'messages before the outage');
    for (const s of old) assert.deepEqual(messages(s.received), before);
    const lastBefore = old[0]!.received.at(-1)!.id;
    assert.deepEqual(old[1]!.ids, old[0]!.ids);

    const polls = [e0, e1].map((e) => pollReadiness(e.metricsBase));
    const publisherPoll = pollReadiness(publisher.metricsBase);
    t.after(() => Promise.all([...polls, publisherPoll].map((p) => p.stop())));

    // ---- the outage ----
    const oldRawLength = oldRaw.map((r) => r.body.length);
    const killedAt = Date.now();
    await redis.kill9();
    await waitFor(() => polls.every((p) => p.answers.at(-1)?.redis === 'down'), 10_000, 'both edges saw Redis go');

    // Streams opened now: a native EventSource, the eventsource package, raw sockets, a long-poll.
    const first = `retry: 300\nid: ${lastBefore}\n:ok\n\n`;
    const raws = await Promise.all([e0, e1].map((e) => RawHttpClient.request(e.port, `/${CHANNELS}`)));
    t.after(() => raws.forEach((r) => r.close()));
    for (const r of raws) {
      await r.until((x) => x.body.includes(':ok\n\n'), 5000, 'first bytes during the outage');
      assert.equal(r.status, 200);
      assert.equal(r.header('Content-Type'), 'text/event-stream');
      assert.ok(r.body.startsWith(first), `first bytes: the priming id of the last message seen: ${JSON.stringify(r.body)}`);
    }
    const fresh = new RecordingSubscriber(`${e1.base}/${CHANNELS}`);
    t.after(() => fresh.close());
    await fresh.opened();
    const browser = existsSync(CHROMIUM) ? await chromiumSubscriber(t, `${e0.base}/${CHANNELS}`) : undefined;
    if (!browser) t.diagnostic(`${CHROMIUM} missing: the native EventSource part is skipped`);
    const poll = await RawHttpClient.request(e1.port, `/${CHANNELS}`, {
      headers: { 'X-Requested-With': 'XMLHttpRequest', 'Last-Event-ID': lastBefore },
    });
    t.after(() => poll.close());

    // Publishes while Redis is down: 503 with the JSON error, at once; AMQP messages stay queued.
    const refusalMs: number[] = [];
    const during: string[] = [];
    let n = 0;
    while (Date.now() - killedAt < OUTAGE_MS) {
      const started = Date.now();
      const r = await publishJson(publisher.base, { channel: 'o', data: `down${n++}` });
      refusalMs.push(Date.now() - started);
      assert.equal(r.status, 503, r.text);
      assert.deepEqual(Object.keys(r.json as object).sort(), ['code', 'error', 'message', 'statusCode']);
      assert.equal((r.json as { code: string }).code, 'BROKER_UNAVAILABLE');
      if (during.length < 10) {
        const data = `qd${during.length}`;
        await amqpPublish(data);
        during.push(data);
      }
      await sleep(400);
    }
    assert.ok(
      refusalMs.every((ms) => ms < 1000),
      `every publish refused within 1 s: ${refusalMs.join(', ')} ms`,
    );
    await poll.untilComplete(5000);
    assert.equal(poll.status, 200, 'a long-poll during the outage gets the empty poll, never a 5xx');
    assert.equal(poll.body, ':\n\n');

    // Still during the outage: every stream open, heartbeats flowing, nothing else.
    for (const [i, r] of oldRaw.entries()) {
      const since = r.body.slice(oldRawLength[i]);
      assert.ok(!r.ended, 'an old stream is still open');
      assert.ok(onlyHeartbeats(since), JSON.stringify(since));
      assert.ok(since.length >= 5 * 3, `heartbeats kept coming (${since.length / 3} in ${OUTAGE_MS / 1000} s)`);
    }
    for (const r of raws) {
      assert.ok(!r.ended);
      assert.ok(onlyHeartbeats(r.body.slice(first.length)));
      assert.ok(r.body.length - first.length >= 5 * 3, 'a waiting stream gets heartbeats');
    }
    for (const s of [...old, fresh]) assert.deepEqual([s.opens, s.errors], [1, 0], 'no EventSource reconnected or failed');
    const browserDuring = await browser?.state();
    if (browserDuring) assert.deepEqual([browserDuring.opened, browserDuring.errors, browserDuring.readyState], [1, 0, 1]);
    assert.equal(await scrapeMetric(e0.metricsBase, 'cyclone_sse_edge_connections_waiting'), browser ? 2 : 1);
    assert.equal(await scrapeMetric(e1.metricsBase, 'cyclone_sse_edge_connections_waiting'), 2);

    // ---- Redis returns ----
    await redis.restart();
    const restartedAt = Date.now();
    if (!persist) {
      // Redis came back empty: every stream gets a reset (new epoch) first. Publish only after
      // the ones opened during the outage had theirs, so what follows is exactly "after".
      await waitFor(
        async () =>
          [...old, fresh].every((s) => s.received.some((r) => r.type === 'reset')) &&
          raws.every((r) => r.events.some((e) => e.event === 'reset')) &&
          (browser === undefined || (await browser.state()).received.some((r) => r.type === 'reset')),
        20_000,
        'the resets',
      );
    }
    const after: { id: string; data: string }[] = [];
    for (let i = 0; i < 10; i++) {
      const data = `a${i}`;
      await waitFor(
        async () => {
          const r = await publishJson(publisher.base, { channel: 'o', data });
          if (r.status === 200) after.push({ id: (r.json as { ids: string[] }).ids[0]!, data });
          else assert.equal(r.status, 503, r.text);
          return r.status === 200;
        },
        20_000,
        'publishing again',
        50,
      );
    }
    const recoveredAt = Date.now();
    // Streams opened before get all of them. Streams opened during the outage get every HTTP one
    // and, unless Redis came back empty (then their reset covers what was sequenced before their
    // resume read), every AMQP one.
    const all = [...during, ...after.map((a) => a.data)];
    const forNew = persist ? all : after.map((a) => a.data);
    const has = (want: string[]) => (got: string[]) => want.every((d) => got.includes(d));
    await waitFor(
      async () =>
        old.every((s) => has(all)(messages(s.received))) &&
        has(forNew)(messages(fresh.received)) &&
        raws.every((r) => has(forNew)(r.events.filter((e) => e.event === undefined).map((e) => e.data))) &&
        (browser === undefined || has(forNew)(messages((await browser.state()).received))),
      30_000,
      'every message published after the return (HTTP) or queued during the outage (AMQP), on every stream',
    );
    // A sentinel published last: once every stream has it, anything extra (a duplicate) came before it.
    const sentinel = await publishJson(publisher.base, { channel: 'o', data: 'end' });
    assert.equal(sentinel.status, 200, sentinel.text);
    await waitFor(
      async () =>
        [...old, fresh].every((s) => s.has('end')) &&
        raws.every((r) => r.events.some((e) => e.data === 'end')) &&
        (browser === undefined || messages((await browser.state()).received).includes('end')),
      10_000,
      'the sentinel on every stream',
    );

    // What every stream got after the outage: each message once, ids increasing, AMQP in its order.
    const check = (who: string, got: Received[], opened: 'before' | 'during') => {
      // Ids increase, the reset included (a new epoch starts its own sequence at the reset).
      const cut = got.findIndex((r) => r.type === 'reset');
      for (const part of cut < 0 ? [got] : [got.slice(0, cut), got.slice(cut)])
        assert.ok(strictlyIncreasing(part.map((r) => r.id)), `${who}: ids increase ${JSON.stringify(part.map((r) => r.id))}`);
      const resets = got.filter((r) => r.type === 'reset');
      let rest = messages(got);
      assert.equal(rest.pop(), 'end', `${who}: the sentinel last`);
      if (opened === 'before') {
        assert.deepEqual(rest.slice(0, before.length), before, `${who}: the messages before the outage`);
        rest = rest.slice(before.length);
      }
      if (persist) assert.equal(resets.length, 0, `${who}: no reset (Redis kept its data)`);
      else {
        assert.equal(resets.length, 1, `${who}: one reset`);
        const reset = JSON.parse(resets[0]!.data) as { channels: string[]; reason: string };
        assert.deepEqual([reset.channels.sort(), reset.reason], [['o', 'q'], 'epoch'], who);
        assert.notEqual(resets[0]!.id.split('-')[0], lastBefore.split('-')[0], `${who}: the reset names the new epoch`);
        assert.ok(got.indexOf(resets[0]!) < got.findIndex((r) => r.data === 'a0'), `${who}: the reset comes first`);
      }
      assert.deepEqual(
        rest.filter((d) => d.startsWith('a')),
        after.map((a) => a.data),
        `${who}: every HTTP publish after the return, once, in order`,
      );
      const queued = rest.filter((d) => d.startsWith('qd'));
      if (persist || opened === 'before')
        assert.deepEqual(queued, during, `${who}: the AMQP messages queued during the outage, once, in order`);
      // Without its data, messages sequenced before a stream's resume read are covered by its reset.
      else assert.deepEqual(queued, during.slice(during.length - queued.length), `${who}: the AMQP messages after its reset, in order`);
      assert.equal(rest.length, after.length + queued.length, `${who}: nothing else`);
      const ids = new Map(got.map((r) => [r.data, r.id]));
      for (const a of after) assert.equal(ids.get(a.data), a.id, `${who}: ${a.data} with the id the publish answered`);
    };
    old.forEach((s, i) => check(`eventsource opened before, edge ${i}`, s.received, 'before'));
    check('eventsource opened during the outage', fresh.received, 'during');
    if (browser) {
      const state = await browser.state();
      check('Chromium EventSource opened during the outage', state.received, 'during');
      assert.deepEqual([state.opened, state.errors], [1, 0], 'the native EventSource never reconnected');
    }
    for (const [i, r] of raws.entries()) {
      const events = r.events.map((e) => ({ type: e.event ?? 'message', data: e.data, id: e.id ?? '' }));
      check(`raw stream opened during the outage, edge ${i}`, events, 'during');
      // The bytes: the first bytes, heartbeats while waiting, then frames (and heartbeats).
      assert.ok(r.body.startsWith(first));
      if (persist) assert.match(r.body.slice(first.length), /^(:\n\n)+id: /, 'heartbeats, then the first message');
      else
        assert.match(
          r.body.slice(first.length),
          /^(:\n\n)+id: [0-9a-z]+-\d+\nevent: reset\ndata: \{"channels":\["o","q"\],"reason":"epoch"\}\n\n/,
        );
    }

    // Readiness: both edges 200 all along; the body said down, then up; the publisher was unready.
    await Promise.all([...polls, publisherPoll].map((p) => p.stop()));
    for (const [i, p] of polls.entries()) {
      const outage = p.answers.filter((a) => a.at >= killedAt && a.at <= restartedAt);
      assert.ok(outage.length >= OUTAGE_MS / 200, `edge ${i}: /readyz polled through the outage (${outage.length})`);
      assert.deepEqual(
        p.answers.filter((a) => a.status !== 200),
        [],
        `edge ${i}: /readyz answered 200 every time (${p.answers.length} polls)`,
      );
      assert.equal(p.answers.at(-1)!.redis, 'up');
      const longest = Math.max(...p.answers.map((a) => a.redisDownSeconds ?? 0));
      assert.ok(longest >= (OUTAGE_MS - 1000) / 1000, `edge ${i}: redisDownSeconds reached ${longest}`);
      t.diagnostic(`edge ${i}: ${p.answers.length} /readyz polls, all 200; redisDownSeconds up to ${longest}`);
    }
    assert.ok(
      publisherPoll.answers.some((a) => a.status === 503 && a.redis === 'down'),
      'the publisher was unready while it could not publish',
    );
    assert.equal(publisherPoll.answers.at(-1)!.status, 200);
    for (const e of c.edges) {
      assert.equal(await scrapeMetric(e.metricsBase, 'cyclone_sse_edge_redis_down_seconds'), 0);
      assert.ok((await scrapeMetric(e.metricsBase, 'cyclone_sse_edge_redis_down_seconds_total')) >= (OUTAGE_MS - 1000) / 1000);
      assert.equal(await scrapeMetric(e.metricsBase, 'cyclone_sse_edge_connections_waiting'), 0);
    }
    assert.ok((await scrapeMetric(publisher.metricsBase, 'cyclone_sse_publisher_redis_down_seconds_total')) >= (OUTAGE_MS - 1000) / 1000);
    t.diagnostic(
      `outage ${restartedAt - killedAt} ms (kill to restart), publishing again ${recoveredAt - restartedAt} ms later; ` +
        `${refusalMs.length} publishes refused in ${Math.min(...refusalMs)}–${Math.max(...refusalMs)} ms; ` +
        `per stream: ${before.length} before, ${during.length} AMQP queued during, ${after.length} HTTP after`,
    );
  });
}

test(
  'all-in-one on Redis: a native EventSource that reconnects during the outage is never refused, and resumes when Redis is back',
  { timeout: 60_000 },
  async (t) => {
    if (!existsSync(CHROMIUM)) {
      t.skip(`${CHROMIUM} does not exist: install Chromium to run the browser test`);
      return;
    }
    const redis = await startRedis({ appendonly: true });
    t.after(() => redis.stop());
    // Streams end every second (--max-stream-seconds), so the browser reconnects all through the outage.
    const aio = await spawnNode('all-in-one', [
      '--redis-url',
      redis.url,
      '--redis-prefix',
      `outage${randomBytes(3).toString('hex')}`,
      '--max-stream-seconds',
      '1',
      '--retry',
      '200',
      '--heartbeat',
      '0.5',
    ]);
    t.after(() => aio.stop(3000));
    const publish = async (data: string) => publishJson(aio.base, { channel: 'o', data });
    const browser = await chromiumSubscriber(t, `${aio.base}/?channels=o`);
    const first = await publish('b0');
    assert.equal(first.status, 200, first.text);
    const poll = pollReadiness(aio.metricsBase);
    t.after(() => poll.stop());
    await waitFor(async () => messages((await browser.state()).received).includes('b0'), 10_000, 'b0');

    await redis.kill9();
    await waitFor(() => poll.answers.at(-1)?.redis === 'down', 10_000, 'the all-in-one saw Redis go');
    const opensAtKill = (await browser.state()).opened;
    await waitFor(async () => (await browser.state()).opened >= opensAtKill + 3, 15_000, 'three reconnects during the outage');
    const refused = await publish('down');
    assert.equal(refused.status, 503);
    await redis.restart();
    const after: string[] = [];
    for (let i = 0; i < 5; i++) {
      await waitFor(
        async () => {
          const r = await publish(`a${i}`);
          if (r.status !== 200) assert.equal(r.status, 503, r.text);
          return r.status === 200;
        },
        20_000,
        'publishing again',
        50,
      );
      after.push(`a${i}`);
    }
    const sentinel = await publish('end');
    assert.equal(sentinel.status, 200);
    await waitFor(async () => messages((await browser.state()).received).includes('end'), 20_000, 'the sentinel');
    await poll.stop();

    const state = await browser.state();
    assert.deepEqual(messages(state.received), ['b0', ...after, 'end'], 'every message once, in order, across the reconnects');
    assert.ok(strictlyIncreasing(state.received.map((r) => r.id)));
    assert.ok(!state.states.includes(2), `the EventSource was never closed for good (readyState on each error: ${state.states.join(',')})`);
    assert.equal(state.readyState, 1);
    assert.deepEqual(
      poll.answers.filter((a) => a.status !== 200),
      [],
      `/readyz 200 throughout (${poll.answers.length} polls)`,
    );
    t.diagnostic(`${state.opened - 1} reconnects in all, ${state.opened - opensAtKill} of them from the outage on`);
  },
);
