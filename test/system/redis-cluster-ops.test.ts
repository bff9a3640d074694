// Edge and publisher processes on one real 6-node Redis Cluster (3 primaries, 3 replicas),
// started once for the file, behind nginx: the cluster-wide /stats (the directory), the AMQP
// direct-exchange bindings that follow subscribers (publish via AMQP, receive on an edge), and the
// seed's raw `PUBLISH` to a cluster node (the legacy ingest) reaching an SSE subscriber.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import amqp from 'amqplib';
import {
  createRabbitVhost,
  ensureRabbit,
  httpRequest,
  rabbitmqctl,
  RecordingSubscriber,
  scrapeMetric,
  startCluster,
  startRedisCluster,
  waitFor,
  type RedisCluster,
} from '@cyclone-sse/testkit';

const TEST = { timeout: 90_000 };
let cluster: RedisCluster;

before(async () => {
  cluster = await startRedisCluster({ primaries: 3, replicasPerPrimary: 1, nodeTimeoutMs: 1000 });
});
after(async () => {
  await cluster?.close();
});

const onCluster = (): string[] => ['--redis-cluster-nodes', cluster.seeds];
const sorted = (json: unknown): [string, number][] => (json as [string, number][]).slice().sort((a, b) => a[0].localeCompare(b[0]));

test(
  'GET /stats?scope=cluster sums both edges on a Redis Cluster (directory keys under {dir}); a stopped edge drops out',
  TEST,
  async (t) => {
    const c = await startCluster(t, { redisArgs: onCluster(), edges: 2, edgeArgs: ['--cluster-report-interval', '0.2'] });
    const subs = Array.from({ length: 6 }, (_, i) => new RecordingSubscriber(`${c.edges[i % 2]!.base}/?channels=cs&channels=cs${i % 2}`));
    t.after(() => subs.forEach((s) => s.close()));
    await Promise.all(subs.map((s) => s.opened()));
    const want = [
      ['cs', 6],
      ['cs0', 3],
      ['cs1', 3],
    ];
    await waitFor(
      async () =>
        JSON.stringify(sorted((await httpRequest(`${c.edges[1]!.metricsBase}/stats?scope=cluster`)).json)) === JSON.stringify(want),
      10_000,
      'cluster-wide counts of both edges',
    );
    // The reports are in the cluster, in the directory's one slot.
    const slot = Number(await cluster.command(cluster.nodes[0]!.port, 'CLUSTER', 'KEYSLOT', `${c.prefix}:{dir}:nodes`));
    assert.equal(await cluster.command(await cluster.slotOwner(slot), 'ZCARD', `${c.prefix}:{dir}:nodes`), 2);
    await c.edges[1]!.stop();
    await waitFor(
      async () =>
        JSON.stringify(sorted((await httpRequest(`${c.edges[0]!.metricsBase}/stats?scope=cluster`)).json)) ===
        JSON.stringify([
          ['cs', 3],
          ['cs0', 3],
        ]),
      15_000,
      'the stopped edge no longer counted',
    );
    assert.equal(await scrapeMetric(c.edges[0]!.metricsBase, 'cyclone_sse_cluster_directory_failures_total{op="report"}'), 0);
  },
);

test(
  'AMQP direct exchange on a Redis Cluster: bindings follow the subscribers of both edges; an AMQP publish reaches an edge subscriber',
  TEST,
  async (t) => {
    await ensureRabbit();
    const vhost = await createRabbitVhost('rc-direct');
    t.after(() => vhost.delete());
    const exchange = 'sse-cyclone-server';
    const c = await startCluster(t, {
      redisArgs: onCluster(),
      edges: 2,
      edgeArgs: ['--cluster-report-interval', '0.2'],
      publisherArgs: [
        '--amqp-url',
        vhost.url,
        '--amqp-exchange',
        exchange,
        '--amqp-exchange-type',
        'direct',
        '--cluster-report-interval',
        '0.2',
      ],
    });
    const bound = async (): Promise<string[]> =>
      (await rabbitmqctl('--no-table-headers', 'list_bindings', '-p', vhost.name, 'source_name', 'routing_key'))
        .split('\n')
        .filter((l) => l.startsWith(`${exchange}\t`))
        .map((l) => l.slice(exchange.length + 1))
        .sort();
    const bindings = () => scrapeMetric(c.publishers[0]!.metricsBase, 'cyclone_sse_publisher_amqp_bindings');

    const a = new RecordingSubscriber(`${c.edges[0]!.base}/?channels=da`);
    const b = new RecordingSubscriber(`${c.edges[1]!.base}/?channels=db&channels=da`);
    t.after(() => [a, b].forEach((s) => s.close()));
    await Promise.all([a.opened(), b.opened()]);
    await waitFor(async () => JSON.stringify(await bound()) === JSON.stringify(['da', 'db']), 20_000, 'da and db bound');
    assert.equal(await bindings(), 2);

    const conn = await amqp.connect(vhost.url);
    t.after(() => conn.close().catch(() => undefined));
    const ch = await conn.createConfirmChannel();
    await ch.assertExchange(exchange, 'direct', { durable: false, autoDelete: false });
    const send = async (key: string, body: string): Promise<void> => {
      ch.publish(exchange, key, Buffer.from(body));
      await ch.waitForConfirms();
    };
    await send('nobody', 'unbound');
    await send('da', '["comment", "1"]');
    await send('db', 'for b');
    await send('da', 'sentinel 1');
    await send('db', 'sentinel b');
    // Sequenced on the cluster (the unbound one never reached the queue)…
    const amqpOk = 'cyclone_sse_publisher_publishes_total{source="amqp",outcome="ok"}';
    await waitFor(async () => (await scrapeMetric(c.publishers[0]!.metricsBase, amqpOk, 0)) === 4, 15_000, 'four AMQP publishes sequenced');
    // …and delivered by both edges, each channel in order (da and db may be in different
    // partitions: no order between them).
    await waitFor(
      () => a.has('sentinel 1') && b.has('sentinel 1') && b.has('sentinel b'),
      15_000,
      'AMQP messages through the cluster to both edges',
    );
    const da = ['["comment", "1"]', 'sentinel 1'];
    const db = ['for b', 'sentinel b'];
    assert.deepEqual(
      a.received.map((r) => r.data),
      da,
    );
    const got = b.received.map((r) => r.data);
    assert.equal(got.length, 4, JSON.stringify(got));
    assert.deepEqual(
      got.filter((d) => da.includes(d)),
      da,
    );
    assert.deepEqual(
      got.filter((d) => db.includes(d)),
      db,
    );

    // db loses its last subscriber (on edge 1): unbound; da stays bound (edge 0 still serves it).
    b.close();
    await waitFor(async () => JSON.stringify(await bound()) === JSON.stringify(['da']), 20_000, 'db unbound');
    assert.equal(await bindings(), 1);
  },
);

test("the seed's raw PUBLISH to a Redis Cluster node is ingested and reaches an SSE subscriber, in order", TEST, async (t) => {
  const c = await startCluster(t, { redisArgs: onCluster(), edges: 1, publisherArgs: ['--redis-ingest-pattern', 'legacy.*'] });
  const sub = new RecordingSubscriber(`${c.base}/?channels=legacy.x`);
  t.after(() => sub.close());
  await sub.opened();
  await waitFor(
    async () => (await scrapeMetric(c.publishers[0]!.metricsBase, 'cyclone_sse_publisher_redis_ingest_leader')) === 1,
    15_000,
    'the ingest holds the lease and is subscribed',
  );
  // Any node: a replica, not one of the ingest's seeds' first.
  await cluster.refreshRoles();
  const node = cluster.nodes.filter((n) => n.role === 'replica').at(-1)!.port;
  const sent: string[] = [];
  for (let i = 0; i < 20; i++) {
    sent.push(JSON.stringify([1, 2, i]));
    await cluster.command(node, 'PUBLISH', 'legacy.x', sent.at(-1)!);
  }
  await cluster.command(node, 'PUBLISH', 'legacy.x', '"sentinel"');
  const ingested = 'cyclone_sse_publisher_redis_ingested_total{outcome="ok"}';
  await waitFor(async () => (await scrapeMetric(c.publishers[0]!.metricsBase, ingested)) === 21, 15_000, 'the raw messages ingested');
  await waitFor(() => sub.has('"sentinel"'), 15_000, 'the raw messages delivered');
  assert.deepEqual(
    sub.received.map((r) => r.data),
    [...sent, '"sentinel"'],
  );
  assert.equal(await scrapeMetric(c.publishers[0]!.metricsBase, ingested), 21, 'nothing else ingested');
});
