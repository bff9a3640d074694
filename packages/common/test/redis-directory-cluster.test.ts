// The cluster directory (the edges' channel counts behind /stats?scope=cluster and the AMQP
// direct-exchange bindings) on a real Redis Cluster: its keys share the hash tag {dir}, so a
// report's MULTI and a read's pipeline stay in one slot (no CROSSSLOT).
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startRedisCluster, type RedisCluster } from '@cyclone-sse/testkit';
import { Registry } from 'prom-client';
import { RedisDirectory, type RedisConnectionConfig } from '../src/index.js';

let cluster: RedisCluster;
let connection: RedisConnectionConfig;

before(async () => {
  cluster = await startRedisCluster({ primaries: 3, replicasPerPrimary: 0 });
  connection = { clusterNodes: cluster.seedList.map((s) => ({ host: s.host, port: s.port })) };
});
after(async () => {
  await cluster?.close();
});

test('RedisDirectory on a Redis Cluster: reports of two nodes are summed, a removed node drops out, keys under {dir}', async (t) => {
  const prefix = `dir${process.pid}`;
  const registry = new Registry();
  const a = new RedisDirectory(connection, prefix, 30, { registry });
  const b = new RedisDirectory(connection, prefix, 30);
  t.after(async () => {
    await a.close();
    await b.close();
  });
  await Promise.all([a.connect(), b.connect()]);
  await a.report('edge-a', [
    ['news', 2],
    ['sport', 1],
  ]);
  await b.report('edge-b', [['news', 3]]);
  assert.deepEqual([...(await a.channels())].sort(), [
    ['news', 5],
    ['sport', 1],
  ]);

  // Where the keys are: one slot, the one of the tag.
  const port = cluster.seedList[0]!.port;
  const keys = [`${prefix}:{dir}:nodes`, `${prefix}:{dir}:node:edge-a`, `${prefix}:{dir}:node:edge-b`];
  const slots = await Promise.all(keys.map(async (k) => Number(await cluster.command(port, 'CLUSTER', 'KEYSLOT', k))));
  assert.equal(new Set(slots).size, 1);
  const owner = await cluster.slotOwner(slots[0]!);
  assert.equal(await cluster.command(owner, 'EXISTS', ...keys), 3);
  assert.equal(await cluster.command(owner, 'ZSCORE', `${prefix}:{dir}:nodes`, 'edge-a').then((s) => Number(s) > Date.now()), true);

  // A report replaces the node's counts; a removed node no longer counts.
  await a.report('edge-a', [['sport', 4]]);
  await b.remove('edge-b');
  assert.deepEqual([...(await b.channels())], [['sport', 4]]);
  assert.equal(await cluster.command(owner, 'EXISTS', `${prefix}:{dir}:node:edge-b`), 0);
  const failures = (await registry.getSingleMetric('cyclone_sse_cluster_directory_failures_total')!.get()).values;
  assert.deepEqual(
    failures.map((v) => v.value),
    [0, 0, 0],
    'no call failed',
  );
});
