// Hot-path containment at the Hub level, on a real uWS app: a connection whose response is gone
// behind the hub's back (its socket closed, the abort not reported to the hub) makes uWS throw on
// the next write to it. That exception must close only that connection (as 'error'), be counted
// and logged once, and every other connection must keep receiving.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeApp, createLogger, createRegistry, listen, uWS, type BrokerMessage, type HttpResponse } from '@cyclone-sse/common';
import { RawHttpClient, parseMetrics, waitFor } from '@cyclone-sse/testkit';
import { Hub } from '../src/hub.js';
import { UwsSseConnection } from '../src/uws-sse-connection.js';
import { createEdgeMetrics } from '../src/metrics.js';
import { RetryHint } from '../src/retry-hint.js';

function message(seq: number, channel: string): BrokerMessage {
  return { seq, channel, frame: Buffer.from(`id: e-${seq}\ndata: m${seq}\n\n`), publishedAt: Date.now() };
}

test('an exception while flushing one connection closes only that one; the others keep flowing', async (t) => {
  const registry = createRegistry();
  const metrics = createEdgeMetrics(registry);
  const lines: string[] = [];
  const logger = createLogger('error');
  logger.on('data', (info: { event?: string }) => lines.push(String(info.event)));
  const hub = new Hub(
    {
      heartbeatMs: 60_000,
      retry: new RetryHint(2000, 0),
      maxQueuedBytes: 1 << 20,
      maxQueuedBytesTotal: 0,
      longPollTimeoutMs: 30_000,
      coalesceMaxDelayMs: 0,
    },
    metrics,
    logger,
  );
  let brokenAborted = 0;
  const app = uWS.App();
  const open = (res: HttpResponse, detachOnAbort: boolean) => {
    const conn = new UwsSseConnection(res, ['c'], [], false, Date.now());
    res.onAborted(() => {
      if (detachOnAbort) hub.detach(conn, 'client');
      else brokenAborted++; // the hub is not told: its next write to `res` throws in uWS
    });
    res.onWritable(() => hub.writable(conn));
    res.cork(() => res.writeStatus('200 OK').writeHeader('Content-Type', 'text/event-stream').write(':ok\n\n'));
    hub.attach(conn);
  };
  app.get('/broken', (res) => open(res, false));
  app.get('/ok', (res) => open(res, true));
  const { port } = await listen(app, '127.0.0.1', 0);
  t.after(() => closeApp(app));

  const broken = await RawHttpClient.request(port, '/broken');
  const healthy = await RawHttpClient.request(port, '/ok');
  t.after(() => healthy.close());
  for (const c of [broken, healthy]) await c.until((x) => x.body.includes(':ok'), 5000, 'open');
  broken.socket.destroy();
  await waitFor(() => brokenAborted === 1, 5000, 'uWS saw the broken socket go');

  hub.message(message(1, 'c'));
  hub.message(message(2, 'c'));
  await healthy.untilEvents(2);
  hub.message(message(3, 'c'));
  hub.message(message(4, 'c'));
  await healthy.untilEvents(4);
  assert.deepEqual(
    healthy.events.map((e) => e.id),
    ['e-1', 'e-2', 'e-3', 'e-4'],
    'the healthy connection got everything',
  );
  assert.equal(hub.connections.size, 1, 'only the broken connection was closed');
  const m = parseMetrics(await registry.metrics());
  assert.equal(m.get('cyclone_sse_edge_internal_errors_total{where="flush"}'), 1);
  assert.equal(m.get('cyclone_sse_edge_connections_closed_total{reason="error"}'), 1);
  assert.equal(lines.filter((e) => e === 'internal_error').length, 1, 'logged once');
});
