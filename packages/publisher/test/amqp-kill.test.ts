import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RecordingSubscriber, spawnNode, amqpTestTopology, startCluster, testRedisUrl, waitFor } from '@cyclone-sse/testkit';

const REDIS = testRedisUrl();

test('publisher process SIGKILLed while consuming AMQP: redeliveries reach subscribers exactly once, in order', async (t) => {
  const { suffix, exchange, publisherArgs: pubArgs, ch } = await amqpTestTopology(t, 'kill');
  const c = await startCluster(t, { redisUrl: REDIS, edges: 1, publishers: 1, publisherArgs: pubArgs });
  const sub = new RecordingSubscriber(`${c.base}/?channels=k`);
  t.after(() => sub.close());
  await sub.opened();

  const N = 3000;
  for (let i = 0; i < N; i++) ch.publish(exchange, 'k', Buffer.from(`m${i}`), { persistent: true, messageId: `msg-${suffix}-${i}` });
  await ch.waitForConfirms();
  // Kill the consuming publisher mid-stream (between Redis writes and acks for whatever is in flight).
  await waitFor(() => sub.received.length >= 300, 20_000, 'consumption under way');
  const victim = c.publishers[0]!;
  victim.kill('SIGKILL');
  await victim.exited;
  const before = sub.received.length;
  assert.ok(before < N, `killed mid-stream (${before} of ${N} delivered)`);
  const replacement = await spawnNode('publisher', ['--redis-url', REDIS, '--redis-prefix', c.prefix, '--log-level', 'info', ...pubArgs]);
  t.after(() => replacement.stop());
  await waitFor(() => sub.received.length >= N, 30_000, 'every message after the restart', 50);
  // A sentinel proves nothing more is coming (no late duplicates).
  ch.publish(exchange, 'k', Buffer.from('sentinel'), { persistent: true, messageId: `msg-${suffix}-sentinel` });
  await ch.waitForConfirms();
  await waitFor(() => sub.has('sentinel'), 10_000, 'sentinel');
  assert.deepEqual(
    sub.received.map((r) => r.data),
    [...Array.from({ length: N }, (_, i) => `m${i}`), 'sentinel'],
  );
});
