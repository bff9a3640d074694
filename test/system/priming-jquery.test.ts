/**
 * The seed's jQuery client (media/jquery.sse.js over media/jquery.eventsource.js) still sees
 * exactly the events it saw before the priming id, in its native mode and in its polling
 * fallback, in Chromium with the system's jQuery. The repository does not vendor the seed's
 * files, so the page runs a model of them written from their description in
 * shared/reference/original-cyclone-sse.md §6.1 and §6.3 (not their code): one stream for the
 * channels of every `.sse` element; each message parsed as JSON and passed to `message(data|null)`;
 * `["name", data]` triggers `sse.name` on the elements declaring `name`; in polling mode a jQuery
 * GET (same origin, so `X-Requested-With: XMLHttpRequest`), the answer split on blank lines,
 * `message()` called once per block, `Last-Event-Id` sent once an id was seen, and every block's
 * `retry:` (none = 0) sets the delay before the next poll. The page is served same-origin with the
 * hub behind `/sse/`, as in the seed's documented nginx deployment.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { createServer, request } from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { CHROMIUM, httpRequest, launchChromium, publishJson, startTestHub, waitFor } from '@cyclone-sse/testkit';

const JQUERY = '/usr/share/javascript/jquery/jquery.js'; // Debian's libjs-jquery

declare global {
  interface Window {
    calls: (string | null)[];
    fired: [string, string, string][];
  }
}

const PLUGIN = `(function ($) {
  $.eventsource = function (o) {
    var lastEventId = null, retry = 500;
    function deliver(raw, ev) {
      var data = raw === null || raw === undefined || raw === '' ? null : JSON.parse(raw);
      o.message(data || null, ev);
    }
    if (window.EventSource) {
      var es = new EventSource(o.url + '?' + o.data);
      es.onopen = function () { o.open(); };
      es.onerror = function (e) { o.error(e); };
      es.onmessage = function (e) { lastEventId = e.lastEventId; deliver(e.data, e); };
      return;
    }
    function poll() {
      o.open();
      $.ajax({ url: o.url + '?' + o.data, cache: false, timeout: 50000, dataType: 'text',
        headers: lastEventId ? { 'Last-Event-Id': lastEventId } : {},
        success: function (body) {
          body.split('\\n\\n').forEach(function (block) {
            if (!block) return;
            var ev = { type: 'message', data: null, retry: null }, data = [];
            block.split('\\n').forEach(function (line) {
              var m = /^(id|event|retry|data):(.*)$/.exec(line);
              if (!m) return;
              var v = m[2].trim();
              if (m[1] === 'data') data.push(v);
              else if (m[1] === 'id') ev.lastEventId = lastEventId = v;
              else if (m[1] === 'retry') ev.retry = /^\\d+$/.test(v) ? Number(v) : null;
              else ev.event = v;
            });
            retry = ev.retry;
            ev.data = data.length ? data.join('\\n') : null;
            deliver(ev.data, ev);
          });
          setTimeout(poll, retry || 0);
        },
        error: function (x, s, e) { o.error(e || s); } });
    }
    setTimeout(poll, retry);
  };
  $.sse = function (options) {
    var o = $.extend({ url: '/sse/', selector: '.sse', eventPrefix: 'sse.' }, options);
    var els = $(o.selector), channels = [], routes = {};
    els.each(function () {
      var el = this;
      ($(el).attr('data-sse-channels') || '').split(',').forEach(function (c) { c = c.trim(); if (c && channels.indexOf(c) < 0) channels.push(c); });
      ($(el).attr('data-sse-events') || '').split(',').forEach(function (n) { n = n.trim(); (routes[n] = routes[n] || []).push(el); });
    });
    var q = channels.map(function (c) { return 'channels=' + encodeURIComponent(c); }).join('&') + '&uuid=' + Math.random().toString(16).slice(2);
    $.eventsource({ url: o.url, data: q,
      open: function () { els.trigger(o.eventPrefix + 'open'); },
      error: function (e) { els.trigger(o.eventPrefix + 'error', [e]); },
      message: function (msg) {
        window.calls.push(msg === null ? null : JSON.stringify(msg));
        if (!msg) return;
        (routes[msg[0]] || []).forEach(function (el) { $(el).trigger(o.eventPrefix + msg[0], [msg[1]]); });
      } });
  };
})(jQuery);`;

const PAGE = `<!doctype html><html><head><meta charset="utf-8"><title>jquery.sse.js</title></head><body>
<div id="general" class="sse" data-sse-channels="base, news" data-sse-events="comment,login"></div>
<div id="weather" class="sse" data-sse-channels="weather" data-sse-events="forecast , comment"></div>
<script>if (location.search.includes('poll')) window.EventSource = undefined;</script>
<script src="/jquery.js"></script><script src="/jquery.sse.js"></script>
<script>
  window.calls = []; window.fired = [];
  $('.sse').on('sse.comment sse.login sse.forecast', function (e, data) { window.fired.push([e.type + '.' + e.namespace, this.id, JSON.stringify(data)]); });
  $.sse();
</script></body></html>`;

/** Same origin for the page and the hub (proxied behind /sse/); records every long-poll answer. */
async function startSite(t: TestContext, hubPort: number, polls: string[]): Promise<string> {
  const site = createServer((req, res) => {
    const url = req.url ?? '/';
    if (url.startsWith('/page')) return void res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' }).end(PAGE);
    if (url === '/jquery.js') return void res.writeHead(200, { 'Content-Type': 'text/javascript' }).end(readFileSync(JQUERY));
    if (url === '/jquery.sse.js') return void res.writeHead(200, { 'Content-Type': 'text/javascript' }).end(PLUGIN);
    if (!url.startsWith('/sse/')) return void res.writeHead(404).end();
    const up = request(
      { port: hubPort, host: '127.0.0.1', path: url.slice(4), headers: { ...req.headers, connection: 'close' } },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        let body = '';
        answer.on('data', (d: Buffer) => (body += d.toString()));
        answer.on('end', () => {
          if (req.headers['x-requested-with']) polls.push(body);
        });
        answer.pipe(res);
      },
    );
    up.on('error', () => res.destroy());
    req.on('close', () => up.destroy());
    up.end();
  });
  site.listen(0, '127.0.0.1');
  await once(site, 'listening');
  t.after(() => new Promise<void>((resolve) => site.close(() => resolve())));
  return `http://127.0.0.1:${(site.address() as AddressInfo).port}`;
}

for (const mode of ['native', 'poll'] as const) {
  test(
    `jquery.sse.js (${mode === 'native' ? 'native EventSource' : 'long-poll fallback'}): exactly the events it saw before; long-poll answers carry no priming block`,
    { timeout: 60_000 },
    async (t) => {
      if (!existsSync(CHROMIUM) || !existsSync(JQUERY)) {
        t.skip(`needs ${CHROMIUM} and ${JQUERY} (apt-get install chromium libjs-jquery)`);
        return;
      }
      const hub = await startTestHub(t, ['--heartbeat', '3600', '--long-poll-timeout', '20']);
      const polls: string[] = [];
      const site = await startSite(t, hub.port, polls);
      const browser = await launchChromium();
      t.after(() => browser.close());
      const page = await browser.newPage();
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(e.message));
      await page.goto(`${site}/page?${mode}`);
      // The first stream (or poll) is registered on the hub before anything is published.
      await waitFor(async () => ((await httpRequest(`${hub.base}/stats`)).json as [string, number][]).length === 3, 10_000, 'subscribed');

      const messages = [
        ['comment', { n: 1 }],
        ['login', 'bob'],
        ['unknown', 1],
        ['forecast', 'rain'],
        ['comment', { n: 2 }],
      ];
      const channels = ['base', 'news', 'base', 'weather', 'news'];
      for (const [i, m] of messages.entries()) {
        const r = await publishJson(hub.base, { channel: channels[i]!, data: JSON.stringify(m) });
        assert.equal(r.status, 200);
      }
      await page.waitForFunction(() => window.calls.length >= 5, undefined, { timeout: 15_000 });
      const { calls, fired } = await page.evaluate(() => ({ calls: window.calls, fired: window.fired }));
      assert.deepEqual(
        calls,
        messages.map((m) => JSON.stringify(m)),
        'one message() call per message, none for the priming block',
      );
      assert.deepEqual(fired, [
        ['sse.comment', 'general', '{"n":1}'],
        ['sse.comment', 'weather', '{"n":1}'],
        ['sse.login', 'general', '"bob"'],
        ['sse.forecast', 'weather', '"rain"'],
        ['sse.comment', 'general', '{"n":2}'],
        ['sse.comment', 'weather', '{"n":2}'],
      ]);
      assert.deepEqual(errors, []);
      if (mode === 'poll') {
        assert.ok(polls.length >= 1);
        for (const body of polls) assert.match(body, /^(id: [0-9a-z]+-\d+\ndata: [^\n]+\n\n)+$/, 'long-poll answers: message frames only');
      } else assert.deepEqual(polls, []);
    },
  );
}
