// The cluster scenarios of cluster.test.ts on a real Redis Cluster (6 redis-server nodes: 3
// primaries, 3 replicas, started once for this file), with channels spread over every shard:
// 2 edges + 2 publishers behind nginx, HTTP + AMQP, 200 subscribers; an edge SIGKILLed and its
// clients resuming on the other edge with multi-partition cursors; subscriber connections killed
// under a 2 ms publish loop; and an edge's Redis ingress following its own subscribers.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Redis } from 'ioredis';
import { hashSlot, partitionOf, partitionTags } from '@cyclone-sse/common';
import {
  amqpTestTopology,
  httpRequest,
  openFanOutSubscribers,
  publishFanOut,
  publishJson,
  RecordingSubscriber,
  startCluster,
  startRedisCluster,
  waitFor,
  type RedisCluster,
  type Received,
} from '@cyclone-sse/testkit';

const P = 16;
let redis: RedisCluster;
let shardOf: (channel: string) => number;

before(async () => {
  redis = await startRedisCluster({ primaries: 3, replicasPerPrimary: 1, nodeTimeoutMs: 1000 });
  const map = await redis.slotMap();
  // A channel's shard: the one owning its partition's tag (where its keys and messages live).
  shardOf = (channel) => {
    const slot = hashSlot(partitionTags(P)[partitionOf(channel, P)]!);
    return map.findIndex((r) => slot >= r.first && slot <= r.last);
  };
});
after(async () => {
  await redis?.close();
});

function clusterArgs(): string[] {
  return ['--redis-cluster-nodes', redis.seeds];
}

/** `count` channels named `<stem><i>`, each in a partition of its own, cycling over the 3 shards. */
function channelsOverShards(stem: string, count: number): string[] {
  const out: string[] = [];
  const partitions = new Set<number>();
  for (let i = 0; out.length < count && i < 100_000; i++) {
    const c = `${stem}${i}`;
    const k = partitionOf(c, P);
    if (partitions.has(k) || shardOf(c) !== out.length % 3) continue;
    partitions.add(k);
    out.push(c);
  }
  assert.equal(out.length, count);
  return out;
}

/** Per channel, the data a subscriber received on it, in order. */
function perChannel(received: Received[], channelOfData: Map<string, string>): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const r of received) {
    if (r.type !== 'message') continue;
    const c = channelOfData.get(r.data)!;
    out.set(c, [...(out.get(c) ?? []), r.data]);
  }
  return out;
}

test('on a Redis Cluster: 2 edges + 2 publishers behind nginx, HTTP + AMQP, 200 subscribers over channels on every shard get every message of their channels once, in one order per channel', async (t) => {
  const { exchange, publisherArgs, ch } = await amqpTestTopology(t, 'rc');
  const c = await startCluster(t, { redisArgs: clusterArgs(), publishers: 2, publisherArgs });
  const channels = channelsOverShards('c', 6);
  const subs = await openFanOutSubscribers(t, c.base, 200, (i) => [channels[i % 6]!, channels[(i + 1) % 6]!]);
  const { messages, expected } = await publishFanOut(c.base, { exchange, ch }, channels, 1200, subs);
  const channelOfData = new Map(messages.map((m) => [m.data, m.channel]));
  const reference = new Map<string, string[]>();
  for (const { sub, channels: mine } of subs) {
    assert.ok(!sub.received.some((r) => r.type === 'reset'), 'no reset');
    const got = perChannel(sub.received, channelOfData);
    for (const x of mine) {
      const list = got.get(x) ?? [];
      assert.equal(list.length, expected.get(x)!.size, `${x}: no duplicate, nothing missing`);
      assert.deepEqual(new Set(list), expected.get(x)!, `${x}: exactly its messages`);
      if (!reference.has(x)) reference.set(x, list);
      else assert.deepEqual(list, reference.get(x), `${x}: the same order on every edge`);
    }
    // A stream over two partitions carries a two-position cursor.
    assert.equal(sub.received.at(-1)!.id.split('.').length, 2, 'the id is a cursor over both partitions');
  }
});

test('on a Redis Cluster: an edge SIGKILLed mid-stream; clients over 3 partitions on 3 shards resume on the other edge with their multi-partition cursor: exactly the missed messages, in order per channel', async (t) => {
  const c = await startCluster(t, { redisArgs: clusterArgs(), publishers: 1 });
  const channels = channelsOverShards('k', 3);
  const subs = Array.from({ length: 40 }, () => new RecordingSubscriber(`${c.base}/?${channels.map((x) => `channels=${x}`).join('&')}`));
  t.after(() => subs.forEach((s) => s.close()));
  await Promise.all(subs.map((s) => s.opened()));
  const onFirst = ((await httpRequest(`${c.edges[0]!.base}/stats`)).json as [string, number][]).find(([x]) => x === channels[0])?.[1] ?? 0;
  assert.ok(onFirst > 0, 'the edge to kill holds subscribers');
  const published = new Map<string, string[]>(channels.map((x) => [x, []]));
  const channelOfData = new Map<string, string>();
  for (let i = 0; i < 300; i++) {
    const channel = channels[i % 3]!;
    const r = await publishJson(c.base, { channel, data: `d${i}` });
    assert.equal(r.status, 200, r.text);
    published.get(channel)!.push(`d${i}`);
    channelOfData.set(`d${i}`, channel);
    if (i === 120) c.edges[0]!.kill('SIGKILL');
  }
  await waitFor(() => subs.every((s) => s.received.length >= 300), 30_000, 'all subscribers to catch up', 50);
  for (const s of subs) {
    assert.ok(!s.received.some((r) => r.type === 'reset'), 'no reset');
    assert.equal(s.received.length, 300, 'no duplicate');
    const got = perChannel(s.received, channelOfData);
    for (const x of channels) assert.deepEqual(got.get(x), published.get(x), `${x}: exactly the published list, in order`);
    assert.equal(s.received.at(-1)!.id.split('.').length, 3, 'a cursor over 3 partitions');
  }
  assert.ok(
    subs.some((s) => s.opens > 1),
    'some clients reconnected',
  );
});

test('on a Redis Cluster: every subscriber connection killed (CLIENT KILL TYPE pubsub on every node) under a 2 ms publish loop: nothing lost, nothing doubled', async (t) => {
  const c = await startCluster(t, { redisArgs: clusterArgs(), publishers: 1 });
  const channels = channelsOverShards('q', 3);
  const subs = channels.map((x) => new RecordingSubscriber(`${c.base}/?channels=${x}`));
  t.after(() => subs.forEach((s) => s.close()));
  await Promise.all(subs.map((s) => s.opened()));
  const published = new Map<string, string[]>(channels.map((x) => [x, []]));
  let stop = false;
  let n = 0;
  const loop = (async () => {
    while (!stop) {
      const channel = channels[n % 3]!;
      const r = await publishJson(c.base, { channel, data: `p${n}` });
      assert.equal(r.status, 200, r.text);
      published.get(channel)!.push((r.json as { ids: string[] }).ids[0]!);
      n++;
      await new Promise((r) => setTimeout(r, 2));
    }
  })();
  await waitFor(() => n > 100, 10_000, 'publishing');
  for (const node of redis.nodes) {
    const admin = new Redis({ port: node.port, lazyConnect: true });
    await admin.connect();
    await admin.call('CLIENT', 'KILL', 'TYPE', 'pubsub');
    admin.disconnect();
  }
  await waitFor(() => n > 400, 20_000, 'publishing after the kill');
  stop = true;
  await loop;
  for (const [i, x] of channels.entries()) {
    await waitFor(() => subs[i]!.received.length >= published.get(x)!.length, 20_000, `${x} caught up`);
    assert.deepEqual(subs[i]!.ids, published.get(x), `${x}: exactly the published ids, in order`);
  }
  const repairs = await Promise.all(
    c.edges.map(async (e) => {
      const text = (await httpRequest(`http://127.0.0.1:${e.metricsPort}/metrics`)).text;
      return Number(/^cyclone_sse_edge_gap_repairs_total (\d+)/m.exec(text)?.[1] ?? 0);
    }),
  );
  assert.ok(
    repairs.some((r) => r > 0),
    `the gaps were repaired from history (${repairs.join(', ')})`,
  );
});

test('on a Redis Cluster: ingress follows subscribers — an edge serving 1 of 100 busy channels receives <= 2 % of what an edge serving all of them receives', async (t) => {
  const c = await startCluster(t, { redisArgs: clusterArgs(), publishers: 1 });
  const channels = Array.from({ length: 100 }, (_, i) => `busy${i}`);
  const edgeA = c.edges[0]!;
  const edgeB = c.edges[1]!;
  const a = new RecordingSubscriber(`${edgeA.base}/?channels=${channels[0]}`);
  const bs = Array.from(
    { length: 10 },
    (_, i) =>
      new RecordingSubscriber(
        `${edgeB.base}/?${channels
          .slice(i * 10, i * 10 + 10)
          .map((x) => `channels=${x}`)
          .join('&')}`,
      ),
  );
  t.after(() => [a, ...bs].forEach((s) => s.close()));
  await Promise.all([a, ...bs].map((s) => s.opened()));
  const received = async (e: typeof edgeA): Promise<number> => {
    const text = (await httpRequest(`http://127.0.0.1:${e.metricsPort}/metrics`)).text;
    return Number(/^cyclone_sse_edge_messages_received_total (\d+)/m.exec(text)?.[1] ?? NaN);
  };
  const before = [await received(edgeA), await received(edgeB)];
  for (let i = 0; i < 10_000; i += 50) {
    await Promise.all(
      Array.from({ length: 50 }, async (_, j) => {
        const r = await publishJson(`http://127.0.0.1:${c.publishers[0]!.port}`, { channel: channels[(i + j) % 100]!, data: `x${i + j}` });
        assert.equal(r.status, 200, r.text);
      }),
    );
  }
  // Sentinel: the last message on A's channel, after everything else, reaches A.
  const r = await publishJson(`http://127.0.0.1:${c.publishers[0]!.port}`, { channel: channels[0]!, data: 'sentinel' });
  assert.equal(r.status, 200);
  await waitFor(() => a.has('sentinel'), 20_000, 'the sentinel on edge A');
  await waitFor(() => bs.reduce((n, s) => n + s.received.length, 0) >= 10_001, 30_000, 'edge B delivered everything');
  const gotA = (await received(edgeA)) - before[0]!;
  const gotB = (await received(edgeB)) - before[1]!;
  assert.equal(a.received.length, 101, 'A delivered its channel: 100 messages and the sentinel');
  assert.ok(gotB >= 10_001, `B received every message (${gotB})`);
  assert.ok(gotA <= 0.02 * gotB, `A received ${gotA}, B ${gotB}: A <= 2 % of B`);
});
