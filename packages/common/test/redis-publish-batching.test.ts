// Publishes of one event-loop turn leave the Redis broker as one script call per
// MAX_PUBLISHES_PER_CALL (a private redis-server counts its reads and its EVALSHA calls), each
// still answered with its own id, in call order; a repeated idempotency key inside one call is
// answered the first ids; a multi-input publish stays whole and in place — and a whole batch whose
// replies come after the command timeout still settles to 200, applied once.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { startRedis, type RedisServer } from '@cyclone-sse/testkit';
import { createLogger, parseId, RedisBroker, type RedisBrokerOptions } from '../src/index.js';
import { MAX_PUBLISHES_PER_CALL } from '../src/broker/redis-publish-batch.js';

const logger = createLogger('error');
logger.silent = true;

async function setup(
  t: { after(fn: () => unknown): void },
  options: Partial<RedisBrokerOptions> = {},
): Promise<{ redis: RedisServer; admin: Redis; broker: RedisBroker }> {
  const redis = await startRedis();
  t.after(() => redis.stop());
  const admin = new Redis(redis.url, { protocol: 2, lazyConnect: true });
  await admin.connect();
  t.after(() => admin.disconnect());
  const broker = new RedisBroker({
    url: redis.url,
    prefix: 'batch',
    logger,
    subscribe: false,
    historySize: 1000,
    historyTtlSeconds: 600,
    idempotencyTtlSeconds: 60,
    ...options,
  });
  t.after(() => broker.close());
  await broker.start();
  await broker.publish([{ channels: ['a'], data: 'warm-up' }]); // the script is loaded (EVAL) once
  return { redis, admin, broker };
}

async function readsProcessed(admin: Redis): Promise<number> {
  return Number(/total_reads_processed:(\d+)/.exec(await admin.info('stats'))![1]);
}

/** Script calls Redis has run (EVAL and EVALSHA). */
async function scriptCalls(admin: Redis): Promise<number> {
  const info = await admin.info('commandstats');
  let calls = 0;
  for (const m of info.matchAll(/cmdstat_(?:evalsha|eval):calls=(\d+)/g)) calls += Number(m[1]);
  return calls;
}

/** The frames in the channel's history after the warm-up, as [seq, data] pairs. */
async function historyData(admin: Redis, channel: string): Promise<[number, string][]> {
  const entries = await admin.xrange(`batch:h:${channel}`, '-', '+');
  return entries
    .map(([id, fields]): [number, string] => [Number(id.split('-')[0]), /\ndata: (.*)\n/.exec(fields[1]!)![1]!])
    .filter(([, data]) => data !== 'warm-up');
}

test('200 publishes started in one turn: a handful of Redis reads, each answered its own id in call order', async (t) => {
  const { admin, broker } = await setup(t);
  const before = await readsProcessed(admin);
  const callsBefore = await scriptCalls(admin);
  const n = 200;
  const results = await Promise.all(Array.from({ length: n }, (_, i) => broker.publish([{ channels: ['a'], data: `m${i}` }])));
  const reads = (await readsProcessed(admin)) - before - 2; // minus the INFOs since `before`
  const calls = (await scriptCalls(admin)) - callsBefore;
  t.diagnostic(`${reads} Redis reads and ${calls} script calls for ${n} publishes`);
  assert.equal(calls, Math.ceil(n / MAX_PUBLISHES_PER_CALL), 'one script call per MAX_PUBLISHES_PER_CALL publishes');
  const seqs = results.map((r) => parseId(r[0]!.ids[0]!)!.seq);
  assert.deepEqual(
    seqs,
    seqs.map((_, i) => seqs[0]! + i),
    'consecutive sequence numbers in call order',
  );
  assert.deepEqual(
    await historyData(admin, 'a'),
    seqs.map((seq, i) => [seq, `m${i}`]),
  );
  // Four calls in one write: Redis reads it 16 KiB at a time. Sent one write each, it would
  // take up to 200 reads.
  assert.ok(reads <= 20, `Redis needed ${reads} reads for ${n} publishes`);
});

test('one call: a repeated idempotency key is answered the first ids, a multi-input publish stays whole, fresh ids around them', async (t) => {
  const { admin, broker } = await setup(t);
  const callsBefore = await scriptCalls(admin);
  const [first, again, pair, last, againLater] = await Promise.all([
    broker.publish([{ channels: ['c'], data: 'k1', idempotencyKey: 'key-1' }]),
    broker.publish([{ channels: ['c'], data: 'k1 again', idempotencyKey: 'key-1' }]),
    broker.publish([
      { channels: ['c', 'd'], data: 'pair-0' },
      { channels: ['d'], data: 'pair-1' },
    ]),
    broker.publish([{ channels: ['c'], data: 'last' }]),
    broker.publish([{ channels: ['c'], data: 'k1 third', idempotencyKey: 'key-1' }]),
  ]);
  assert.equal((await scriptCalls(admin)) - callsBefore, 1, 'the five publishes ran in one script call');
  assert.equal(first[0]!.duplicate, false);
  assert.deepEqual(again, [{ ids: first[0]!.ids, duplicate: true }]);
  assert.deepEqual(againLater, [{ ids: first[0]!.ids, duplicate: true }]);
  const seq = (id: string): number => parseId(id)!.seq;
  const s0 = seq(first[0]!.ids[0]!);
  assert.deepEqual(
    [...pair.flatMap((r) => r.ids), ...last[0]!.ids].map(seq),
    [s0 + 1, s0 + 2, s0 + 3, s0 + 4],
    'the pair and the last publish take the next seqs, in call order',
  );
  assert.deepEqual(
    (await historyData(admin, 'c')).map(([, data]) => data),
    ['k1', 'pair-0', 'last'],
  );
  assert.deepEqual(
    (await historyData(admin, 'd')).map(([, data]) => data),
    ['pair-0', 'pair-1'],
  );
});

test('a batch whose replies come after the command timeout (Redis stopped) settles: every publish 200, applied once', async (t) => {
  const commandTimeoutMs = 1000;
  const { redis, admin, broker } = await setup(t, { commandTimeoutMs });
  const n = 20;
  const pending = Array.from({ length: n }, (_, i) => broker.publish([{ channels: ['b'], data: `m${i}` }]));
  await new Promise((resolve) => setImmediate(resolve)); // the batch is written
  process.kill(redis.pid, 'SIGSTOP');
  try {
    // Every script call times out at 1 s, then settlePublish fences; Redis runs the publishes
    // first (one connection, in order), so each fence finds its publish applied.
    await sleep(commandTimeoutMs * 1.4);
  } finally {
    process.kill(redis.pid, 'SIGCONT');
  }
  const results = await Promise.all(pending);
  const ids = results.map((r) => r[0]!.ids[0]!);
  assert.equal(new Set(ids).size, n, 'distinct ids');
  const history = await historyData(admin, 'b');
  assert.deepEqual(
    history.map(([, data]) => data),
    ids.map((_, i) => `m${i}`),
    'each message once, in call order',
  );
  assert.deepEqual(
    ids.map((id) => parseId(id)!.seq),
    history.map(([seq]) => seq),
    'the answered ids are the applied ones',
  );
});
