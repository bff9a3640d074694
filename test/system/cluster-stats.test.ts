// /stats across a cluster: two edge processes on one Redis behind nginx report their channel
// counts; the internal port sums the live ones, the public port never answers anonymously.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { httpRequest, RecordingSubscriber, startCluster, testRedisUrl, waitFor } from '@cyclone-sse/testkit';

const REDIS = testRedisUrl();

test('GET /stats?scope=cluster (internal port) sums every live edge; plain /stats stays per edge; never anonymous on the public port', async (t) => {
  const c = await startCluster(t, { redisUrl: REDIS, edges: 2, edgeArgs: ['--cluster-report-interval', '0.2'] });
  const subs = Array.from({ length: 6 }, (_, i) => new RecordingSubscriber(`${c.edges[i % 2]!.base}/?channels=cs&channels=cs${i % 2}`));
  t.after(() => subs.forEach((s) => s.close()));
  await Promise.all(subs.map((s) => s.opened()));
  const local = ((await httpRequest(`${c.edges[0]!.base}/stats`)).json as [string, number][]).sort();
  assert.deepEqual(local, [
    ['cs', 3],
    ['cs0', 3],
  ]);
  await waitFor(
    async () => {
      const all = ((await httpRequest(`${c.edges[1]!.metricsBase}/stats?scope=cluster`)).json as [string, number][]).sort();
      return (
        JSON.stringify(all) ===
        JSON.stringify([
          ['cs', 6],
          ['cs0', 3],
          ['cs1', 3],
        ])
      );
    },
    10_000,
    'cluster-wide counts',
  );
  // A dead edge drops out when its report expires (or at once on a clean stop).
  await c.edges[1]!.stop();
  await waitFor(
    async () => {
      const all = ((await httpRequest(`${c.edges[0]!.metricsBase}/stats?scope=cluster`)).json as [string, number][]).sort();
      return (
        JSON.stringify(all) ===
        JSON.stringify([
          ['cs', 3],
          ['cs0', 3],
        ])
      );
    },
    15_000,
    'stopped edge no longer counted',
  );
  assert.equal((await httpRequest(`${c.edges[0]!.base}/stats?scope=bogus`)).status, 400);
  // Anonymous cluster-wide stats on the public port: refused (no subscriber tokens configured here).
  const anon = await httpRequest(`${c.base}/stats?scope=cluster`);
  assert.equal(anon.status, 403);
  assert.equal((anon.json as { code: string }).code, 'FORBIDDEN');
});
