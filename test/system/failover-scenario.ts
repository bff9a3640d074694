// The scenario of the Redis failover tests (failover.test.ts, failover-planned.test.ts).
// Redis failover under load, with real parts only: a primary, two replicas and three Sentinels
// (redis-server processes on free loopback ports), two edges and a publisher on
// --redis-sentinels, 20 EventSource subscribers on 4 channels across both edges, a publish every
// 2 ms with an idempotency key. The primary is killed (-9), failed over by hand (SENTINEL
// FAILOVER), or partitioned (SIGSTOP until Sentinel promotes a replica, then SIGCONT: a stale
// primary until it is demoted). Per subscriber the test checks the invariants of
// docs/delivery.md: no id names two messages (I1); every acknowledged message of its channel, or
// a reset of that channel, and a reset only where it lacks a message (I2); no duplicate; the
// stream never closed; both edges' /readyz 200 throughout (I4); with --redis-wait-replicas, no
// acknowledged message lost and no reset at all (I3).
import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import { Redis } from 'ioredis';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  httpRequest,
  publishJson,
  RecordingSubscriber,
  scrapeMetric,
  startCluster,
  startRedisSentinelGroup,
  waitFor,
  type RedisSentinelGroup,
} from '@cyclone-sse/testkit';

export const CHANNELS = ['fa', 'fb', 'fc', 'fd'];

export interface Outcome {
  published: number;
  acked: number;
  failed: number;
  delivered: number[];
  resets: number;
  duplicates: number;
  notReady: number;
  outageMs: number;
  /** Seconds each edge was without Redis (cyclone_sse_edge_redis_down_seconds_total). */
  edgeDownSeconds: number[];
}

export type Disruption = 'kill9' | 'failover' | 'planned' | 'partition';

export async function scenario(t: TestContext, disruption: Disruption, waitReplicas: number): Promise<Outcome> {
  const group: RedisSentinelGroup = await startRedisSentinelGroup({ replicas: 2, sentinels: 3, downAfterMs: 1000 });
  t.after(() => group.close());
  const c = await startCluster(t, {
    redisArgs: ['--redis-sentinels', group.sentinelsArg],
    edges: 2,
    publishers: 1,
    edgeArgs: ['--max-connections-per-ip', '0'],
    publisherArgs: waitReplicas > 0 ? ['--redis-wait-replicas', String(waitReplicas), '--redis-wait-timeout', '500'] : [],
  });
  const subs = Array.from({ length: 20 }, (_, i) => {
    const edge = c.edges[i % 2]!;
    return { channel: CHANNELS[i % 4]!, sub: new RecordingSubscriber(`${edge.base}/?channels=${CHANNELS[i % 4]}`) };
  });
  t.after(() => subs.forEach((s) => s.sub.close()));
  await Promise.all(subs.map((s) => s.sub.opened()));

  // /readyz of both edges, every 100 ms, for the whole scenario.
  let notReady = 0;
  let polling = true;
  const poller = (async () => {
    while (polling) {
      for (const e of c.edges) {
        const r = await httpRequest(`${e.metricsBase}/readyz`).catch(() => ({ status: 0 }));
        if (r.status !== 200) notReady++;
      }
      await sleep(100);
    }
  })();

  // The publish loop: one publish every 2 ms, each answer recorded.
  const acked: { channel: string; data: string; id: string }[] = [];
  let published = 0;
  let failed = 0;
  let publishing = true;
  let firstFailure = 0;
  let lastFailure = 0;
  const loop = (async () => {
    for (let i = 0; publishing; i++) {
      const channel = CHANNELS[i % 4]!;
      const data = `m${i}`;
      published++;
      const r = await publishJson(c.publishers[0]!.base, { channel, data, id: `k${i}` }).catch(() => ({ status: 0, json: undefined }));
      if (r.status === 200) acked.push({ channel, data, id: (r.json as { ids: string[] }).ids[0]! });
      else {
        failed++;
        lastFailure = Date.now();
        if (firstFailure === 0) firstFailure = lastFailure;
      }
      await sleep(2);
    }
  })();

  await sleep(1500);
  const old = await group.primary();
  if (disruption === 'kill9') await group.kill9(old.port);
  else if (disruption === 'failover') await group.failover();
  else if (disruption === 'planned') {
    // The lossless procedure: the primary stops taking writes, then Sentinel fails over (writes
    // wait on the paused primary; they are answered 503 once the clients follow the new primary,
    // and refused there if they ever run, as it is a replica by then).
    const admin = new Redis(old.port, old.host, { lazyConnect: true });
    await admin.connect();
    await admin.call('CLIENT', 'PAUSE', '15000', 'WRITE');
    admin.disconnect();
    await group.failover();
  } else group.stop(old.port);
  const promoted = await group.waitForNewPrimary(old.port, 30_000);
  if (disruption === 'partition') group.cont(old.port); // back as a stale primary until Sentinel demotes it
  assert.notEqual(promoted, old.port);
  // Publishing goes on for 3 s after the publisher is answered 200 by the new primary.
  await waitFor(
    () => acked.length > 0 && parseEpoch(acked[acked.length - 1]!.id) !== parseEpoch(acked[0]!.id),
    30_000,
    'a publish in the new epoch',
    50,
  );
  await sleep(3000);
  publishing = false;
  await loop;
  const total = acked.length;
  // Everything acknowledged reaches the subscribers that should have it (or a reset says why not).
  const lackingNow = () =>
    subs.flatMap(({ channel, sub }, i) =>
      acked
        .filter((a) => a.channel === channel)
        .filter((a) => !sub.has(a.data) && !sub.received.some((r) => r.type === 'reset' && resetChannels(r.data).includes(channel)))
        .map((a) => `sub ${i} (edge ${i % 2}, ${channel}) lacks ${a.data} ${a.id}`),
    );
  try {
    await waitFor(() => lackingNow().length === 0, 20_000, 'delivery after the failover', 50);
  } catch (err) {
    console.log(lackingNow().slice(0, 20).join('\n'));
    for (const [i, e] of c.edges.entries())
      console.log(
        `--- edge ${i}\n${e
          .output()
          .split('\n')
          .filter((l) => /warn|error|epoch|lost|rebase/.test(l))
          .slice(-40)
          .join('\n')}`,
      );
    console.log(
      `--- publisher\n${c.publishers[0]!.output()
        .split('\n')
        .filter((l) => /warn|error|epoch|lost/.test(l))
        .slice(-40)
        .join('\n')}`,
    );
    throw err;
  }
  await sleep(500); // late resets or duplicates would show up here
  polling = false;
  await poller;

  // I1 across every subscriber: one payload per id.
  const byId = new Map<string, string>();
  for (const { sub } of subs) {
    for (const r of sub.received) {
      if (r.type !== 'message') continue;
      const seen = byId.get(r.id);
      assert.ok(seen === undefined || seen === r.data, `id ${r.id} names ${seen} and ${r.data}`);
      byId.set(r.id, r.data);
    }
  }
  // What exists per channel: acknowledged, or delivered to anyone.
  const universe = new Map<string, Set<string>>(CHANNELS.map((ch) => [ch, new Set<string>()]));
  for (const a of acked) universe.get(a.channel)!.add(a.data);
  for (const { channel, sub } of subs) for (const r of sub.received) if (r.type === 'message') universe.get(channel)!.add(r.data);

  let resets = 0;
  let duplicates = 0;
  const delivered: number[] = [];
  const order = (data: string) => Number(data.slice(1));
  for (const { channel, sub } of subs) {
    const messages = sub.received.filter((r) => r.type === 'message');
    const datas = messages.map((r) => r.data);
    duplicates += datas.length - new Set(datas).size;
    assert.equal(new Set(datas).size, datas.length, 'no duplicate');
    assert.deepEqual(
      datas,
      [...datas].sort((a, b) => order(a) - order(b)),
      'in publish order',
    );
    const resetHere = sub.received.filter((r) => r.type === 'reset');
    resets += resetHere.length;
    for (const r of resetHere) {
      assert.deepEqual(resetChannels(r.data), [channel], 'a reset names the subscriber channel');
      // A reset only where something is missing for this subscriber (I2, "exactly").
      const missing = [...universe.get(channel)!].filter((d) => !datas.includes(d));
      assert.ok(missing.length > 0, `reset on ${channel} although nothing is missing`);
    }
    // Every acknowledged message, or a reset (I2).
    const lacking = acked.filter((a) => a.channel === channel && !datas.includes(a.data));
    if (lacking.length > 0)
      assert.ok(resetHere.length > 0, `${lacking.length} acknowledged messages missing on ${channel} without a reset`);
    // The stream was never closed by the edge.
    assert.equal(sub.opens, 1, 'one open: the stream was never closed');
    assert.equal(sub.errors, 0);
    delivered.push(datas.length);
  }
  assert.equal(notReady, 0, '/readyz answered 200 throughout on both edges');
  const edgeDownSeconds = await Promise.all(c.edges.map((e) => scrapeMetric(e.metricsBase, 'cyclone_sse_edge_redis_down_seconds_total')));
  // The failover is visible in the metrics: a new primary reached, a new epoch by promotion.
  for (const e of c.edges) {
    assert.ok((await scrapeMetric(e.metricsBase, 'cyclone_sse_edge_redis_primary_changes_total')) >= 1, 'primary change counted');
    assert.ok(
      (await scrapeMetric(e.metricsBase, 'cyclone_sse_edge_redis_epoch_changes_total{cause="promotion"}')) >= 1,
      'epoch change counted',
    );
    assert.equal(await scrapeMetric(e.metricsBase, 'cyclone_sse_edge_redis_epoch_changes_total{cause="data_lost"}'), 0);
  }
  assert.ok(
    (await scrapeMetric(c.publishers[0]!.metricsBase, 'cyclone_sse_publisher_redis_epoch_changes_total{cause="promotion"}')) >= 1,
    'the publisher saw the new epoch',
  );
  return {
    edgeDownSeconds,
    published,
    acked: total,
    failed,
    delivered,
    resets,
    duplicates,
    notReady,
    outageMs: firstFailure === 0 ? 0 : lastFailure - firstFailure,
  };
}

function parseEpoch(id: string): string {
  return id.slice(0, id.lastIndexOf('-'));
}

function resetChannels(data: string): string[] {
  return (JSON.parse(data) as { channels: string[] }).channels;
}

export function report(name: string, o: Outcome): void {
  // The numbers the closing note quotes.
  console.log(
    `# ${name}: published ${o.published}, acknowledged ${o.acked}, failed ${o.failed}, delivered per subscriber ${Math.min(...o.delivered)}–${Math.max(...o.delivered)}, resets ${o.resets}, duplicates ${o.duplicates}, publishes failing for ${o.outageMs} ms, edges without Redis ${o.edgeDownSeconds.map((x) => x.toFixed(1)).join(' s / ')} s (ready throughout)`,
  );
}

/** e.g. FAILOVER_ONLY=partition, to repeat one scenario. */
export const only = process.env.FAILOVER_ONLY;
