// --redis-wait-replicas on a real Redis Cluster with replicas (3 primaries, 1 replica each): a
// publish is answered 200 only once the replica of each partition's shard has it, and seen by
// subscribers only then; a shard whose replica does not acknowledge answers 503
// REPLICATION_TIMEOUT for its partitions only, and a retry with the same idempotency key is
// answered the same ids and delivered once (docs/delivery.md, I3, per partition).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { waitFor } from '@cyclone-sse/testkit';
import { Redis } from 'ioredis';
import { Registry } from 'prom-client';
import { createLogger, hashSlot, parseId, partitionOf, partitionTags, RedisKeys } from '../src/index.js';
import { clusterBrokers, fileRedisCluster } from './redis-cluster-brokers.js';

const PARTITIONS = 16;
const WAIT_TIMEOUT_MS = 1000;
const logger = createLogger('error');
logger.silent = true;

// A node timeout well above the test's SIGSTOP: a stopped replica is slow, not failed.
const redis = fileRedisCluster({ primaries: 3, replicasPerPrimary: 1, nodeTimeoutMs: 15_000 });
let n = 0;

type Ctx = { after(fn: () => unknown): void };

async function brokers(t: Ctx) {
  const started = await clusterBrokers(t, {
    connection: redis.connection,
    prefix: `cw${process.pid}x${n++}`,
    partitions: PARTITIONS,
    logger,
    publisher: { waitReplicas: 1, waitTimeoutMs: WAIT_TIMEOUT_MS },
  });
  const keysOf = (channel: string) => new RedisKeys(started.prefix, partitionTags(PARTITIONS)[partitionOf(channel, PARTITIONS)]);
  return { ...started, keysOf };
}

interface Shard {
  slots: Array<[number, number]>;
  primary: number;
  replicas: number[];
}

/** The shards, primary and replica ports (CLUSTER SHARDS: CLUSTER SLOTS leaves out a replica of a shard never written to). */
async function shardMap(): Promise<Shard[]> {
  return (await redis.cluster.shards())
    .map((s) => ({
      slots: s.slots,
      primary: s.nodes.find((node) => node.role === 'master')!.port,
      replicas: s.nodes.filter((node) => node.role === 'replica').map((node) => node.port),
    }))
    .sort((a, b) => a.slots[0]![0] - b.slots[0]![0]);
}

/** The shard serving a key. */
function shardOf(map: Shard[], key: string): Shard {
  const slot = hashSlot(key);
  return map.find((s) => s.slots.some(([first, last]) => slot >= first && slot <= last))!;
}

/** `perShard` channels `w0…` in distinct partitions on each shard, grouped by shard (slot order). */
function channelsByShard(map: Shard[], prefix: string, perShard: number): string[][] {
  const out = map.map(() => [] as string[]);
  const partitions = new Set<number>();
  for (let i = 0; out.some((list) => list.length < perShard); i++) {
    const c = `w${i}`;
    const p = partitionOf(c, PARTITIONS);
    if (partitions.has(p)) continue;
    const k = map.indexOf(shardOf(map, new RedisKeys(prefix, partitionTags(PARTITIONS)[p]).seq));
    if (out[k]!.length >= perShard) continue;
    partitions.add(p);
    out[k]!.push(c);
  }
  return out;
}

/** A connection to a replica that may read its slots (READONLY). */
async function replicaReader(t: Ctx, port: number): Promise<Redis> {
  const r = new Redis({ port, lazyConnect: true, protocol: 2 });
  await r.connect();
  t.after(() => r.disconnect());
  await r.call('READONLY');
  return r;
}

function stop(t: Ctx, pid: number): void {
  process.kill(pid, 'SIGSTOP');
  t.after(() => {
    try {
      process.kill(pid, 'SIGCONT'); // never left stopped, even when an assertion failed
    } catch {
      // already gone
    }
  });
}

test('--redis-wait-replicas on a cluster: each 200 comes once the shard replica holds the message; subscribers get every message once', async (t) => {
  const { publisher, sink, watch, keysOf, prefix } = await brokers(t);
  const map = await shardMap();
  const channels = channelsByShard(map, prefix, 2).flat();
  assert.equal(channels.length, 6, 'two partitions on each of the three shards');
  await watch(channels);
  const readers = new Map<number, Redis>();
  for (const shard of map) {
    assert.equal(shard.replicas.length, 1, 'one replica per shard');
    readers.set(shard.primary, await replicaReader(t, shard.replicas[0]!));
  }
  const sent = new Map<string, string[]>(channels.map((c) => [c, []]));
  for (let i = 0; i < 10; i++) {
    const [r] = await publisher.publish([{ channels, data: `m${i}` }]);
    // Answered: the replica of each channel's shard has the history entry already.
    await Promise.all(
      channels.map(async (c, j) => {
        const key = keysOf(c).history(c);
        const seq = parseId(r!.ids[j]!)!.seq;
        const entries = (await readers.get(shardOf(map, key).primary)!.xrange(key, `${seq}-0`, `${seq}-0`)) as unknown[];
        assert.equal(entries.length, 1, `${c} ${r!.ids[j]}: on the replica when the 200 arrives`);
        sent.get(c)!.push(r!.ids[j]!);
      }),
    );
  }
  await waitFor(() => sink.messages.length >= 10 * channels.length, 10_000, 'every message delivered');
  for (const c of channels) assert.deepEqual(sink.idsOn(c), sent.get(c), `${c}: every id once, in order`);
  assert.equal(publisher.stats.waitTimeouts, 0);
  assert.deepEqual(sink.lostCalls, []);
});

test('--redis-wait-replicas on a cluster: a stopped shard replica → 503 REPLICATION_TIMEOUT for its partitions only; the retry with the key is answered the same ids and delivered once', async (t) => {
  const { publisher, edge, sink, watch, keysOf, prefix } = await brokers(t);
  const registry = new Registry();
  publisher.observe(registry, 'publisher');
  const map = await shardMap();
  const [held, other] = channelsByShard(map, prefix, 1).map((list) => list[0]!);
  await watch([held!, other!]);
  // One message on each channel first, with every replica up.
  const [warm] = await publisher.publish([{ channels: [held!, other!], data: 'warm' }]);
  await waitFor(() => sink.messages.length === 2, 10_000, 'the first two messages');

  const replicaPort = shardOf(map, keysOf(held!).seq).replicas[0]!;
  const replica = redis.cluster.nodes.find((node) => node.port === replicaPort)!;
  stop(t, replica.pid);

  const started = Date.now();
  await assert.rejects(publisher.publish([{ channels: [held!], data: 'held', idempotencyKey: 'k1' }]), {
    code: 'REPLICATION_TIMEOUT',
    statusCode: 503,
  });
  const took = Date.now() - started;
  assert.ok(took >= WAIT_TIMEOUT_MS - 50 && took < WAIT_TIMEOUT_MS + 2000, `answered after the wait timeout (${took} ms)`);
  assert.equal(publisher.stats.waitTimeouts, 1);

  // Another shard is not held up: 200, delivered.
  const [fine] = await publisher.publish([{ channels: [other!], data: 'fine' }]);
  await waitFor(() => sink.idsOn(other!).length === 2, 10_000, 'the other shard delivers');

  // A publish over both shards: 503 as a whole (its partition on the stopped shard timed out).
  await assert.rejects(publisher.publish([{ channels: [held!, other!], data: 'split', idempotencyKey: 'k2' }]), {
    code: 'REPLICATION_TIMEOUT',
  });
  assert.equal(publisher.stats.waitTimeouts, 2, 'one per publish');
  assert.match(await registry.metrics(), /^cyclone_sse_publisher_redis_wait_timeouts_total 2$/m);

  // Nothing unacknowledged is readable on the stopped shard: its history stops at the warm message.
  const position = await edge.history([held!], warm!.ids[0]!);
  assert.deepEqual(position.messages, [], 'an unreleased message is not in what subscribers can read');
  assert.equal(position.position.seq, parseId(warm!.ids[0]!)!.seq);
  assert.deepEqual(sink.idsOn(held!), [warm!.ids[0]!], 'no subscriber saw the held messages');

  process.kill(replica.pid, 'SIGCONT');
  const [retry] = await waitFor(
    () => publisher.publish([{ channels: [held!], data: 'held', idempotencyKey: 'k1' }]).catch(() => undefined),
    15_000,
    'the retry',
  );
  assert.equal(retry!.duplicate, true);
  assert.equal(parseId(retry!.ids[0]!)!.seq, parseId(warm!.ids[0]!)!.seq + 1, 'the same id as first given');
  const [retry2] = await publisher.publish([{ channels: [held!, other!], data: 'split', idempotencyKey: 'k2' }]);
  assert.equal(retry2!.duplicate, true);
  assert.equal(parseId(retry2!.ids[0]!)!.seq, parseId(retry!.ids[0]!)!.seq + 1);
  assert.ok(parseId(retry2!.ids[1]!)!.seq > parseId(fine!.ids[0]!)!.seq);

  // A sentinel on each channel: everything before it has arrived.
  const [sentinel] = await publisher.publish([{ channels: [held!, other!], data: 'sentinel' }]);
  await waitFor(
    () => sink.idsOn(held!).includes(sentinel!.ids[0]!) && sink.idsOn(other!).includes(sentinel!.ids[1]!),
    10_000,
    'the sentinels',
  );
  assert.deepEqual(sink.idsOn(held!), [warm!.ids[0]!, retry!.ids[0]!, retry2!.ids[0]!, sentinel!.ids[0]!], `${held}: each once`);
  assert.deepEqual(sink.idsOn(other!), [warm!.ids[1]!, fine!.ids[0]!, retry2!.ids[1]!, sentinel!.ids[1]!], `${other}: each once`);
  assert.deepEqual(sink.lostCalls, []);
});
