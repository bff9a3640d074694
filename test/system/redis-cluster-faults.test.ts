// Faults of a real Redis Cluster under load (6 redis-server nodes, started once for this file):
// a partition's slot migrated to another primary while publishing every 2 ms, and a primary
// killed with SIGKILL and failed over to its replica. Edges and publisher behind nginx; the
// subscribers' exact lists are checked against the publishers' answers.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';
import { hashSlot, partitionOf, partitionTags } from '@cyclone-sse/common';
import {
  httpRequest,
  publishJson,
  RecordingSubscriber,
  startCluster,
  startRedisCluster,
  waitFor,
  type Cluster,
  type RedisCluster,
} from '@cyclone-sse/testkit';

const P = 16;
let redis: RedisCluster;

before(async () => {
  redis = await startRedisCluster({ primaries: 3, replicasPerPrimary: 1, nodeTimeoutMs: 1000 });
});
after(async () => {
  await redis?.close();
});

/** Up to `count` channels `<stem><i>` of partition `k`. */
function channelsIn(k: number, stem: string, count: number): string[] {
  const out: string[] = [];
  for (let i = 0; out.length < count; i++) if (partitionOf(`${stem}${i}`, P) === k) out.push(`${stem}${i}`);
  return out;
}

/** A partition whose tag lives on the primary on `port`. */
async function partitionOn(port: number, skip: number[] = []): Promise<number> {
  for (let k = 0; k < P; k++) if (!skip.includes(k) && (await redis.slotOwner(hashSlot(partitionTags(P)[k]!))) === port) return k;
  throw new Error(`no partition on ${port}`);
}

/**
 * Publishes round-robin over `channels` every 2 ms until stopped, each with an idempotency key
 * retried until answered 200 (a 503 while a shard has no primary is expected): the answered ids
 * per channel.
 */
function publishLoop(c: Cluster, channels: string[]) {
  const answered = new Map<string, { id: string; data: string }[]>(channels.map((x) => [x, []]));
  let stop = false;
  let n = 0;
  let unavailable = 0;
  const done = (async () => {
    while (!stop) {
      const channel = channels[n % channels.length]!;
      const data = `v${n}`;
      const key = randomUUID();
      for (;;) {
        const r = await publishJson(c.base, { channel, data }, { 'Idempotency-Key': key });
        if (r.status === 200) {
          answered.get(channel)!.push({ id: (r.json as { ids: string[] }).ids[0]!, data });
          break;
        }
        assert.equal(r.status, 503, r.text);
        unavailable++;
        await new Promise((r) => setTimeout(r, 20));
      }
      n++;
      await new Promise((r) => setTimeout(r, 2));
    }
  })();
  return {
    answered,
    count: () => n,
    unavailable: () => unavailable,
    stop: async () => {
      stop = true;
      await done;
    },
  };
}

async function metric(port: number | undefined, name: string): Promise<number> {
  const text = (await httpRequest(`http://127.0.0.1:${port}/metrics`)).text;
  const escaped = name.replace(/[{}"()[\]]/g, '\\$&');
  return Number(new RegExp(`^${escaped} (\\d+)`, 'm').exec(text)?.[1] ?? 0);
}

test("slot migration under load: a partition's slot moves to another primary while publishing every 2 ms; nothing lost, nothing doubled, the move repaired", async (t) => {
  const c = await startCluster(t, { redisArgs: ['--redis-cluster-nodes', redis.seeds], publishers: 1 });
  const primaries = await redis.primaryPorts();
  const k = await partitionOn(primaries[0]!);
  const moving = channelsIn(k, 'mig', 3);
  const staying = channelsIn(await partitionOn(primaries[1]!), 'stay', 1);
  const channels = [...moving, ...staying];
  const subs = channels.map((x) => new RecordingSubscriber(`${c.base}/?channels=${x}`));
  const multi = new RecordingSubscriber(`${c.base}/?${channels.map((x) => `channels=${x}`).join('&')}`);
  t.after(() => [...subs, multi].forEach((s) => s.close()));
  await Promise.all([...subs, multi].map((s) => s.opened()));
  const loop = publishLoop(c, channels);
  await waitFor(() => loop.count() > 100, 10_000, 'publishing');
  const moved = await redis.migrateSlot(hashSlot(partitionTags(P)[k]!), primaries[2]!);
  assert.equal(moved.to, primaries[2]);
  assert.ok(moved.keys > 0, 'the partition had keys to move');
  const at = loop.count();
  await waitFor(() => loop.count() > at + 150, 20_000, 'publishing after the move');
  await loop.stop();
  for (const [i, x] of channels.entries()) {
    const want = loop.answered.get(x)!;
    await waitFor(() => subs[i]!.received.length >= want.length, 20_000, `${x} caught up`);
    assert.deepEqual(
      subs[i]!.ids,
      want.map((m) => m.id),
      `${x}: exactly the answered ids, in order, once`,
    );
  }
  const total = channels.reduce((n, x) => n + loop.answered.get(x)!.length, 0);
  await waitFor(() => multi.received.length >= total, 20_000, 'the multi-channel stream caught up');
  assert.equal(multi.received.length, total, 'no duplicate on the multi-partition stream');
  assert.ok(!multi.received.some((r) => r.type === 'reset'));
  // Every edge followed the move (both serve the moving partition), repairing from history
  // whatever was published while its subscriptions moved (how much depends on timing: counted).
  for (const e of c.edges) {
    const moves = await metric(e.metricsPort, 'cyclone_sse_edge_redis_partition_moves_total');
    const repairs = await metric(e.metricsPort, 'cyclone_sse_edge_gap_repairs_total');
    const repaired = await metric(e.metricsPort, 'cyclone_sse_edge_gap_repaired_messages_total');
    assert.ok(moves >= 1, `edge ${e.port} followed the partition to its new node (${moves} moves)`);
    t.diagnostic(`edge ${e.port}: ${moves} partition move(s), ${repairs} gap repair(s), ${repaired} message(s) repaired`);
  }
});

test('shard failover: kill -9 a primary holding partitions in use; its replica is promoted; no id names two messages, no silent gap', async (t) => {
  const c = await startCluster(t, { redisArgs: ['--redis-cluster-nodes', redis.seeds], publishers: 1 });
  const primaries = await redis.primaryPorts();
  const victim = primaries[1]!;
  const k1 = await partitionOn(victim);
  const k2 = await partitionOn(victim, [k1]);
  const elsewhere = await partitionOn(primaries[0]!);
  const channels = [...channelsIn(k1, 'fo', 2), ...channelsIn(k2, 'fp', 1), ...channelsIn(elsewhere, 'fq', 1)];
  const subs = channels.map((x) => new RecordingSubscriber(`${c.base}/?channels=${x}`));
  t.after(() => subs.forEach((s) => s.close()));
  await Promise.all(subs.map((s) => s.opened()));
  const loop = publishLoop(c, channels);
  await waitFor(() => loop.count() > 150, 10_000, 'publishing');
  await redis.kill9(victim);
  const promoted = await redis.waitForFailover(victim, 20_000);
  assert.notEqual(promoted, victim);
  const at = loop.count();
  await waitFor(() => loop.count() > at + 150, 30_000, 'publishing after the failover');
  await loop.stop();
  // I1: an id names one message, across every publish answer and every delivery.
  const named = new Map<string, string>();
  const name = (id: string, data: string): void => {
    const seen = named.get(id);
    assert.ok(seen === undefined || seen === data, `${id} names ${seen} and ${data}`);
    named.set(id, data);
  };
  for (const list of loop.answered.values()) for (const m of list) name(m.id, m.data);
  for (const [i, x] of channels.entries()) {
    const want = loop.answered.get(x)!;
    const sub = subs[i]!;
    const last = want.at(-1)!.data;
    await waitFor(() => sub.has(last), 30_000, `${x}: the last answered message`);
    const messages = sub.received.filter((r) => r.type === 'message');
    for (const r of messages) name(r.id, r.data);
    const got = messages.map((r) => r.data);
    assert.equal(new Set(got).size, got.length, `${x}: no duplicate`);
    // I2: every answered message arrived, or the channel was reset (the failover lost it).
    const missing = want.filter((m) => !got.includes(m.data));
    const resets = sub.received.filter((r) => r.type === 'reset' && (JSON.parse(r.data) as { channels: string[] }).channels.includes(x));
    assert.ok(missing.length === 0 || resets.length > 0, `${x}: ${missing.length} answered messages missing without a reset`);
    // Order: the received messages follow the answered order.
    const order = want.map((m) => m.data).filter((d) => got.includes(d));
    assert.deepEqual(
      got.filter((d) => want.some((m) => m.data === d)),
      order,
      `${x}: in publish order`,
    );
  }
  const epochs = (
    await Promise.all(c.edges.map((e) => metric(e.metricsPort, 'cyclone_sse_edge_redis_epoch_changes_total{cause="promotion"}')))
  ).reduce((a, b) => a + b, 0);
  assert.ok(epochs > 0 || loop.unavailable() > 0, 'the failover was seen');
});
