/**
 * The live demo page at /demo in Chromium: connected channels, publish form with the key field
 * (401 without it, then the event in the aria-live log), subscriber counts from /stats, snippets
 * for this host. A screenshot goes to the OS temp directory as an artifact (not an assertion).
 * `--demo false` turns the page off.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CHROMIUM, httpRequest, launchChromium, publishJson, startTestHub } from '@cyclone-sse/testkit';

test(
  'demo page: publish from the form (key field) → the event appears in the log; stats and snippets for this host',
  { timeout: 60_000 },
  async (t) => {
    if (!existsSync(CHROMIUM)) {
      t.skip(`${CHROMIUM} does not exist: install Chromium to run the browser test`);
      return;
    }
    const hub = await startTestHub(t, ['--http-secret', 's3cret']);
    const head = await httpRequest(`${hub.base}/demo`);
    assert.equal(head.status, 200);
    assert.equal(head.headers.get('content-type'), 'text/html; charset=utf-8');

    const browser = await launchChromium();
    t.after(() => browser.close());
    const page = await browser.newPage({ viewport: { width: 1200, height: 1000 } });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('console', (m) => {
      if (m.type() === 'error' && !/status of 401/.test(m.text())) errors.push(m.text());
    });
    await page.goto(`${hub.base}/demo`);

    // Connected, with the channel listed; the log is a polite live region.
    await page.getByRole('status').filter({ hasText: 'Connected to demo' }).waitFor({ timeout: 10_000 });
    assert.deepEqual(await page.locator('#connected li').allTextContents(), ['demo']);
    const log = page.getByRole('log');
    assert.equal(await log.getAttribute('aria-live'), 'polite');

    // Labelled controls; without the key the hub answers 401 and the page says so.
    await page.getByLabel('Message').fill('["hello", {"n": 42}]');
    assert.equal(await page.getByLabel('Channel', { exact: true }).inputValue(), 'demo');
    await page.getByRole('button', { name: 'Publish' }).click();
    await page.locator('#publish-result').filter({ hasText: 'HTTP 401' }).waitFor({ timeout: 5000 });
    assert.equal(await log.locator('li').count(), 0, 'nothing published');

    await page.getByLabel(/^Key/).fill('s3cret');
    await page.getByRole('button', { name: 'Publish' }).click();
    await page.locator('#publish-result').filter({ hasText: 'Published' }).waitFor({ timeout: 5000 });
    const entry = log.locator('li').filter({ hasText: '["hello", {"n": 42}]' });
    await entry.waitFor({ timeout: 5000 });
    assert.match(await entry.innerText(), /\b[0-9a-z]+-\d+\s+message\s+\["hello", \{"n": 42\}\]/);

    // A publish from elsewhere shows up too.
    const r = await publishJson(hub.base, { channel: 'demo', data: 'from curl' }, { Authorization: 'Bearer s3cret' });
    assert.equal(r.status, 200, r.text);
    await log.locator('li').filter({ hasText: 'from curl' }).waitFor({ timeout: 5000 });
    assert.equal(await log.locator('li').count(), 2);

    // Subscriber counts from /stats (this page's one connection).
    await page.locator('#stats tr').filter({ hasText: 'demo' }).filter({ hasText: '1' }).waitFor({ timeout: 5000 });

    // Snippets name this host and channel, and never the key.
    const snippets = await page.locator('#snippets').innerText();
    assert.ok(snippets.includes(`curl -N '${hub.base}/?channels=demo'`), snippets);
    assert.ok(snippets.includes(`${hub.base}/publish`), snippets);
    assert.ok(snippets.includes(`new EventSource("${hub.base}/?channels=demo")`), snippets);
    assert.ok(snippets.includes(`import { connect } from "${hub.base}/client.js"`), snippets);
    assert.ok(!snippets.includes('s3cret'), 'the key is not shown');

    const shot = join(tmpdir(), `cyclone-sse-demo-${process.pid}.png`);
    await page.screenshot({ path: shot, fullPage: true });
    t.diagnostic(`screenshot: ${shot}`);
    assert.deepEqual(errors, []);
  },
);

test('--demo false: /demo is a JSON 404, /client.js is still served', async (t) => {
  const hub = await startTestHub(t, ['--demo', 'false']);
  const demo = await httpRequest(`${hub.base}/demo`);
  assert.equal(demo.status, 404);
  assert.equal((demo.json as { code: string }).code, 'NOT_FOUND');
  assert.equal((await httpRequest(`${hub.base}/client.js`)).status, 200);
});
