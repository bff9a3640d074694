// Channel → partition and the partitions' hash tags (Redis Cluster). Pure functions: the values
// here are frozen on purpose — a channel's partition decides where its sequence and history live,
// so it must never change between versions. CLUSTER KEYSLOT of a real cluster is checked in
// redis-cluster-pubsub.test.ts.
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { test } from 'node:test';
import {
  MAX_PARTITIONS,
  SLOT_COUNT,
  crc16,
  hashSlot,
  hashTagOf,
  partitionOf,
  partitionOfSlot,
  partitionSlotRange,
  partitionTags,
} from '../src/broker/partitions.js';

/** Deterministic PRNG (mulberry32), so the "random" names are the same on every run. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const ALPHABET = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789:._-/éü€😀';
function randomName(rand: () => number, min = 1, max = 40): string {
  const len = min + Math.floor(rand() * (max - min + 1));
  const chars = [...ALPHABET];
  let s = '';
  for (let i = 0; i < len; i++) s += chars[Math.floor(rand() * chars.length)]!;
  return s;
}

test('crc16 is CRC16/XMODEM and hashSlot follows the Redis Cluster spec examples', () => {
  assert.equal(crc16(Buffer.from('123456789')), 0x31c3); // the XMODEM check value
  assert.equal(hashSlot('123456789'), 12739);
  assert.equal(hashSlot('foo'), 12182);
  assert.equal(hashSlot('bar'), 5061);
  assert.equal(hashSlot(''), 0);
  // Hash tags, the spec's examples.
  assert.equal(hashSlot('{user1000}.following'), hashSlot('user1000'));
  assert.equal(hashSlot('{user1000}.followers'), hashSlot('user1000'));
  assert.equal(hashSlot('foo{}{bar}'), crc16(Buffer.from('foo{}{bar}')) & 16383); // `{}`: the whole key
  assert.equal(hashSlot('foo{{bar}}zap'), hashSlot('{bar')); // the tag is `{bar`
  assert.equal(hashSlot('foo{bar}{zap}'), hashSlot('bar'));
  assert.equal(hashSlot('a{}b}c'), 2041); // CLUSTER KEYSLOT "a{}b}c" on Redis 7.0
  assert.equal(hashSlot('only{open'), crc16(Buffer.from('only{open')) & 16383);
});

test('hashSlot of a string equals hashSlot of the bytes Redis receives (UTF-8, lone surrogate → U+FFFD)', () => {
  const rand = prng(7);
  for (let i = 0; i < 2000; i++) {
    const name = randomName(rand, 0, 30) + (i % 3 === 0 ? `{${randomName(rand, 0, 5)}}` : '') + (i % 5 === 0 ? '\ud83d' : '');
    assert.equal(hashSlot(name), hashSlot(Buffer.from(name, 'utf8')), JSON.stringify(name));
  }
});

test('hashSlot agrees with cluster-key-slot (ioredis routing) except for its `{}…}` deviation', () => {
  // Resolved from ioredis itself: the exact version that routes our Cluster commands.
  const calculateSlot = createRequire(createRequire(import.meta.url).resolve('ioredis'))('cluster-key-slot') as (k: string) => number;
  const rand = prng(11);
  for (let i = 0; i < 10_000; i++) {
    const name = randomName(rand, 0, 30) + (i % 4 === 0 ? `{${randomName(rand, 1, 6)}}x` : '');
    assert.equal(hashSlot(name), calculateSlot(name), JSON.stringify(name));
  }
  for (const tag of partitionTags(1024)) assert.equal(hashSlot(`cs:{${tag}}:seq`), calculateSlot(`cs:{${tag}}:seq`));
});

test('hashTagOf follows the Redis rules: first `{`, the next `}`, not empty', () => {
  assert.equal(hashTagOf('{user42}.feed'), 'user42');
  assert.equal(hashTagOf('feed.{user42}'), 'user42');
  assert.equal(hashTagOf('a{b}{c}'), 'b');
  assert.equal(hashTagOf('foo{{bar}}'), '{bar');
  assert.equal(hashTagOf('foo{}{bar}'), undefined);
  assert.equal(hashTagOf('no{close'), undefined);
  assert.equal(hashTagOf('close}{'), undefined);
  assert.equal(hashTagOf('plain'), undefined);
  assert.equal(hashTagOf('{é}'), 'é');
});

test('a {tag} pins channels to one partition, for every partition count', () => {
  const rand = prng(3);
  for (const P of [1, 2, 3, 7, 16, 100, 1000, MAX_PARTITIONS]) {
    for (let i = 0; i < 300; i++) {
      const tag = randomName(rand, 1, 8).replace(/[{}]/g, '');
      const a = partitionOf(`{${tag}}.a`, P);
      assert.equal(partitionOf(`x.{${tag}}.b`, P), a);
      assert.equal(partitionOf(`${randomName(rand)}{${tag}}`, P), a);
      assert.equal(a, partitionOfSlot(hashSlot(tag), P));
      assert.ok(a >= 0 && a < P);
    }
  }
});

test('fixed values: partitionOf and partitionTags never change between versions', () => {
  assert.deepEqual(partitionTags(1), ['p0']);
  assert.deepEqual(partitionTags(3), ['p3', 'p2', 'p0']);
  assert.deepEqual(partitionTags(16), [
    'p60', 'p42', 'p11', 'p3', 'p61', 'p43', 'p10', 'p2',
    'p62', 'p40', 'p13', 'p1', 'p63', 'p41', 'p12', 'p0',
  ]); // prettier-ignore
  assert.deepEqual(
    partitionTags(16).map((t) => hashSlot(t)),
    [360, 1864, 2270, 3689, 4425, 5993, 6399, 7752, 8490, 9994, 10396, 11819, 12555, 14123, 14525, 15882],
  );
  const channels = ['news', 'sports', 'user:42', '{user42}.feed', '{user42}.chat', 'a{}b}c', 'é', '😀', 'orders/eu-west-1'];
  assert.deepEqual(
    channels.map((c) => hashSlot(c)),
    [5161, 10183, 15880, 14710, 14710, 2041, 10180, 2959, 6685],
  );
  assert.deepEqual(
    channels.map((c) => partitionOf(c, 16)),
    [5, 9, 15, 14, 14, 1, 9, 2, 6],
  );
  assert.deepEqual(
    channels.map((c) => partitionOf(c, 7)),
    [2, 4, 6, 6, 6, 0, 4, 1, 2],
  );
  assert.deepEqual(
    channels.map((c) => partitionOf(c, 1)),
    [0, 0, 0, 0, 0, 0, 0, 0, 0],
  );
});

test('partition ranges tile the slot space evenly and every tag lies in its own range', () => {
  for (const P of [1, 2, 3, 5, 16, 17, 100, 1000, 4096, MAX_PARTITIONS]) {
    const tags = partitionTags(P);
    assert.equal(tags.length, P);
    assert.equal(new Set(tags).size, P, 'distinct tags');
    let next = 0;
    for (let p = 0; p < P; p++) {
      const { first, last } = partitionSlotRange(p, P);
      assert.equal(first, next);
      const size = last - first + 1;
      assert.ok(size === Math.floor(SLOT_COUNT / P) || size === Math.ceil(SLOT_COUNT / P), `P=${P} p=${p} size ${size}`);
      const slot = hashSlot(tags[p]!);
      assert.ok(first <= slot && slot <= last, `P=${P}: tag ${tags[p]} slot ${slot} outside ${first}..${last}`);
      assert.equal(partitionOfSlot(first, P), p);
      assert.equal(partitionOfSlot(last, P), p);
      assert.ok(/^p\d+$/.test(tags[p]!) && tags[p]!.length <= 7, tags[p]);
      next = last + 1;
    }
    assert.equal(next, SLOT_COUNT);
  }
});

test('P = 16 over 3 shards (the redis-cli split): 5/6/5 partitions per shard; channels spread within ±20 %', (t) => {
  const shards = [
    [0, 5460],
    [5461, 10922],
    [10923, 16383],
  ] as const;
  const shardOf = (slot: number): number => shards.findIndex(([a, b]) => a <= slot && slot <= b);
  const tags = partitionTags(16);
  const perShard = [0, 0, 0];
  const lines: string[] = [];
  tags.forEach((tag, p) => {
    const slot = hashSlot(tag);
    perShard[shardOf(slot)]!++;
    const { first, last } = partitionSlotRange(p, 16);
    lines.push(`p${String(p).padStart(2)} {${tag}} slot ${slot} in ${first}..${last} → shard ${shardOf(slot)}`);
  });
  t.diagnostic(`partitions per shard: ${perShard.join('/')}`);
  for (const line of lines) t.diagnostic(line);
  assert.deepEqual(perShard, [5, 6, 5]);

  const check = (names: string[], what: string): void => {
    const counts = new Array<number>(16).fill(0);
    for (const n of names) counts[partitionOf(n, 16)]!++;
    const mean = names.length / 16;
    t.diagnostic(`${what}: per partition ${counts.join(' ')} (mean ${mean}, min ${Math.min(...counts)}, max ${Math.max(...counts)})`);
    for (const c of counts) assert.ok(Math.abs(c - mean) <= 0.2 * mean, `${what}: ${c} is off the mean ${mean} by more than 20 %`);
  };
  const rand = prng(42);
  check(
    Array.from({ length: 10_000 }, () => randomName(rand)),
    '10 000 random names',
  );
  check(
    Array.from({ length: 10_000 }, (_, i) => `user:${i}`),
    '10 000 sequential names user:<i>',
  );
});

test('bad partition counts are a clear RangeError', () => {
  for (const bad of [0, -1, 1.5, NaN, Infinity, MAX_PARTITIONS + 1]) {
    assert.throws(() => partitionOf('x', bad), { name: 'RangeError', message: /partition count must be an integer from 1 to 16384/ });
    assert.throws(() => partitionTags(bad), RangeError);
  }
  assert.throws(() => partitionSlotRange(16, 16), { name: 'RangeError', message: /partition must be an integer from 0 to 15/ });
});
