/**
 * The priming id in real Chromium with a native EventSource and no client library: a stream cut
 * before its first message reconnects with `Last-Event-ID` = the priming id and gets everything
 * published while it was away — through a TCP relay cut and held while 5 messages are
 * published, and across edges behind nginx when the edge holding the stream is SIGKILLed.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { once } from 'node:events';
import type { Page } from 'playwright-core';
import {
  CHROMIUM,
  httpRequest,
  launchChromium,
  publishJson,
  startCluster,
  startTestHub,
  testRedisUrl,
  waitFor,
} from '@cyclone-sse/testkit';

const REDIS = testRedisUrl();

declare global {
  interface Window {
    got: { data: string; id: string }[];
    opens: number;
  }
}

/**
 * A TCP relay in front of a port. `cut()` drops every relayed connection; while `holding`, new
 * connections are accepted but not relayed (their bytes wait) until `release()`.
 */
class Relay {
  readonly server: Server;
  holding = false;
  /** Request heads, one per connection, in arrival order. */
  readonly requests: string[] = [];
  /** Everything relayed towards the client, per connection. */
  readonly answers: string[] = [];
  private readonly live = new Set<Socket>();
  private held: (() => void)[] = [];

  constructor(private readonly target: number) {
    this.server = createServer((client) => this.accept(client));
  }

  async listen(t: TestContext): Promise<number> {
    this.server.listen(0, '127.0.0.1');
    await once(this.server, 'listening');
    t.after(() => {
      for (const s of this.live) s.destroy();
      return new Promise<void>((resolve) => this.server.close(() => resolve()));
    });
    return (this.server.address() as AddressInfo).port;
  }

  get waiting(): number {
    return this.held.length;
  }

  cut(): void {
    this.holding = true;
    for (const s of this.live) s.destroy();
  }

  release(): void {
    this.holding = false;
    const held = this.held;
    this.held = [];
    for (const go of held) go();
  }

  private accept(client: Socket): void {
    const n = this.requests.push('') - 1;
    this.answers.push('');
    const early: Buffer[] = [];
    let upstream: Socket | undefined;
    this.live.add(client);
    client.on('data', (d: Buffer) => {
      if (!this.requests[n]!.includes('\r\n\r\n')) this.requests[n] += d.toString('latin1');
      if (upstream) upstream.write(d);
      else early.push(d);
    });
    const relay = () => {
      if (client.destroyed) return;
      const up = (upstream = connect(this.target, '127.0.0.1'));
      this.live.add(up);
      for (const d of early) up.write(d);
      up.on('data', (d: Buffer) => {
        this.answers[n] += d.toString('utf8');
        client.write(d);
      });
      up.on('close', () => client.destroy());
      up.on('error', () => client.destroy());
      client.on('close', () => up.destroy());
    };
    client.on('error', () => upstream?.destroy());
    if (this.holding) this.held.push(relay);
    else relay();
  }
}

/** The page's origin: serves a page that opens `?src=` with a native EventSource. */
async function startSite(t: TestContext): Promise<string> {
  const page = `<!doctype html><html><head><meta charset="utf-8"><title>priming</title></head><body><script>
  window.got = []; window.opens = 0;
  const es = new EventSource(new URLSearchParams(location.search).get('src'));
  es.onmessage = (e) => window.got.push({ data: e.data, id: e.lastEventId });
  es.onopen = () => window.opens++;
</script></body></html>`;
  const site = createHttpServer((req, res) => {
    if (req.url?.startsWith('/page')) res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' }).end(page);
    else res.writeHead(404).end();
  });
  site.listen(0, '127.0.0.1');
  await once(site, 'listening');
  t.after(() => new Promise<void>((resolve) => site.close(() => resolve())));
  return `http://127.0.0.1:${(site.address() as AddressInfo).port}`;
}

async function openPage(t: TestContext, site: string, src: string): Promise<Page | undefined> {
  if (!existsSync(CHROMIUM)) {
    t.skip(`${CHROMIUM} does not exist: install Chromium to run the browser tests`);
    return undefined;
  }
  const browser = await launchChromium();
  t.after(() => browser.close());
  const page = await browser.newPage();
  await page.goto(`${site}/page?src=${encodeURIComponent(src)}`);
  return page;
}

async function publish(base: string, channel: string, data: string): Promise<string> {
  const r = await publishJson(base, { channel, data });
  assert.equal(r.status, 200, r.text);
  return (r.json as { ids: string[] }).ids[0]!;
}

/** The priming id the relay passed to the browser on its first connection. */
async function primed(relay: Relay): Promise<string> {
  await waitFor(() => relay.answers[0]?.includes(':ok\n\n'), 10_000, 'the first bytes reached the browser');
  const m = /\r\n\r\n(?:[0-9a-f]+\r\n)?retry: \d+\nid: ([0-9a-z]+-\d+)\n:ok\n\n/.exec(relay.answers[0]!);
  assert.ok(m, `priming block first: ${JSON.stringify(relay.answers[0])}`);
  return m[1]!;
}

function lastEventIdOf(head: string): string | undefined {
  return /^last-event-id: *(.*)$/im.exec(head)?.[1]?.trim();
}

/** Publishes 5 while the browser's reconnect is held, releases it, then a sentinel; checks the page. */
async function publishWhileAway(page: Page, relay: Relay, base: string, channel: string, priming: string): Promise<void> {
  await waitFor(() => relay.waiting >= 1, 15_000, "the browser's own reconnect (held)");
  const ids: string[] = [];
  for (let i = 1; i <= 5; i++) ids.push(await publish(base, channel, `m${i}`));
  relay.release();
  await page.waitForFunction(() => window.got.length >= 5, undefined, { timeout: 15_000 });
  ids.push(await publish(base, channel, 'sentinel'));
  await page.waitForFunction(() => window.got.some((g) => g.data === 'sentinel'), undefined, { timeout: 15_000 });
  const got = await page.evaluate(() => window.got);
  assert.deepEqual(
    got,
    [...['m1', 'm2', 'm3', 'm4', 'm5'], 'sentinel'].map((data, i) => ({ data, id: ids[i] })),
    'all 5, once, in order',
  );
  assert.equal(lastEventIdOf(relay.requests[0]!), undefined, 'the first request had no cursor');
  assert.equal(lastEventIdOf(relay.requests[1]!), priming, 'the reconnect carried the priming id');
  assert.ok((await page.evaluate(() => window.opens)) >= 2);
}

test(
  'Chromium, native EventSource: a stream cut before any message resumes from the priming id with all 5 published meanwhile',
  { timeout: 60_000 },
  async (t) => {
    const hub = await startTestHub(t, ['--retry', '200', '--heartbeat', '3600']);
    const relay = new Relay(hub.port);
    const port = await relay.listen(t);
    const site = await startSite(t);
    const page = await openPage(t, site, `http://127.0.0.1:${port}/?channels=cut`);
    if (!page) return;
    const priming = await primed(relay);
    assert.deepEqual(await page.evaluate(() => window.got), []);
    relay.cut();
    await publishWhileAway(page, relay, hub.base, 'cut', priming);
  },
);

test(
  'Chromium behind nginx: the edge holding a stream with no message yet is SIGKILLed; the other edge resumes from the priming id',
  { timeout: 90_000 },
  async (t) => {
    const c = await startCluster(t, { redisUrl: REDIS, edges: 2, edgeArgs: ['--retry', '200'] });
    const relay = new Relay(Number(new URL(c.base).port));
    const port = await relay.listen(t);
    const site = await startSite(t);
    const page = await openPage(t, site, `http://127.0.0.1:${port}/?channels=killed`);
    if (!page) return;
    const priming = await primed(relay);
    const holds = async (base: string) => ((await httpRequest(`${base}/stats`)).json as [string, number][]).some(([ch]) => ch === 'killed');
    const holding = await waitFor(
      async () => {
        for (const e of c.edges) if (await holds(e.base)) return e;
        return undefined;
      },
      10_000,
      'the edge holding the stream',
    );
    const other = c.edges.find((e) => e !== holding)!;
    relay.holding = true; // the browser's reconnect waits until the 5 are published
    process.kill(holding.pid, 'SIGKILL');
    await holding.exited;
    await publishWhileAway(page, relay, c.base, 'killed', priming);
    assert.ok(await holds(other.base), 'the stream is on the surviving edge');
  },
);
