import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { Redis } from 'ioredis';
import {
  ERROR_CODES,
  HubError,
  ID_LINE_BYTES,
  MemoryBroker,
  RedisBroker,
  createLogger,
  encodeFrameBody,
  type Broker,
  type PublishInput,
} from '@cyclone-sse/common';
import { parseJson } from '../src/parse.js';
import { testRedisUrl } from '@cyclone-sse/testkit';

// Issue 11: publish bodies across channel counts, sizes and batch shapes against the bounds.
// Every accepted request is within them and moves the sequence by exactly one per distinct
// channel; every refused one is a 4xx catalogue error and leaves the sequence where it was.

const REDIS = testRedisUrl();
const LIMITS = { maxChannelsPerPublish: 8, maxPublishFanoutBytes: 64 * 1024 };
const HISTORY = {
  historySize: 50,
  historyTtlSeconds: 60,
  idempotencyTtlSeconds: 60,
  historyMaxBytes: 256 * 1024,
  historyMaxBytesPerChannel: 32 * 1024,
  ...LIMITS,
};
const PARSE = { maxChannelLength: 255, maxBatch: 20, maxJsonDepth: 16, maxChannelsPerPublish: LIMITS.maxChannelsPerPublish };

const channel = fc.constantFrom('a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j');
const data = fc.oneof(
  fc.nat({ max: 40_000 }).map((n) => 'x'.repeat(n)),
  fc.nat({ max: 2_000 }).map((n) => 'l\n'.repeat(n)),
  fc.constantFrom('a\u2028b', 'v\u000bt', 'plain'),
  fc.record({ k: fc.constantFrom('a\u2028b', 'ok') }),
);
const item = fc.record(
  {
    channels: fc.array(channel, { minLength: 0, maxLength: 14 }),
    data,
    event: fc.constantFrom('update', 'reset', 'cyclone-x', 'token-expired', 'e\u2029'),
    id: fc.oneof(fc.string({ minLength: 1, maxLength: 8 }), fc.integer()),
  },
  { requiredKeys: ['channels', 'data'] },
);
const body = fc.oneof(item, fc.array(item, { minLength: 1, maxLength: 6 }));

/**
 * One body per outcome, run through the same property after the random ones, so every bound is
 * reached whatever the seed (the random generators usually reach them all, but not always).
 */
const SURE_CASES: unknown[] = [
  { channel: 'a', data: 'plain' },
  { channels: ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i'], data: 'x' },
  { channels: ['a', 'b', 'c'], data: 'x'.repeat(30_000) },
  { channel: 'a', data: 'x', event: 'reset' },
  { channel: 'a', data: 'v\u000bt' },
  { channel: 'a', data: 'x', id: 12 },
];

/** The fan-out bytes of parsed inputs, as the bound defines them. */
function fanout(inputs: PublishInput[]): number {
  return inputs.reduce(
    (sum, i) => sum + (ID_LINE_BYTES + Buffer.byteLength(encodeFrameBody(i.data, i.event))) * new Set(i.channels).size,
    0,
  );
}

/** Outcomes seen (accepted, or the refusal code): the generators must reach every bound. */
type Outcomes = Map<string, number>;

function assertCoverage(outcomes: Outcomes): void {
  for (const o of ['accepted', 'TOO_MANY_CHANNELS', 'FANOUT_TOO_LARGE', 'RESERVED_EVENT', 'INVALID_DATA', 'INVALID_ID']) {
    assert.ok((outcomes.get(o) ?? 0) > 0, `no ${o} case among ${JSON.stringify([...outcomes])}`);
  }
}

async function check(broker: Broker, doc: unknown, outcomes: Outcomes): Promise<void> {
  const count = (o: string) => outcomes.set(o, (outcomes.get(o) ?? 0) + 1);
  const before = (await broker.position()).seq;
  let inputs: PublishInput[] | undefined;
  try {
    inputs = parseJson(Buffer.from(JSON.stringify(doc)), PARSE).inputs;
    const results = await broker.publish(inputs);
    const distinct = inputs.map((i) => new Set(i.channels).size);
    assert.ok(inputs.every((i) => i.channels.length <= LIMITS.maxChannelsPerPublish));
    assert.ok(fanout(inputs) <= LIMITS.maxPublishFanoutBytes, 'accepted within the fan-out bound');
    const fresh = results.filter((r) => !r.duplicate);
    results.forEach((r, i) => assert.equal(r.ids.length, distinct[i], 'one id per distinct channel'));
    const moved = (await broker.position()).seq - before;
    assert.equal(
      moved,
      fresh.reduce((n, r) => n + r.ids.length, 0),
    );
    count('accepted');
  } catch (err) {
    if (err instanceof assert.AssertionError) throw err;
    assert.ok(err instanceof HubError, `not a HubError: ${String(err)}`);
    assert.ok(err.statusCode >= 400 && err.statusCode < 500, `${err.code} is not a 4xx`);
    assert.equal(ERROR_CODES[err.code], err.statusCode, 'a catalogue code');
    assert.equal((await broker.position()).seq, before, `${err.code}: nothing applied`);
    count(err.code);
  }
}

test('memory broker: every accepted publish is within the bounds, every refused one applies nothing', async () => {
  const broker = new MemoryBroker(HISTORY);
  await broker.start();
  const outcomes: Outcomes = new Map();
  await fc.assert(
    fc.asyncProperty(body, (doc) => check(broker, doc, outcomes)),
    { numRuns: 300 },
  );
  for (const doc of SURE_CASES) await check(broker, doc, outcomes);
  assertCoverage(outcomes);
  await broker.close();
});

test('redis broker: the same property on Redis (own prefix)', async (t) => {
  const prefix = `fz${randomBytes(4).toString('hex')}`;
  const broker = new RedisBroker({ ...HISTORY, url: REDIS, prefix, subscribe: false, logger: createLogger('error') });
  await broker.start();
  t.after(async () => {
    await broker.close();
    const r = new Redis(REDIS);
    const keys: string[] = [];
    for await (const batch of r.scanStream({ match: `${prefix}:*`, count: 1000 })) keys.push(...(batch as string[]));
    if (keys.length > 0) await r.del(...keys);
    r.disconnect();
  });
  const outcomes: Outcomes = new Map();
  await fc.assert(
    fc.asyncProperty(body, (doc) => check(broker, doc, outcomes)),
    { numRuns: 150 },
  );
  for (const doc of SURE_CASES) await check(broker, doc, outcomes);
  assertCoverage(outcomes);
  const r = new Redis(REDIS);
  t.after(() => r.disconnect());
  assert.ok(Number(await r.get(`${prefix}:htotal`)) <= HISTORY.historyMaxBytes, 'total history bytes within the bound');
});
