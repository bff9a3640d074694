// Real processes on Redis Sentinel and on TLS: an edge and a publisher started with
// --redis-sentinels (behind nginx) deliver a publish to a real EventSource — also the seed's raw
// Redis PUBLISH (ingest) and the cluster-wide /stats (directory), i.e. every Redis connection a
// process opens — and keep delivering after kill -9 of the primary; an all-in-one on rediss://
// with --redis-ca-file delivers, and without the CA it logs what to fix and stays up.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { Redis } from 'ioredis';
import {
  binPath,
  httpRequest,
  publishJson,
  RecordingSubscriber,
  spawnNode,
  startCluster,
  startRedisSentinelGroup,
  startRedisTls,
  startTcpRelay,
  waitFor,
  type Cluster,
} from '@cyclone-sse/testkit';

test('edge + publisher processes with --redis-sentinels: SSE delivery, raw PUBLISH ingest, cluster /stats — and delivery again after kill -9 of the primary', async (t) => {
  const group = await startRedisSentinelGroup({ replicas: 2, sentinels: 3 });
  let c: Cluster;
  try {
    c = await startCluster(t, {
      redisArgs: ['--redis-sentinels', group.sentinelsArg],
      edges: 1,
      publishers: 1,
      edgeArgs: ['--cluster-report-interval', '0.2'],
      publisherArgs: ['--redis-ingest-pattern', 'legacy.*'],
    });
  } catch (err) {
    await group.close();
    throw err;
  }
  t.after(() => group.close()); // after the processes (hooks run in order)
  const edge = c.edges[0]!;

  const sub = new RecordingSubscriber(`${c.base}/?channels=news&channels=legacy.x`);
  t.after(() => sub.close());
  await sub.opened();
  const first = await publishJson(c.base, { channel: 'news', data: 'one' });
  assert.equal(first.status, 200, JSON.stringify(first.json));
  await waitFor(() => sub.has('one'), 10_000, 'SSE delivery over Sentinel');

  // The seed's raw PUBLISH, sent to the primary Sentinel names, is ingested by the publisher.
  const primary = await group.primary();
  const raw = new Redis({ host: primary.host, port: primary.port, protocol: 2, lazyConnect: true });
  t.after(() => raw.disconnect());
  await raw.connect();
  await waitFor(async () => (await raw.publish('legacy.x', 'raw-1')) > 0, 10_000, 'the ingest subscribed on the primary');
  await waitFor(() => sub.has('raw-1'), 10_000, 'ingested delivery');
  raw.disconnect();

  // The edge reports its counts through the directory connection.
  await waitFor(
    async () => {
      const all = (await httpRequest(`${edge.metricsBase}/stats?scope=cluster`)).json as [string, number][];
      return all.some(([ch, n]) => ch === 'news' && n === 1);
    },
    10_000,
    'cluster /stats over Sentinel',
  );

  await group.waitReplicasInSync();
  await group.kill9(primary.port);
  const promoted = await group.waitForNewPrimary(primary.port, 30_000).catch((err: Error) => {
    throw new Error(`${err.message}\n${group.logs()}`);
  });
  let n = 0;
  const answered: string[] = [];
  await waitFor(
    async () => {
      const data = `after-${n++}`;
      const r = await publishJson(c.base, { channel: 'news', data });
      if (r.status === 200) answered.push(data);
      return r.status === 200;
    },
    30_000,
    'a publish answered 200 after the failover',
    200,
  );
  await waitFor(() => answered.some((d) => sub.has(d)), 20_000, 'SSE delivery after the failover');
  // The ingest and the directory followed too.
  const raw2 = new Redis({ host: '127.0.0.1', port: promoted, protocol: 2, lazyConnect: true });
  t.after(() => raw2.disconnect());
  await raw2.connect();
  await waitFor(async () => (await raw2.publish('legacy.x', 'raw-2')) > 0, 20_000, 'the ingest subscribed on the new primary', 200);
  await waitFor(() => sub.has('raw-2'), 10_000, 'ingested delivery after the failover');
  await raw2.del(`${c.prefix}:nodes`); // only a report made after the failover brings the edge back
  await waitFor(
    async () => {
      const all = (await httpRequest(`${edge.metricsBase}/stats?scope=cluster`)).json as [string, number][];
      return all.some(([ch, n]) => ch === 'news' && n === 1);
    },
    10_000,
    'cluster /stats after the failover',
  );
  for (const p of [edge, ...c.publishers]) assert.equal(await Promise.race([p.exited, Promise.resolve('running')]), 'running');
});

test('all-in-one on rediss:// with --redis-ca-file: publish and SSE delivery over TLS', async (t) => {
  const redis = await startRedisTls();
  t.after(() => redis.stop());
  const hub = await spawnNode('all-in-one', ['--redis-url', redis.url, '--redis-ca-file', redis.tls.caFile, '--redis-prefix', 'tls-sys']);
  t.after(() => hub.stop(3000));
  const sub = new RecordingSubscriber(`${hub.base}/?channels=secure`);
  t.after(() => sub.close());
  await sub.opened();
  const r = await publishJson(hub.base, { channel: 'secure', data: 'over tls' });
  assert.equal(r.status, 200);
  await waitFor(() => sub.has('over tls'), 10_000, 'delivery');
  assert.equal((await httpRequest(`${hub.metricsBase}/livez`)).status, 200);
  assert.equal((await httpRequest(`${hub.metricsBase}/readyz`)).status, 200);
});

test('all-in-one on rediss:// without the CA: a warn line naming --redis-ca-file, once; the process stays up while it retries', async (t) => {
  const redis = await startRedisTls();
  t.after(() => redis.stop());
  const relay = await startTcpRelay(redis.port); // counts the connection attempts
  t.after(() => relay.close());
  const child = spawn(
    process.execPath,
    [binPath('all-in-one'), '--port', '0', '--metrics-port', '0', '--redis-url', `rediss://127.0.0.1:${relay.port}`],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
  t.after(async () => {
    child.kill('SIGKILL');
    await exited;
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const errorLines = () =>
    out
      .split('\n')
      .filter((l) => l.includes('"event":"redis_error"'))
      .map((l) => JSON.parse(l) as { level: string; hint?: string; err: { message: string; code?: string } });
  await waitFor(() => errorLines().length > 0, 15_000, `a redis_error line in: ${out}`);
  const [line] = errorLines();
  assert.equal(line!.level, 'warn');
  assert.match(line!.hint ?? '', /not trusted: give its CA with --redis-ca-file/);
  assert.equal(line!.err.code, 'SELF_SIGNED_CERT_IN_CHAIN');
  const from = relay.connections;
  await waitFor(() => relay.connections >= from + 3, 15_000, 'three more connection attempts', 20);
  assert.equal(child.exitCode, null, `still running: ${out}`);
  assert.equal(errorLines().length, 1, 'one line for the state change, none per retry');
});
