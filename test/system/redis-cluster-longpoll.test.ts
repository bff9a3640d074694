// Long-poll (the seed's XHR fallback) on a real Redis Cluster, with a stream over three partitions:
// its answers carry multi-partition cursors, a poll resumes from the id of the previous answer's
// last event, pages are capped, and a poll with nothing pending waits for the next live message.
// Every message of the stream's channels arrives exactly once over the successive polls, in order
// within its partition.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { partitionOf } from '@cyclone-sse/common';
import { publishJson, RawHttpClient, startCluster, startRedisCluster, type RedisCluster } from '@cyclone-sse/testkit';

const P = 16;
const XHR = { 'X-Requested-With': 'XMLHttpRequest' };
let redis: RedisCluster;

before(async () => {
  redis = await startRedisCluster({ primaries: 3, replicasPerPrimary: 0 });
});
after(async () => {
  await redis?.close();
});

/** The partition an id (or a cursor's position) belongs to: its epoch starts with it in base 36. */
const partitionOfId = (id: string) => parseInt(id[0]!, 36);

/** One long-poll request; resolves with its complete answer. */
async function poll(port: number, path: string, lastEventId: string, t: { after(fn: () => void): void }) {
  const c = await RawHttpClient.request(port, path, { headers: { ...XHR, 'Last-Event-ID': lastEventId } });
  t.after(() => c.close());
  await c.until((x) => x.head !== '' && Buffer.byteLength(x.body) >= Number(x.header('Content-Length')), 10_000, 'complete answer');
  assert.equal(c.status, 200);
  assert.equal(c.header('Transfer-Encoding'), undefined);
  assert.equal(Number(c.header('Content-Length')), Buffer.byteLength(c.body));
  return c;
}

test('long-poll over three partitions of a Redis Cluster: cursor ids, capped pages, resume from the last id, then a live wait — every message once, in partition order', async (t) => {
  const c = await startCluster(t, {
    redisArgs: ['--redis-cluster-nodes', redis.seeds],
    edges: 1,
    publishers: 1,
    edgeArgs: ['--long-poll-max-events', '3', '--long-poll-timeout', '20'],
  });
  const edge = c.edges[0]!.port;
  // Three channels in three different partitions.
  const channels: string[] = [];
  for (let i = 0; channels.length < 3; i++) {
    const ch = `lp${i}`;
    if (!channels.some((x) => partitionOf(x, P) === partitionOf(ch, P))) channels.push(ch);
  }
  const path = `/?${channels.map((x) => `channels=${x}`).join('&')}`;
  const publish = async (channel: string, data: string) => {
    const r = await publishJson(c.base, { channel, data });
    assert.equal(r.status, 200);
    return (r.json as { ids: string[] }).ids[0]!;
  };

  // The starting cursor: one position per partition (in partition order), at each channel's first message.
  const firsts = await Promise.all(channels.map((ch, i) => publish(ch, `${ch}-0-${i}`)));
  const start = [...firsts].sort((a, b) => partitionOfId(a) - partitionOfId(b)).join('.');

  // Four more messages, two of them on the same channel (their order must hold).
  const [a, b, d] = channels as [string, string, string];
  const pending = [`${a}-1`, `${b}-1`, `${a}-2`, `${d}-1`];
  for (const m of pending) await publish(m.slice(0, m.lastIndexOf('-')), m);

  // First poll: capped at 3 events; every id is a 3-position cursor.
  const p1 = await poll(edge, path, start, t);
  const e1 = p1.events.filter((e) => e.event === undefined);
  assert.equal(e1.length, 3, p1.body);
  for (const e of e1) assert.equal(e.id!.split('.').length, 3, `cursor id: ${e.id}`);

  // Second poll from the last id: the rest, nothing twice.
  const p2 = await poll(edge, path, e1.at(-1)!.id!, t);
  const e2 = p2.events.filter((e) => e.event === undefined);
  const got = [...e1, ...e2].map((e) => e.data);
  assert.deepEqual([...got].sort(), [...pending].sort(), `each pending message once: ${JSON.stringify(got)}`);
  assert.ok(got.indexOf(`${a}-1`) < got.indexOf(`${a}-2`), `order within a partition: ${JSON.stringify(got)}`);
  assert.equal(p1.events.concat(p2.events).filter((e) => e.event === 'reset').length, 0, 'no reset: every position was valid');

  // Third poll from the newest id: nothing pending, it waits for the next live message (or, if the
  // publish wins the race with the poll's registration, finds it in history: the same answer).
  const last = e2.at(-1)!.id!;
  const waiting = poll(edge, path, last, t);
  const liveId = await publish(b, `${b}-2`);
  const p3 = await waiting;
  assert.deepEqual(
    p3.events.map((e) => e.data),
    [`${b}-2`],
  );
  const cursor = p3.events[0]!.id!.split('.');
  assert.equal(cursor.length, 3);
  // The live message's own partition is at the id the publisher answered.
  assert.ok(cursor.includes(liveId), `${p3.events[0]!.id} holds ${liveId}`);
});
