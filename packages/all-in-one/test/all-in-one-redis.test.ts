import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { publishJson, RecordingSubscriber, spawnNode, testRedisUrl, waitFor } from '@cyclone-sse/testkit';

const REDIS = testRedisUrl();

test('all-in-one with --redis-url sequences in Redis and resumes across a restart of the process', async (t) => {
  const prefix = `aio${randomBytes(4).toString('hex')}`;
  const args = ['--redis-url', REDIS, '--redis-prefix', prefix, '--log-level', 'info', '--retry', '200'];
  const first = await spawnNode('all-in-one', args);
  const redis = new Redis(REDIS);
  t.after(async () => {
    const keys = await redis.keys(`${prefix}:*`);
    if (keys.length > 0) await redis.del(...keys);
    redis.disconnect();
  });
  const sub = new RecordingSubscriber(`${first.base}/?channels=r`);
  t.after(() => sub.close());
  await sub.opened();
  const ids: string[] = [];
  for (let i = 0; i < 5; i++)
    ids.push(((await publishJson(first.base, { channel: 'r', data: `a${i}` })).json as { ids: string[] }).ids[0]!);
  assert.equal(Number(await redis.get(`${prefix}:seq`)), 5, 'the sequence lives in Redis');
  await waitFor(() => sub.received.length === 5, 5000, 'first messages');
  await first.stop();
  sub.close();

  // A new process on the same Redis: same epoch, history intact, resume from the last id.
  const second = await spawnNode('all-in-one', args);
  t.after(() => second.stop());
  for (let i = 5; i < 8; i++)
    ids.push(((await publishJson(second.base, { channel: 'r', data: `a${i}` })).json as { ids: string[] }).ids[0]!);
  const again = new RecordingSubscriber(`${second.base}/?channels=r&lastEventId=${encodeURIComponent(ids[4]!)}`);
  t.after(() => again.close());
  await waitFor(() => again.received.length === 3, 5000, 'replay after the restart');
  assert.deepEqual([...sub.ids, ...again.ids], ids);
  assert.equal(ids[0]!.split('-')[0], ids[7]!.split('-')[0], 'same epoch');
});
