// Redis failover under load on real Sentinel groups (scenario in failover-scenario.ts): kill -9 of
// the primary, with and without --redis-wait-replicas, and AMQP input through a failover.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { RecordingSubscriber, startCluster, startRedisSentinelGroup, amqpTestTopology, waitFor } from '@cyclone-sse/testkit';
import { only, report, scenario } from './failover-scenario.js';

test(
  'kill -9 of the primary: no id reused, every message or a reset, no duplicate, edges ready throughout',
  { skip: only !== undefined && only !== 'kill9' },
  async (t) => {
    const o = await scenario(t, 'kill9', 0);
    report('kill -9', o);
  },
);

test(
  'kill -9 with --redis-wait-replicas 1: every acknowledged message delivered once, no reset',
  { skip: only !== undefined && only !== 'wait' },
  async (t) => {
    const o = await scenario(t, 'kill9', 1);
    report('kill -9, wait-replicas 1', o);
    assert.equal(o.resets, 0, 'no reset');
  },
);

test(
  'AMQP during a kill -9 failover: RabbitMQ keeps what could not be published; every message arrives once, in order',
  { skip: only !== undefined && only !== 'amqp' },
  async (t) => {
    const group = await startRedisSentinelGroup({ replicas: 2, sentinels: 3, downAfterMs: 1000 });
    t.after(() => group.close());
    const { suffix, exchange, publisherArgs, ch } = await amqpTestTopology(t, 'failover');
    const c = await startCluster(t, {
      redisArgs: ['--redis-sentinels', group.sentinelsArg],
      edges: 2,
      publisherArgs,
    });
    const subs = c.edges.map((e) => new RecordingSubscriber(`${e.base}/?channels=q`));
    t.after(() => subs.forEach((s) => s.close()));
    await Promise.all(subs.map((s) => s.opened()));
    const sent: string[] = [];
    const send = async (data: string) => {
      ch.publish(exchange, 'q', Buffer.from(data), { persistent: true, messageId: `${suffix}-${data}` });
      await ch.waitForConfirms();
      sent.push(data);
    };
    for (let i = 0; i < 20; i++) await send(`a${i}`);
    await waitFor(() => subs.every((s) => s.received.length === 20), 10_000, 'messages before the failover');
    const old = await group.primary();
    await group.kill9(old.port);
    // Published to RabbitMQ while no primary is reachable, and while Sentinel promotes a replica.
    for (let i = 0; i < 40; i++) {
      await send(`b${i}`);
      await sleep(50);
    }
    await group.waitForNewPrimary(old.port, 30_000);
    for (let i = 0; i < 20; i++) await send(`c${i}`);
    await waitFor(
      () => subs.every((s) => s.received.filter((r) => r.type === 'message').length >= sent.length),
      30_000,
      'every AMQP message after the failover',
      50,
    );
    await sleep(300);
    for (const s of subs) {
      assert.deepEqual(
        s.received.filter((r) => r.type === 'message').map((r) => r.data),
        sent,
        'every message once, in order',
      );
      assert.deepEqual(
        s.received.filter((r) => r.type === 'reset'),
        [],
      );
      assert.equal(s.opens, 1);
    }
  },
);
