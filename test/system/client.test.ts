/**
 * The browser client (@cyclone-sse/client, served at /client.js) in real Chromium, loaded as a
 * module from another origin: it receives messages; it resumes without a gap when the edge
 * holding its stream is SIGKILLed behind nginx, and when a proxy's 502 made the browser give up
 * (recreated with ?lastEventId=); three tabs share one connection and all get every message; the
 * leader tab closes and another takes over without gap or duplicate; `reset` reaches the page;
 * `token-expired` reaches it and the client resumes with a fresh token; markup written for
 * jquery.sse.js works through bindElements().
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { createServer, request, type IncomingMessage, type ServerResponse } from 'node:http';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import type { AddressInfo } from 'node:net';
import { SignJWT } from 'jose';
import type { Browser, Page } from 'playwright-core';
import {
  CHROMIUM,
  httpRequest,
  launchChromium,
  publishJson,
  scrapeMetric,
  startCluster,
  startTestHub,
  testRedisUrl,
  waitFor,
} from '@cyclone-sse/testkit';

const REDIS = testRedisUrl();
const CLIENT_JS = fileURLToPath(new URL('../../packages/client/dist/index.js', import.meta.url));

interface PageState {
  got: { data: string; id: string }[];
  resets: { channels: string[]; reason: string; id: string }[];
  leader: boolean;
  open: boolean;
  lastEventId: string;
}

declare global {
  interface Window {
    state: () => PageState;
    got: PageState['got'];
    resets: PageState['resets'];
    expired: string[];
  }
}

/** The page: imports the hub's /client.js (cross-origin) and records what the client delivers. */
const PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><title>client test</title></head><body>
<script type="module">
  const p = new URLSearchParams(location.search);
  const hub = p.get('hub');
  const { connect } = await import(hub + '/client.js');
  window.got = [];
  window.resets = [];
  window.expired = [];
  const token = p.has('token') ? () => fetch('/token').then((r) => r.text()) : undefined;
  const client = connect({ url: hub + '/', channels: p.getAll('channels'), lastEventId: p.get('lastEventId') ?? undefined, minDelay: 100, maxDelay: 400, token });
  client.on('message', (m) => window.got.push({ data: m.data, id: m.lastEventId }));
  client.on('token-expired', (m) => window.expired.push(m.data));
  client.onReset((info, m) => window.resets.push({ ...info, id: m.lastEventId }));
  window.state = () => ({ got: window.got, resets: window.resets, leader: client.leader, open: client.open, lastEventId: client.lastEventId });
</script>
</body></html>`;

/** Markup written for jquery.sse.js, driven by bindElements() instead of the jQuery plugin. */
const ELEMENTS_PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><title>jquery.sse.js contract</title></head><body>
<div id="general" class="sse" data-sse-channels="base, news" data-sse-events="comment,login"></div>
<div id="weather" class="sse" data-sse-channels="weather" data-sse-events="forecast , comment"></div>
<script type="module">
  const hub = new URLSearchParams(location.search).get('hub');
  const { bindElements } = await import(hub + '/client.js');
  window.fired = [];
  for (const name of ['open', 'error', 'comment', 'login', 'forecast', 'unknown']) {
    document.addEventListener('sse.' + name, (e) => window.fired.push([e.type, e.target.id, e.detail ?? null]));
  }
  window.elementsClient = bindElements({ url: hub + '/' });
</script>
</body></html>`;

async function startSite(t: TestContext, mintToken?: () => Promise<string>): Promise<string> {
  const site = createServer((req, res) => {
    if (req.url === '/token' && mintToken) {
      void mintToken().then((tok) => res.writeHead(200, { 'Content-Type': 'text/plain' }).end(tok));
    } else if (req.url?.startsWith('/page') || req.url?.startsWith('/elements')) {
      res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
      res.end(req.url.startsWith('/page') ? PAGE : ELEMENTS_PAGE);
    } else if (req.url === '/favicon.ico') res.writeHead(204).end();
    else res.writeHead(404).end();
  });
  site.listen(0, '127.0.0.1');
  await once(site, 'listening');
  t.after(() => new Promise<void>((resolve) => site.close(() => resolve())));
  return `http://127.0.0.1:${(site.address() as AddressInfo).port}`;
}

async function launch(t: TestContext): Promise<Browser | undefined> {
  if (!existsSync(CHROMIUM)) {
    t.skip(`${CHROMIUM} does not exist: install Chromium to run the browser tests`);
    return undefined;
  }
  const browser = await launchChromium();
  t.after(() => browser.close());
  return browser;
}

function pageUrl(site: string, hub: string, channels: string[], extra = ''): string {
  return `${site}/page?hub=${encodeURIComponent(hub)}&${channels.map((c) => `channels=${encodeURIComponent(c)}`).join('&')}${extra}`;
}

async function openPage(page: Page, url: string, errors: string[]): Promise<void> {
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(url);
  await page.waitForFunction(() => typeof window.state === 'function' && window.state().open, undefined, { timeout: 10_000 });
}

const state = (page: Page) => page.evaluate(() => window.state());

async function publish(base: string, channel: string, data: string): Promise<string> {
  const r = await publishJson(base, { channel, data });
  assert.equal(r.status, 200, r.text);
  return (r.json as { ids: string[] }).ids[0]!;
}

/** Sum of the open-connection gauge over the given /metrics bases. */
async function connections(metricsBases: string[]): Promise<number> {
  let n = 0;
  for (const m of metricsBases) n += await scrapeMetric(m, 'cyclone_sse_edge_connections', 0);
  return n;
}

test('/client.js: the built ES module, text/javascript, CORS *, cacheable with ETag revalidation, gzip', async (t) => {
  const hub = await startTestHub(t);
  const built = readFileSync(CLIENT_JS);
  const res = await fetch(`${hub.base}/client.js`, { headers: { 'Accept-Encoding': 'identity', Origin: 'https://app.example' } });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-type'), 'text/javascript; charset=utf-8');
  assert.equal(res.headers.get('access-control-allow-origin'), '*');
  assert.match(res.headers.get('cache-control')!, /^public, max-age=\d+/);
  assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
  const etag = res.headers.get('etag')!;
  assert.match(etag, /^"[\w-]+"$/);
  assert.deepEqual(Buffer.from(await res.arrayBuffer()), built);

  const again = await fetch(`${hub.base}/client.js`, { headers: { 'If-None-Match': etag } });
  assert.equal(again.status, 304);
  assert.equal((await again.arrayBuffer()).byteLength, 0);

  // fetch() would decode gzip itself: read the raw bytes with node:http.
  const raw = await new Promise<IncomingMessage>((resolve) =>
    request(`${hub.base}/client.js`, { headers: { 'Accept-Encoding': 'gzip, br' } }, resolve).end(),
  );
  const chunks: Buffer[] = [];
  for await (const c of raw) chunks.push(c as Buffer);
  assert.equal(raw.headers['content-encoding'], 'gzip');
  assert.ok(Buffer.concat(chunks).length < built.length / 2);
  assert.deepEqual(gunzipSync(Buffer.concat(chunks)), built);
});

test(
  'Chromium: the client receives; the edge holding its stream is SIGKILLed behind nginx; it resumes on the other edge with no gap',
  { timeout: 90_000 },
  async (t) => {
    const browser = await launch(t);
    if (!browser) return;
    const c = await startCluster(t, { redisUrl: REDIS, edges: 2 });
    const site = await startSite(t);
    const errors: string[] = [];
    const page = await browser.newPage();
    await openPage(page, pageUrl(site, c.base, ['kill']), errors);

    const ids: string[] = [];
    for (let i = 1; i <= 5; i++) ids.push(await publish(c.base, 'kill', `m${i}`));
    await page.waitForFunction(() => window.got.length >= 5, undefined, { timeout: 10_000 });

    const holding = await waitFor(
      async () => {
        for (const e of c.edges) if ((await connections([e.metricsBase])) === 1) return e;
        return undefined;
      },
      10_000,
      'the edge holding the stream',
    );
    const other = c.edges.find((e) => e !== holding)!;
    assert.equal(await connections([other.metricsBase]), 0);
    process.kill(holding.pid, 'SIGKILL');
    await holding.exited;
    // Published while the client has no stream: they must come back from history.
    for (let i = 6; i <= 10; i++) ids.push(await publish(c.base, 'kill', `m${i}`));
    await waitFor(async () => (await connections([other.metricsBase])) === 1, 15_000, 'the client on the surviving edge');
    ids.push(await publish(c.base, 'kill', 'sentinel'));
    await page.waitForFunction(() => window.got.some((g) => g.data === 'sentinel'), undefined, { timeout: 15_000 });

    const s = await state(page);
    assert.deepEqual(
      s.got.map((g) => g.data),
      [...Array.from({ length: 10 }, (_, i) => `m${i + 1}`), 'sentinel'],
    );
    assert.deepEqual(
      s.got.map((g) => g.id),
      ids,
      'every id once, in publish order',
    );
    assert.deepEqual(s.resets, []);
    assert.equal(s.lastEventId, ids.at(-1));
    assert.deepEqual(
      errors.filter((e) => !/net::ERR|EventSource/.test(e)),
      [],
    );
  },
);

test(
  'Chromium: after a 502 the browser gives up; the client recreates the EventSource with ?lastEventId= and loses nothing',
  { timeout: 60_000 },
  async (t) => {
    const browser = await launch(t);
    if (!browser) return;
    const hub = await startTestHub(t, ['--retry', '100']);
    const site = await startSite(t);

    // A proxy in front of the hub that can answer 502 (what nginx does with no live upstream) and
    // hold a request; it records how each stream request asked to resume.
    const seen: { lastEventIdHeader: string | undefined; lastEventIdQuery: string | null; status: number }[] = [];
    const streams = new Set<ServerResponse>();
    let failNext = 0;
    // Set further down; the proxy reads it from the first request on (a const would be in its TDZ).
    let gate: Promise<void> | undefined = undefined;
    let failed!: () => void;
    const failedOnce = new Promise<void>((resolve) => (failed = resolve));
    const proxy = createServer((req, res) => {
      void (async () => {
        const url = new URL(req.url!, 'http://x');
        if (url.pathname === '/') {
          const entry = {
            lastEventIdHeader: req.headers['last-event-id'] as string | undefined,
            lastEventIdQuery: url.searchParams.get('lastEventId'),
            status: 200,
          };
          seen.push(entry);
          if (failNext > 0) {
            failNext--;
            entry.status = 502;
            res.writeHead(502, { 'Content-Type': 'text/html', 'Access-Control-Allow-Origin': '*' }).end('<h1>502 Bad Gateway</h1>');
            failed();
            return;
          }
          if (gate) await gate;
        }
        const up = request(
          `${hub.base}${req.url}`,
          { method: req.method, headers: { ...req.headers, host: `127.0.0.1:${hub.port}` } },
          (upRes) => {
            res.writeHead(upRes.statusCode!, upRes.headers);
            upRes.pipe(res);
          },
        );
        if (url.pathname === '/') streams.add(res);
        res.on('close', () => {
          streams.delete(res);
          up.destroy();
        });
        req.pipe(up);
      })();
    });
    proxy.listen(0, '127.0.0.1');
    await once(proxy, 'listening');
    t.after(() => {
      proxy.closeAllConnections();
      return new Promise<void>((resolve) => proxy.close(() => resolve()));
    });
    const via = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;

    const errors: string[] = [];
    const page = await browser.newPage();
    await openPage(page, pageUrl(site, via, ['gone']), errors);
    const ids = [await publish(hub.base, 'gone', 'm1'), await publish(hub.base, 'gone', 'm2')];
    await page.waitForFunction(() => window.got.length >= 2, undefined, { timeout: 10_000 });

    // The stream ends; the browser's own reconnect gets a 502 and the EventSource is CLOSED.
    failNext = 1;
    let release!: () => void;
    gate = new Promise<void>((resolve) => (release = resolve));
    for (const s of streams) s.destroy();
    await failedOnce;
    ids.push(await publish(hub.base, 'gone', 'm3'), await publish(hub.base, 'gone', 'm4'));
    await waitFor(() => seen.length >= 3, 10_000, 'the client to create a new EventSource');
    release();
    ids.push(await publish(hub.base, 'gone', 'sentinel'));
    await page.waitForFunction(() => window.got.some((g) => g.data === 'sentinel'), undefined, { timeout: 10_000 });

    const s = await state(page);
    assert.deepEqual(
      s.got.map((g) => g.data),
      ['m1', 'm2', 'm3', 'm4', 'sentinel'],
    );
    assert.deepEqual(
      s.got.map((g) => g.id),
      ids,
    );
    assert.deepEqual(
      seen.slice(0, 3).map((r) => r.status),
      [200, 502, 200],
    );
    assert.equal(seen[1]!.lastEventIdHeader, ids[1], "the browser's own reconnect sent Last-Event-ID");
    assert.equal(seen[2]!.lastEventIdHeader, undefined, 'a new EventSource has no Last-Event-ID of its own');
    assert.equal(seen[2]!.lastEventIdQuery, ids[1], 'so the client passes ?lastEventId=');
    assert.equal(seen.length, 3, 'one recreate, no storm');
  },
);

test(
  'Chromium: three tabs share one connection and all get every message; the leader tab closes and another takes over with no gap',
  { timeout: 90_000 },
  async (t) => {
    const browser = await launch(t);
    if (!browser) return;
    const c = await startCluster(t, { redisUrl: REDIS, edges: 2 });
    const site = await startSite(t);
    const metrics = c.edges.map((e) => e.metricsBase);
    const context = await browser.newContext();
    const errors: string[] = [];
    const pages: Page[] = [];
    for (let i = 0; i < 3; i++) {
      const page = await context.newPage();
      await openPage(page, pageUrl(site, c.base, ['tabs', 'other']), errors);
      pages.push(page);
    }
    const states = await Promise.all(pages.map(state));
    assert.deepEqual(
      states.map((s) => s.leader),
      [true, false, false],
      'the first tab leads, the others follow',
    );
    assert.equal(await connections(metrics), 1, 'one connection for three tabs');

    const ids: string[] = [];
    for (let i = 1; i <= 5; i++) ids.push(await publish(c.base, i % 2 ? 'tabs' : 'other', `m${i}`));
    for (const page of pages) await page.waitForFunction(() => window.got.length >= 5, undefined, { timeout: 10_000 });
    for (const page of pages)
      assert.deepEqual(
        (await state(page)).got.map((g) => g.id),
        ids,
        'every tab got every message',
      );
    assert.equal(await connections(metrics), 1);

    // The leader goes away; what is published meanwhile must reach the others exactly once.
    await pages[0]!.close();
    for (let i = 6; i <= 10; i++) ids.push(await publish(c.base, i % 2 ? 'tabs' : 'other', `m${i}`));
    const rest = pages.slice(1);
    await waitFor(async () => (await Promise.all(rest.map(state))).some((s) => s.leader && s.open), 15_000, 'a new leader');
    ids.push(await publish(c.base, 'tabs', 'sentinel'));
    for (const page of rest)
      await page.waitForFunction(() => window.got.some((g) => g.data === 'sentinel'), undefined, { timeout: 15_000 });

    const after = await Promise.all(rest.map(state));
    assert.equal(after.filter((s) => s.leader).length, 1, 'exactly one new leader');
    for (const s of after) {
      assert.deepEqual(
        s.got.map((g) => g.data),
        [...Array.from({ length: 10 }, (_, i) => `m${i + 1}`), 'sentinel'],
      );
      assert.deepEqual(
        s.got.map((g) => g.id),
        ids,
        'no gap, no duplicate, in order',
      );
      assert.equal(s.lastEventId, ids.at(-1), 'followers know the last id');
    }
    await waitFor(async () => (await connections(metrics)) === 1, 10_000, 'one connection again');
    assert.deepEqual(
      errors.filter((e) => !/net::ERR|EventSource/.test(e)),
      [],
    );
  },
);

test(
  'Chromium: reset reaches the page handler (malformed lastEventId; history trimmed past the cursor)',
  { timeout: 60_000 },
  async (t) => {
    const browser = await launch(t);
    if (!browser) return;
    const hub = await startTestHub(t, ['--history-size', '2']);
    const site = await startSite(t);
    const errors: string[] = [];

    const page = await browser.newPage();
    await openPage(page, pageUrl(site, hub.base, ['r'], '&lastEventId=not-an-id'), errors);
    await page.waitForFunction(() => window.resets.length >= 1, undefined, { timeout: 10_000 });
    const s = await state(page);
    assert.deepEqual(
      s.resets.map(({ channels, reason }) => ({ channels, reason })),
      [{ channels: ['r'], reason: 'malformed' }],
    );

    // A cursor older than the two messages history keeps: the page is told to reload.
    const first = await publish(hub.base, 'trim', 'a');
    for (const d of ['b', 'c', 'd']) await publish(hub.base, 'trim', d);
    const trimmed = await browser.newPage();
    await openPage(trimmed, pageUrl(site, hub.base, ['trim'], `&lastEventId=${encodeURIComponent(first)}`), errors);
    await trimmed.waitForFunction(() => window.resets.length >= 1, undefined, { timeout: 10_000 });
    const after = await publish(hub.base, 'trim', 'live');
    await trimmed.waitForFunction(() => window.got.some((g) => g.data === 'live'), undefined, { timeout: 10_000 });
    const st = await state(trimmed);
    assert.deepEqual(
      st.resets.map(({ channels, reason }) => ({ channels, reason })),
      [{ channels: ['trim'], reason: 'trimmed' }],
    );
    assert.equal(st.got.at(-1)!.id, after);
    assert.ok(!st.got.some((g) => g.data === 'a'), 'nothing from before the cursor');
    assert.deepEqual(
      errors.filter((e) => !/net::ERR|EventSource/.test(e)),
      [],
    );
  },
);

test(
  'Chromium: markup written for jquery.sse.js: one connection for all data-sse-channels, ["name", data] fires sse.name on the elements listing it',
  { timeout: 60_000 },
  async (t) => {
    const browser = await launch(t);
    if (!browser) return;
    const hub = await startTestHub(t);
    const site = await startSite(t);
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`${site}/elements?hub=${encodeURIComponent(hub.base)}`);
    const fired = () => page.evaluate(() => (window as unknown as { fired: [string, string, unknown][] }).fired);
    await waitFor(async () => (await fired())?.some(([type]) => type === 'sse.open'), 10_000, 'sse.open');
    assert.deepEqual(
      ((await httpRequest(`${hub.base}/stats`)).json as [string, number][]).sort(),
      [
        ['base', 1],
        ['news', 1],
        ['weather', 1],
      ],
      'one connection, the union of the channels',
    );

    await publish(hub.base, 'base', '["comment", "123"]');
    await publish(hub.base, 'weather', '["forecast", {"t": 20}]');
    await publish(hub.base, 'news', '["unknown-to-the-page", 1]');
    await publish(hub.base, 'base', 'not json');
    await publish(hub.base, 'news', '["login", "bob"]');
    await waitFor(async () => (await fired()).some(([type]) => type === 'sse.login'), 10_000, 'the last event');
    assert.deepEqual(await fired(), [
      ['sse.open', 'general', null],
      ['sse.open', 'weather', null],
      ['sse.comment', 'general', '123'],
      ['sse.comment', 'weather', '123'],
      ['sse.forecast', 'weather', { t: 20 }],
      ['sse.login', 'general', 'bob'],
    ]);
    assert.deepEqual(errors, []);
  },
);

test('Chromium: token-expired reaches the page; the client fetches a new token and resumes with no gap', { timeout: 60_000 }, async (t) => {
  const browser = await launch(t);
  if (!browser) return;
  const key = 'k'.repeat(40);
  const hub = await startTestHub(t, [
    '--subscriber-auth',
    'all',
    '--subscriber-jwt-key',
    key,
    '--token-expiry-margin',
    '0',
    '--retry',
    '100',
  ]);
  let minted = 0;
  // Tokens for channel "tok" living 2-3 s (exp has a resolution of one second).
  const site = await startSite(t, () => {
    minted++;
    return new SignJWT({ channels: ['tok'] })
      .setProtectedHeader({ alg: 'HS256' })
      .setExpirationTime(Math.floor(Date.now() / 1000) + 3)
      .sign(new TextEncoder().encode(key));
  });
  const errors: string[] = [];
  const page = await browser.newPage();
  await openPage(page, pageUrl(site, hub.base, ['tok'], '&token=1'), errors);
  assert.equal(minted, 1);
  const ids = [await publish(hub.base, 'tok', 'm1')];
  await page.waitForFunction(() => window.got.length >= 1, undefined, { timeout: 5000 });

  await page.waitForFunction(() => window.expired.length >= 1, undefined, { timeout: 10_000 });
  // Published while the client gets its new token: replayed after it reconnects.
  ids.push(await publish(hub.base, 'tok', 'm2'), await publish(hub.base, 'tok', 'm3'));
  await waitFor(() => minted >= 2, 5000, 'a second token');
  await page.waitForFunction(() => window.state().open, undefined, { timeout: 5000 });
  ids.push(await publish(hub.base, 'tok', 'sentinel'));
  await page.waitForFunction(() => window.got.some((g) => g.data === 'sentinel'), undefined, { timeout: 5000 });

  const s = await state(page);
  assert.deepEqual(
    s.got.map((g) => g.data),
    ['m1', 'm2', 'm3', 'sentinel'],
  );
  assert.deepEqual(
    s.got.map((g) => g.id),
    ids,
  );
  const expired = await page.evaluate(() => window.expired);
  assert.deepEqual(JSON.parse(expired[0]!), { reason: 'token expired' });
  assert.ok(minted <= 1 + expired.length, `one new token per token-expired (${minted} minted, ${expired.length} expired)`);
  assert.deepEqual(
    errors.filter((e) => !/net::ERR|EventSource/.test(e)),
    [],
  );
});
