import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { once } from 'node:events';
import { Redis } from 'ioredis';
import { scrapeMetric, spawnNode, startRedis, waitFor } from '@cyclone-sse/testkit';

const REPORT_FAILURES = 'cyclone_sse_cluster_directory_failures_total{op="report"}';

type LogLine = { event?: string; op?: string; err?: { message?: string; code?: string; stack?: string } };
const events = (output: string, event: string): LogLine[] =>
  output
    .split('\n')
    .filter((l) => l.includes(`"event":"${event}"`))
    .map((l) => JSON.parse(l) as LogLine);

test(
  'directory reports that fail while Redis is down are counted every interval, logged once, and the recovery once',
  { timeout: 60_000 },
  async (t) => {
    const redis = await startRedis();
    t.after(() => redis.stop());
    const prefix = `cdir${process.pid}`;
    const edge = await spawnNode('edge', [
      '--redis-url',
      redis.url,
      '--redis-prefix',
      prefix,
      '--cluster-report-interval',
      '0.2',
      '--drain-seconds',
      '0',
      '--log-level',
      'info',
    ]);
    t.after(() => edge.stop(3000));
    const admin = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
    admin.on('error', () => undefined);
    t.after(() => admin.disconnect());
    await admin.connect();
    await waitFor(async () => (await admin.zcard(`${prefix}:nodes`)) === 1, 10_000, 'the edge reported');
    assert.equal(await scrapeMetric(edge.metricsBase, REPORT_FAILURES), 0, 'no failure while Redis is up');

    admin.disconnect();
    await redis.kill9();
    // Several intervals of failures: each one counted, one log line for the whole outage.
    await waitFor(async () => (await scrapeMetric(edge.metricsBase, REPORT_FAILURES)) >= 5, 15_000, 'failed reports counted');
    const failed = events(edge.output(), 'cluster_directory_failed');
    assert.equal(failed.length, 1, 'logged once per state change, not per report');
    assert.equal(failed[0]?.op, 'report');
    assert.ok(failed[0]?.err?.message, 'the cause has a message');
    assert.match(failed[0]?.err?.stack ?? '', /Error/, 'and a stack');
    assert.equal(events(edge.output(), 'cluster_directory_recovered').length, 0);

    await redis.restart();
    await waitFor(() => events(edge.output(), 'cluster_directory_recovered').length === 1, 15_000, 'recovery logged');
    const back = new Redis(redis.url, { maxRetriesPerRequest: 1 });
    back.on('error', () => undefined);
    t.after(() => back.disconnect());
    await waitFor(async () => (await back.zcard(`${prefix}:nodes`)) === 1, 10_000, 'the edge reports again');
    const countAfter = await scrapeMetric(edge.metricsBase, REPORT_FAILURES);
    // Two more reports land (each moves the node's expiry forward); none of them is counted.
    const expiry = async () => Number((await back.zrange(`${prefix}:nodes`, '0', '0', 'WITHSCORES'))[1]);
    const first = await expiry();
    await waitFor(async () => (await expiry()) > first, 5000, 'a report after the recovery');
    const second = await expiry();
    await waitFor(async () => (await expiry()) > second, 5000, 'another report');
    assert.equal(await scrapeMetric(edge.metricsBase, REPORT_FAILURES), countAfter, 'no failure counted once reachable');
    assert.equal(events(edge.output(), 'cluster_directory_failed').length, 1);
    assert.equal(events(edge.output(), 'cluster_directory_recovered').length, 1);
  },
);

test('a startup failure logs its Error as err {message, code, stack} in the JSON line and exits 1', { timeout: 30_000 }, async (t) => {
  const redis = await startRedis();
  t.after(() => redis.stop());
  const taken = createServer();
  taken.listen(0, '127.0.0.1');
  await once(taken, 'listening');
  t.after(() => taken.close());
  const port = (taken.address() as { port: number }).port;
  // spawnNode passes --port 0 first; the later --port wins (the last repeated flag wins).
  const failed = spawnNode('edge', [
    '--redis-url',
    redis.url,
    '--redis-prefix',
    `cdirs${process.pid}`,
    '--port',
    String(port),
    '--listen',
    '127.0.0.1',
  ]);
  const err = await failed.then(
    () => assert.fail('the edge listened on a port already in use'),
    (e: unknown) => String(e),
  );
  const line = err.split('\n').find((l) => l.includes('"event":"start_failed"'));
  assert.ok(line, err);
  const logged = (JSON.parse(line) as LogLine).err;
  assert.equal(logged?.code, 'LISTEN_FAILED');
  assert.match(logged?.message ?? '', new RegExp(`cannot listen on 127\\.0\\.0\\.1:${port}`));
  assert.match(logged?.stack ?? '', /StartupError: cannot listen/);
  assert.match(err, new RegExp(`cyclone-sse: LISTEN_FAILED: cannot listen on 127\\.0\\.0\\.1:${port}`), 'stderr names the code');
  assert.match(err, /exited with 1/);
});
