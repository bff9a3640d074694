// Publishes of one event-loop turn leave the Redis broker in one socket write (a private
// redis-server counts its reads), each still answered with its own id, in call order — and a
// whole batch whose replies come after the command timeout still settles to 200, applied once.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { startRedis, type RedisServer } from '@cyclone-sse/testkit';
import { createLogger, parseId, RedisBroker, type RedisBrokerOptions } from '../src/index.js';

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
  const n = 200;
  const results = await Promise.all(Array.from({ length: n }, (_, i) => broker.publish([{ channels: ['a'], data: `m${i}` }])));
  const reads = (await readsProcessed(admin)) - before - 1; // minus the INFO of this line
  t.diagnostic(`${reads} Redis reads for ${n} publishes`);
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
  // One write of ~200 × 0.4 KB: Redis reads it 16 KiB at a time. Sent one write each, it
  // would take up to 200 reads.
  assert.ok(reads <= 20, `Redis needed ${reads} reads for ${n} publishes`);
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
