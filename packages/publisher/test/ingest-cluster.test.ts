// The legacy raw-PUBLISH ingest on a real 6-node Redis Cluster (3 primaries, 3 replicas): the
// lease through the Cluster client, the PSUBSCRIBE on one node, which sees a PUBLISH sent to any
// node; after kill -9 of that node the subscriber moves on to another and ingests again.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Redis } from 'ioredis';
import { MemoryBroker, Registry, createLogger, type BrokerMessage } from '@cyclone-sse/common';
import { parseSse, startRedisCluster, waitFor, type RedisCluster } from '@cyclone-sse/testkit';
import { RedisIngest } from '../src/redis-ingest/ingest.js';
import { PublishService } from '../src/publish-service.js';
import { createPublisherMetrics } from '../src/metrics.js';

const logger = createLogger(process.env.TEST_LOG_LEVEL ?? 'error');
let cluster: RedisCluster;

before(async () => {
  cluster = await startRedisCluster({ primaries: 3, replicasPerPrimary: 1, nodeTimeoutMs: 1000 });
});
after(async () => {
  await cluster?.close();
});

async function gauge(registry: Registry, name: string): Promise<number> {
  const m = registry.getSingleMetric(name);
  assert.ok(m, `metric ${name} is registered`);
  return (await m.get()).values[0]?.value ?? 0;
}

test(
  'raw PUBLISH on any node of a Redis Cluster is ingested once, and again after kill -9 of the subscribed node',
  { timeout: 60_000 },
  async (t) => {
    await cluster.refreshRoles();
    // A replica first among the seeds: the ingest subscribes there, and killing it needs no failover.
    const replica = cluster.nodes.find((n) => n.role === 'replica')!;
    const others = cluster.nodes.filter((n) => n !== replica);
    const seeds = [replica, ...others].map((n) => ({ host: '127.0.0.1', port: n.port }));

    const broker = new MemoryBroker({ historySize: 1000, historyTtlSeconds: 3600, idempotencyTtlSeconds: 60 });
    const received: string[] = [];
    broker.subscribe({
      message: (msg: BrokerMessage) => received.push(`${msg.channel} ${parseSse(msg.frame.toString('utf8')).events[0]?.data}`),
      activeChannels: () => [],
      lost: () => assert.fail('a memory broker never loses messages'),
    });
    await broker.start();
    t.after(() => broker.close());
    const registry = new Registry();
    const prefix = `ic${process.pid}`;
    const ingest = new RedisIngest(
      { connection: { clusterNodes: seeds }, prefix, pattern: 'legacy.*', maxChannelLength: 255, maxBody: 65536, leaseMs: 900 },
      new PublishService(broker, createPublisherMetrics(registry), logger),
      registry,
      logger,
    );
    t.after(() => ingest.stop());
    await ingest.start();
    await waitFor(() => ingest.isLeader, 10_000, 'the ingest holds the lease and is subscribed');
    assert.equal(await gauge(registry, 'cyclone_sse_publisher_redis_ingest_leader'), 1);

    // The lease key lives on the cluster (found through a Cluster-aware lookup of its slot owner).
    const slot = Number(await cluster.command(others[0]!.port, 'CLUSTER', 'KEYSLOT', `${prefix}:ingest-lease`));
    assert.ok(
      (await cluster.command(await cluster.slotOwner(slot), 'GET', `${prefix}:ingest-lease`)) !== null,
      'lease held in the cluster',
    );

    // A PUBLISH to each primary, and to the hub's own namespace (never ingested). Messages sent to
    // different nodes reach the subscribed node over different cluster-bus links: no order among them.
    const primaries = await cluster.primaryPorts();
    for (const [i, port] of primaries.entries()) await cluster.command(port, 'PUBLISH', 'legacy.a', `[${i}]`);
    await cluster.command(primaries[0]!, 'PUBLISH', `${prefix}:ch:legacy.a`, 'hub-own');
    await cluster.command(primaries[1]!, 'PUBLISH', 'other', 'not matched');
    // Through one node, in order.
    const sent: string[] = [];
    for (let i = 0; i < 50; i++) {
      sent.push(`legacy.c ${i}`);
      await cluster.command(primaries[2]!, 'PUBLISH', 'legacy.c', String(i));
    }
    await cluster.command(primaries[2]!, 'PUBLISH', 'legacy.c', 'sentinel 1');
    await waitFor(
      () => received.includes('legacy.c sentinel 1') && received.filter((r) => r.startsWith('legacy.a ')).length === 3,
      10_000,
      'sentinel 1 and the three cross-node messages',
    );
    assert.deepEqual(received.filter((r) => r.startsWith('legacy.a ')).sort(), ['legacy.a [0]', 'legacy.a [1]', 'legacy.a [2]']);
    assert.deepEqual(
      received.filter((r) => !r.startsWith('legacy.a ')),
      [...sent, 'legacy.c sentinel 1'],
    );

    // The subscribed node dies: the ingest moves to another node and ingests again.
    await cluster.kill9(replica.port);
    const probe = new Redis({ host: '127.0.0.1', port: primaries[0]!, lazyConnect: true, maxRetriesPerRequest: 1 });
    probe.on('error', () => undefined);
    t.after(() => probe.disconnect());
    await probe.connect();
    let n = 0;
    // PUBLISH answers the number of subscribers that got the message on that node: 0 until the
    // ingest's new PSUBSCRIBE is there (this node is one of the candidates it moves to, or another).
    await waitFor(
      async () => {
        await probe.publish('legacy.b', `retry ${n++}`);
        return received.some((r) => r.startsWith('legacy.b '));
      },
      15_000,
      'ingest again after its node was killed',
      100,
    );
    await probe.publish('legacy.b', 'sentinel 2');
    await waitFor(() => received.includes('legacy.b sentinel 2'), 10_000, 'sentinel 2');
    assert.equal(received.at(-1), 'legacy.b sentinel 2');
    assert.equal(new Set(received).size, received.length, `each raw message once: ${JSON.stringify(received)}`);
    // Whatever arrived after the move is an unbroken run of the retries (in order), then the sentinel.
    const retries = received.filter((r) => r.startsWith('legacy.b retry ')).map((r) => Number(r.slice('legacy.b retry '.length)));
    assert.deepEqual(
      retries,
      Array.from({ length: retries.length }, (_, i) => retries[0]! + i),
    );
    assert.equal(ingest.isLeader, true);
  },
);
