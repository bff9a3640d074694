/**
 * A real Chromium page on another origin opens a native EventSource on the hub (cross-origin,
 * CORS `*`), receives what is published over HTTP, and publishes itself with a cross-origin fetch
 * (preflighted), including reading a JSON error body (CORS on errors).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { createServer } from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { CHROMIUM, launchChromium, publishJson, startTestHub } from '@cyclone-sse/testkit';

const ID = /^[0-9a-z]{1,32}-\d+$/;

interface Received {
  type: string;
  data: string;
  lastEventId: string;
  origin: string;
}

declare global {
  interface Window {
    opened: boolean;
    received: Received[];
    errors: number;
  }
}

function page(hubPort: number): string {
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>cyclone-sse browser test</title></head>
<body>
<script>
  window.opened = false;
  window.received = [];
  window.errors = 0;
  const es = new EventSource('http://127.0.0.1:${hubPort}/?channels=browser');
  const keep = (e) => window.received.push({ type: e.type, data: e.data, lastEventId: e.lastEventId, origin: e.origin });
  es.onopen = () => { window.opened = true; };
  es.onmessage = keep;
  es.addEventListener('custom', keep);
  es.onerror = () => { window.errors++; };
  window.es = es;
</script>
</body></html>`;
}

test('Chromium on another origin: native EventSource receives HTTP publishes (data, lastEventId)', { timeout: 20_000 }, async (t) => {
  if (!existsSync(CHROMIUM)) {
    t.skip(`${CHROMIUM} does not exist: install Chromium to run the browser test`);
    return;
  }
  const hub = await startTestHub(t);

  // The page's origin: a separate HTTP server on another port.
  const site = createServer((req, res) => {
    if (req.url === '/') {
      res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
      res.end(page(hub.port));
    } else {
      res.writeHead(404).end();
    }
  });
  site.listen(0, '127.0.0.1');
  await once(site, 'listening');
  t.after(() => new Promise<void>((resolve) => site.close(() => resolve())));
  const siteOrigin = `http://127.0.0.1:${(site.address() as AddressInfo).port}`;
  assert.notEqual(siteOrigin, hub.base);

  const browser = await launchChromium();
  t.after(() => browser.close());
  const tab = await browser.newPage();
  const consoleErrors: string[] = [];
  tab.on('console', (m) => {
    if (m.type() === 'error') consoleErrors.push(m.text());
  });
  await tab.goto(`${siteOrigin}/`);
  await tab.waitForFunction(() => window.opened === true, undefined, { timeout: 8000 });

  // Published over HTTP by the test.
  const r1 = await publishJson(hub.base, { channel: 'browser', data: '["hello", {"n": 1}]' });
  assert.equal(r1.status, 200, r1.text);
  const [id1] = (r1.json as { ids: string[] }).ids;
  await tab.waitForFunction(() => window.received.length >= 1, undefined, { timeout: 8000 });

  // An event type and multi-line data.
  const r2 = await publishJson(hub.base, { channel: 'browser', data: 'line1\nline2', event: 'custom' });
  assert.equal(r2.status, 200, r2.text);
  const [id2] = (r2.json as { ids: string[] }).ids;
  await tab.waitForFunction(() => window.received.length >= 2, undefined, { timeout: 8000 });

  // Published by the page itself: a cross-origin, preflighted JSON fetch; then a bad one whose
  // JSON error body must be readable cross-origin (CORS on errors).
  const fromPage = await tab.evaluate(async (hubBase) => {
    const ok = await fetch(`${hubBase}/publish`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ channel: 'browser', data: 'from the page' }),
    });
    const bad = await fetch(`${hubBase}/publish`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ channel: 'browser' }),
    });
    type Accepted = { status: string; ids: string[] };
    type Refused = { code: string; statusCode: number };
    return {
      ok: { status: ok.status, body: (await ok.json()) as Accepted },
      bad: { status: bad.status, body: (await bad.json()) as Refused },
    };
  }, hub.base);
  assert.equal(fromPage.ok.status, 200);
  assert.equal(fromPage.ok.body.status, 'ok');
  const [id3] = fromPage.ok.body.ids;
  assert.equal(fromPage.bad.status, 400);
  assert.equal(fromPage.bad.body.code, 'MISSING_MESSAGE');
  assert.equal(fromPage.bad.body.statusCode, 400);
  await tab.waitForFunction(() => window.received.length >= 3, undefined, { timeout: 8000 });

  const state = await tab.evaluate(() => ({
    received: window.received,
    errors: window.errors,
    readyState: (window as unknown as { es: EventSource }).es.readyState,
  }));
  for (const id of [id1, id2, id3]) assert.match(id!, ID);
  assert.deepEqual(state.received, [
    { type: 'message', data: '["hello", {"n": 1}]', lastEventId: id1, origin: hub.base },
    { type: 'custom', data: 'line1\nline2', lastEventId: id2, origin: hub.base },
    { type: 'message', data: 'from the page', lastEventId: id3, origin: hub.base },
  ]);
  assert.deepEqual(JSON.parse(state.received[0]!.data), ['hello', { n: 1 }]);
  assert.equal(state.errors, 0, 'no EventSource error (no reconnect)');
  assert.equal(state.readyState, 1, 'still OPEN');
  assert.deepEqual(
    consoleErrors.filter((m) => /CORS|Access-Control/i.test(m)),
    [],
  );
});
