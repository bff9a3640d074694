import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { testRedisUrl, waitFor } from '@cyclone-sse/testkit';
import { createLogger, formatId, parseId, RedisBroker, type HistoryOptions, type RedisBrokerOptions } from '../src/index.js';
import { brokerContract, idOf, RecordingSink } from './broker.contract.js';

const REDIS_URL = testRedisUrl();
const admin = new Redis(REDIS_URL, { protocol: 2 });
after(() => admin.quit());

export const quietLogger = createLogger('error');
quietLogger.silent = true;

function uniquePrefix(): string {
  return `t-${process.pid}-${randomBytes(4).toString('hex')}`;
}

async function deleteKeys(prefix: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await admin.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
    if (keys.length > 0) await admin.del(...keys);
    cursor = next;
  } while (cursor !== '0');
}

function makeRedisBroker(options: HistoryOptions & Partial<RedisBrokerOptions>) {
  const prefix = options.prefix ?? uniquePrefix();
  const broker = new RedisBroker({ url: REDIS_URL, logger: quietLogger, ...options, prefix });
  return {
    broker,
    prefix,
    cleanup: async () => {
      await broker.close();
      await deleteKeys(prefix);
    },
  };
}

brokerContract('RedisBroker', async (options) => {
  const { broker, prefix, cleanup } = makeRedisBroker(options);
  return {
    broker,
    cleanup,
    async expireHistory(channel: string) {
      // Real expiry: the stream key disappears after its TTL (no faked clock in Redis).
      await waitFor(async () => (await admin.exists(`${prefix}:h:${channel}`)) === 0, 10_000, `expiry of ${channel}`);
    },
  };
});

const OPTIONS: HistoryOptions = { historySize: 100, historyTtlSeconds: 60, idempotencyTtlSeconds: 60 };

describe('RedisBroker specifics', () => {
  test('layout: sequence, epoch, stream entry <seq>-0, meta hash and TTLs', async (t) => {
    const { broker, prefix, cleanup } = makeRedisBroker({ ...OPTIONS, historyTtlSeconds: 100 });
    t.after(cleanup);
    await broker.start();
    const [result] = await broker.publish([{ channels: ['a'], data: 'x' }]);
    const id = result?.ids[0];
    assert.ok(id, 'publish answered an id');
    const { epoch, seq } = parseId(id)!;
    assert.equal(await admin.get(`${prefix}:seq`), String(seq));
    assert.equal(await admin.get(`${prefix}:epoch`), epoch);
    const entries = await admin.xrange(`${prefix}:h:a`, '-', '+');
    assert.deepEqual(
      entries.map(([entryId, fields]) => [entryId, fields[0], fields[1], fields[4], fields[5]]),
      [[`${seq}-0`, 'f', `id: ${id}\ndata: x\n\n`, 'p', '0']],
    );
    // b: the bytes charged for the stream (frame + 64 bookkeeping bytes per entry)
    const b = String(Buffer.byteLength(`id: ${id}\ndata: x\n\n`) + 64);
    assert.deepEqual(await admin.hgetall(`${prefix}:m:a`), { e: epoch, l: String(seq), r: '0', b });
    assert.equal(await admin.hget(`${prefix}:hbytes`, 'a'), b);
    assert.equal(await admin.get(`${prefix}:htotal`), b);
    assert.ok((await admin.ttl(`${prefix}:h:a`)) > 90);
    assert.ok((await admin.ttl(`${prefix}:m:a`)) > 100 * 20);
  });

  test('trimming keeps the largest removed seq in the meta hash', async (t) => {
    const { broker, prefix, cleanup } = makeRedisBroker({ ...OPTIONS, historySize: 10 });
    t.after(cleanup);
    await broker.start();
    const ids: string[] = [];
    for (let i = 0; i < 300; i++) {
      const results = await broker.publish([{ channels: [i % 2 ? 'a' : 'b'], data: String(i) }]);
      if (i % 2) ids.push(results[0]!.ids[0]!);
    }
    const entries = await admin.xrange(`${prefix}:h:a`, '-', '+');
    assert.ok(entries.length >= 10 && entries.length < 150, `kept ${entries.length}`);
    const firstKept = ids.findIndex((id) => `${parseId(id)!.seq}-0` === entries[0]![0]);
    assert.ok(firstKept > 0);
    assert.equal(await admin.hget(`${prefix}:m:a`, 'r'), String(parseId(ids[firstKept - 1]!)!.seq));
    const complete = await broker.history(['a'], ids[firstKept - 1]!);
    assert.equal(complete.reset, undefined);
    assert.equal(complete.messages.length, ids.length - firstKept);
    const trimmed = await broker.history(['a'], ids[firstKept - 2]!);
    assert.deepEqual(trimmed.reset, { channels: ['a'], reason: 'trimmed' });
  });

  test('a missing sequence key starts a new epoch: old cursors are foreign, the sink is told', async (t) => {
    const sink = new RecordingSink(new Set(['a']));
    const { broker, prefix, cleanup } = makeRedisBroker(OPTIONS);
    t.after(cleanup);
    broker.subscribe(sink);
    await broker.start();
    const [old] = (await broker.publish([{ channels: ['a'], data: 'before' }]))[0]!.ids;
    await waitFor(() => sink.messages.length === 1, 5000, 'first message');
    await deleteKeys(prefix); // what a Redis restart without persistence looks like
    const [fresh] = (await broker.publish([{ channels: ['a'], data: 'after' }]))[0]!.ids;
    assert.notEqual(parseId(fresh!)!.epoch, parseId(old!)!.epoch);
    assert.equal(parseId(fresh!)!.seq, 1);
    const h = await broker.history(['a'], old!);
    assert.deepEqual(h.reset, { channels: ['a'], reason: 'epoch' });
    await waitFor(() => sink.lostCalls.length === 1, 5000, 'sink.lost');
    assert.deepEqual(sink.lostCalls[0]!.channels, ['a']);
    assert.equal(sink.lostCalls[0]!.reason, 'epoch');
    assert.deepEqual(sink.lostCalls[0]!.position, { epoch: parseId(fresh!)!.epoch, seq: 0 });
    const [next] = (await broker.publish([{ channels: ['a'], data: 'live' }]))[0]!.ids;
    await waitFor(() => sink.ids().includes(next!), 5000, 'live message in the new epoch');
    // The new epoch's messages are replayed from its start after the loss signal.
    assert.deepEqual(sink.ids(), [old, fresh, next]);
  });

  test('malformed pub/sub messages are counted and skipped', async (t) => {
    const sink = new RecordingSink(new Set(['a']));
    const { broker, prefix, cleanup } = makeRedisBroker(OPTIONS);
    t.after(cleanup);
    broker.subscribe(sink);
    await broker.start();
    for (const junk of ['', 'garbage', '12', '12 34', 'x 1 id: e-1\n\n', '1 y z']) await admin.publish(`${prefix}:ch:a`, junk);
    const [id] = (await broker.publish([{ channels: ['a'], data: 'ok' }]))[0]!.ids;
    await waitFor(() => sink.messages.length === 1, 5000, 'the good message');
    assert.equal(idOf(sink.messages[0]!.frame), id);
    assert.equal(broker.stats.malformed, 6);
    assert.equal(broker.isReady(), true);
  });

  test('a publisher-only broker needs no subscriber; publishing before start fails fast', async (t) => {
    const { broker, cleanup } = makeRedisBroker({ ...OPTIONS, subscribe: false });
    t.after(cleanup);
    await assert.rejects(broker.publish([{ channels: ['a'], data: 'x' }]), { code: 'BROKER_UNAVAILABLE' });
    await broker.start();
    assert.equal(broker.isReady(), true);
    const [r] = await broker.publish([{ channels: ['a'], data: 'x' }]);
    assert.equal(r!.ids.length, 1);
    assert.equal((await broker.position()).seq, parseId(r!.ids[0]!)!.seq);
  });

  test('an edge and a separate publisher share one sequence', async (t) => {
    const sink = new RecordingSink(new Set(['a']));
    const edge = makeRedisBroker(OPTIONS);
    const publisher = makeRedisBroker({ ...OPTIONS, prefix: edge.prefix, subscribe: false });
    t.after(() => publisher.broker.close());
    t.after(edge.cleanup);
    edge.broker.subscribe(sink);
    await Promise.all([edge.broker.start(), publisher.broker.start()]);
    const start = await edge.broker.position();
    const results = await publisher.broker.publish(Array.from({ length: 100 }, (_, i) => ({ channels: ['a'], data: String(i) })));
    const ids = results.map((r) => r.ids[0]!);
    assert.equal(parseId(ids[0]!)!.seq, start.seq + 1);
    await waitFor(() => sink.messages.length === 100, 5000, '100 live messages');
    assert.deepEqual(sink.ids(), ids);
    assert.equal(formatId(start.epoch, start.seq + 100), ids[99]);
  });
});
