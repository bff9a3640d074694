// The Redis broker on a real 6-node Redis Cluster (3 primaries, 3 replicas): partitioned
// sequencing, sharded per-channel delivery to the channels an edge watches, history and
// multi-partition cursors, gap repair after a lost subscriber connection; and the Broker contract
// (broker.contract.ts) on channels pinned to one partition.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { waitFor } from '@cyclone-sse/testkit';
import { Redis } from 'ioredis';
import { createLogger, hashSlot, partitionOf, partitionTags, RedisClusterBroker, RedisKeys } from '../src/index.js';
import { brokerContract, type RecordingSink } from './broker.contract.js';
import { clusterBrokers, fileRedisCluster } from './redis-cluster-brokers.js';

const redis = fileRedisCluster({ primaries: 3, replicasPerPrimary: 1, nodeTimeoutMs: 1000 });
let n = 0;
const logger = createLogger('error');

function brokers(t: { after(fn: () => unknown): void }, partitions = 16) {
  return clusterBrokers(t, { connection: redis.connection, prefix: `cb${process.pid}x${n++}`, partitions, logger });
}

/**
 * The Broker contract with every channel pinned by one `{tag}` to partition 0: order is per
 * partition by design (docs/delivery.md#partitions-on-a-redis-cluster), so the cases on order
 * across channels hold within one partition (the tagged-channel recipe of that page), and
 * partition 0 is the one `position()` answers. One broker both publishes and, as an edge,
 * watches the contract's live channels.
 */
const CONTRACT_PARTITIONS = 16;
const CONTRACT_TAG = (() => {
  for (let i = 0; ; i++) if (partitionOf(`{p${i}}`, CONTRACT_PARTITIONS) === 0) return `p${i}`;
})();
brokerContract(
  'RedisClusterBroker',
  async (options) => {
    const prefix = `cc${process.pid}x${n++}`;
    const broker = new RedisClusterBroker({
      ...options,
      connection: redis.connection,
      prefix,
      partitions: CONTRACT_PARTITIONS,
      logger,
      probeIntervalMs: 200,
      slotRefreshMs: 500,
    });
    const keys = new RedisKeys(prefix, partitionTags(CONTRACT_PARTITIONS)[0]);
    let watched: string[] = [];
    return {
      broker,
      cleanup: () => broker.close(),
      async expireHistory(channel: string) {
        // Real expiry: the stream key disappears after its TTL, on the node owning its slot.
        const key = keys.history(channel);
        await waitFor(
          async () => (await redis.cluster.command(await redis.cluster.slotOwner(hashSlot(key)), 'EXISTS', key)) === 0,
          10_000,
          `expiry of ${channel}`,
        );
      },
      async watch(channels: string[]) {
        watched = channels;
        for (const c of channels) broker.watch(c);
        await broker.whenSubscribed(channels);
      },
      livePosition: () => broker.livePositions(watched)?.[0],
    };
  },
  { channel: (name) => `{${CONTRACT_TAG}}${name}`, partition: 0 },
);

/** Channels `ch0…` falling in `count` distinct partitions on every shard, one per partition. */
function spreadChannels(count: number, partitions = 16): string[] {
  const seen = new Set<number>();
  const out: string[] = [];
  for (let i = 0; out.length < count; i++) {
    const c = `ch${i}`;
    const p = partitionOf(c, partitions);
    if (seen.has(p)) continue;
    seen.add(p);
    out.push(c);
  }
  return out;
}

/** Each channel's sink got the ids `sent` gave it (one per publish, at its index in `channels`): each once, in order. */
function assertEveryIdOnce(sink: RecordingSink, channels: string[], sent: string[][]): void {
  for (const c of channels)
    assert.deepEqual(
      sink.idsOn(c),
      sent.map((ids) => ids[channels.indexOf(c)]!),
      `${c}: every id once, in order`,
    );
}

test('the 16 partition tags spread 5/6/5 over the 3 shards of `redis-cli --cluster create`', async () => {
  const map = await redis.cluster.slotMap();
  const perShard = map.map((r) => partitionTags(16).filter((tag) => hashSlot(tag) >= r.first && hashSlot(tag) <= r.last).length);
  assert.deepEqual(perShard, [5, 6, 5]);
});

test('publish over several partitions: ids name their partition; only watched channels are delivered, in order per partition', async (t) => {
  const { publisher, edge, sink, watch } = await brokers(t);
  const channels = spreadChannels(6);
  const unwatched = spreadChannels(12).filter((c) => !channels.includes(c));
  await watch(channels);
  const sent: string[][] = [];
  for (let i = 0; i < 30; i++) {
    const [r] = await publisher.publish([{ channels: [...channels, ...unwatched], data: `m${i}` }]);
    sent.push(r!.ids);
  }
  // Each id's epoch names the channel's partition.
  for (const ids of sent)
    ids.forEach((id, j) => {
      const c = [...channels, ...unwatched][j]!;
      assert.equal(edge.codec.partitionOfEpoch(id.split('-')[0]!), partitionOf(c, 16), `${id} names the partition of ${c}`);
    });
  await waitFor(() => sink.messages.length >= 30 * channels.length, 10_000, 'every watched message delivered');
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(sink.messages.length, 30 * channels.length, 'nothing of the unwatched channels, no duplicate');
  assertEveryIdOnce(sink, channels, sent);
  assert.equal(sink.lostCalls.length, 0);
});

test('history with a multi-partition cursor reads each partition from its own position', async (t) => {
  const { publisher, edge } = await brokers(t);
  const channels = spreadChannels(3);
  const first = await publisher.publish([{ channels, data: 'a' }]);
  const ids = first[0]!.ids;
  const cursor = edge.codec.format(
    ids.map((id) => ({
      epoch: id.split('-')[0]!,
      seq: Number(id.split('-')[1]),
      partition: edge.codec.partitionOfEpoch(id.split('-')[0]!)!,
    })),
  );
  assert.equal(cursor.split('.').length, 3);
  await publisher.publish([{ channels, data: 'b' }]);
  for (const c of channels) {
    const h = await edge.history([c], cursor);
    assert.equal(h.reset, undefined);
    assert.deepEqual(
      h.messages.map((m) => m.frame.toString().split('\n')[1]),
      ['data: b'],
      `${c}: exactly the message after the cursor`,
    );
  }
  // A cursor without the partition of a channel: that channel is reset as malformed.
  const other = spreadChannels(4).find((c) => !channels.includes(c))!;
  const h = await edge.history([other], cursor);
  assert.deepEqual(h.reset, { channels: [other], reason: 'malformed' });
});

test('a killed subscriber connection: the gap is repaired from history per partition, no loss, no duplicate', async (t) => {
  const { publisher, edge, sink, watch, prefix } = await brokers(t);
  const channels = spreadChannels(6);
  await watch(channels);
  let stop = false;
  const sent: string[][] = [];
  const loop = (async () => {
    while (!stop) {
      const [r] = await publisher.publish([{ channels, data: 'x' }]);
      sent.push(r!.ids);
      await new Promise((r) => setTimeout(r, 2));
    }
  })();
  await waitFor(() => sent.length > 50, 10_000, 'publishing');
  for (const node of redis.cluster.nodes) {
    const admin = new Redis({ port: node.port, lazyConnect: true });
    await admin.connect();
    await admin.call('CLIENT', 'KILL', 'TYPE', 'pubsub');
    admin.disconnect();
  }
  await waitFor(() => sent.length > 200, 20_000, 'publishing after the kill');
  stop = true;
  await loop;
  await waitFor(() => sink.messages.length >= sent.length * channels.length, 20_000, `all delivered (${prefix})`);
  assertEveryIdOnce(sink, channels, sent);
  assert.ok(edge.stats.resubscribes >= 3, `every node connection was re-established (${edge.stats.resubscribes})`);
  assert.ok(edge.stats.repairs >= 1, `the gap was repaired from history (${edge.stats.repairs})`);
});
