// The Redis broker on Redis Sentinel, against real processes (one primary, two replicas, three
// sentinels on loopback): both the publishing and the subscribing broker follow a promotion on
// their own — after kill -9 of the primary, after SIGSTOP of it (the node is silent but its
// sockets stay open), and after a planned SENTINEL FAILOVER (the old primary stays up as a
// replica) — and publishing and delivery work again. Ids across the failover are not asserted
// here: what a promotion does to epochs is the business of the publish script.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { Redis } from 'ioredis';
import { startRedisSentinelGroup, waitFor, type RedisSentinelGroup } from '@cyclone-sse/testkit';
import { createLogger, RedisBroker, type RedisConnectionConfig } from '../src/index.js';
import { RecordingSink } from './broker.contract.js';

const logger = createLogger('error');
logger.silent = true;
const HISTORY = { historySize: 1000, historyTtlSeconds: 600, idempotencyTtlSeconds: 60 };

interface Setup {
  group: RedisSentinelGroup;
  connection: RedisConnectionConfig;
  sink: RecordingSink;
  edge: RedisBroker;
  publisher: RedisBroker;
}

async function setup(t: { after(fn: () => unknown): void; diagnostic(msg: string): void }): Promise<Setup> {
  const group = await startRedisSentinelGroup({ replicas: 2, sentinels: 3, downAfterMs: 1000 });
  const connection: RedisConnectionConfig = { sentinels: group.sentinels, sentinelName: group.name };
  const options = { connection, prefix: `s${randomBytes(3).toString('hex')}`, logger, ...HISTORY, probeIntervalMs: 1000 };
  const sink = new RecordingSink(new Set(['a']));
  const edge = new RedisBroker(options);
  edge.subscribe(sink);
  const publisher = new RedisBroker({ ...options, subscribe: false });
  // The brokers first, so they do not watch their sentinels die.
  t.after(async () => {
    await Promise.all([edge.close(), publisher.close()]);
    await group.close();
  });
  await Promise.all([edge.start(), publisher.start()]);
  return { group, connection, sink, edge, publisher };
}

/** Data of the messages the sink got on `channel`. */
function received(sink: RecordingSink): string[] {
  return sink.messages.map((m) => /\ndata: (.*)\n/.exec(m.frame.toString('utf8'))?.[1] ?? '?');
}

/** Names of the clients connected to a data node (CLIENT LIST). */
async function clientNames(port: number): Promise<string[]> {
  const admin = new Redis({ port, host: '127.0.0.1', protocol: 2, lazyConnect: true, retryStrategy: () => null, commandTimeout: 2000 });
  admin.on('error', () => undefined);
  try {
    await admin.connect();
    const list = (await admin.client('LIST')) as string;
    return [...list.matchAll(/ name=(\S*)/g)].map((m) => m[1]!).filter(Boolean);
  } finally {
    admin.disconnect();
  }
}

/**
 * Publishes `after-<n>` until one is answered 200 and the sink got a message published after the
 * failover; returns how long that took. Each attempt is bounded by the broker's own timeouts.
 */
async function publishUntilDelivered(s: Setup, from: number, timeoutMs: number): Promise<{ publishedMs: number; deliveredMs: number }> {
  let n = 0;
  let publishedMs = -1;
  const answered: string[] = [];
  await waitFor(
    async () => {
      const data = `after-${n++}`;
      try {
        await s.publisher.publish([{ channels: ['a'], data }]);
      } catch {
        return false; // 503 while no primary is reachable
      }
      if (publishedMs < 0) publishedMs = Date.now() - from;
      answered.push(data);
      return true;
    },
    timeoutMs,
    'a publish answered 200 after the failover',
    100,
  );
  await waitFor(() => received(s.sink).some((d) => answered.includes(d)), timeoutMs, 'delivery of a message published after the failover');
  return { publishedMs, deliveredMs: Date.now() - from };
}

async function before(s: Setup): Promise<number> {
  await s.publisher.publish([{ channels: ['a'], data: 'before' }]);
  await waitFor(() => received(s.sink).includes('before'), 5000, 'delivery before the failover');
  await s.group.waitReplicasInSync();
  return (await s.group.primary()).port;
}

/** After the failover: both brokers ready, their connections on the new primary, none left on the old one. */
async function assertFollowed(s: Setup, oldPort: number, newPort: number, oldAlive: boolean): Promise<void> {
  await waitFor(() => s.edge.isReady() && s.publisher.isReady(), 15_000, 'both brokers ready again');
  const names = await clientNames(newPort);
  assert.equal(
    names.filter((n) => n === 'cyclone-sse-command').length,
    2,
    `two command connections on the new primary: ${names.join(',')}`,
  );
  assert.equal(names.filter((n) => n === 'cyclone-sse-subscriber').length, 1, `the subscriber on the new primary: ${names.join(',')}`);
  if (oldAlive)
    await waitFor(
      async () => !(await clientNames(oldPort)).some((n) => n.startsWith('cyclone-sse-')),
      15_000,
      'no broker connection left on the demoted primary',
    );
}

test('Sentinel: kill -9 of the primary — both brokers reconnect to the promoted replica on their own, publish and delivery resume', async (t) => {
  const s = await setup(t);
  const old = await before(s);
  const t0 = Date.now();
  await s.group.kill9(old);
  const promoted = await s.group.waitForNewPrimary(old, 30_000).catch((err: Error) => {
    throw new Error(`${err.message}\n${s.group.logs()}`);
  });
  const promotedMs = Date.now() - t0;
  const { publishedMs, deliveredMs } = await publishUntilDelivered(s, t0, 30_000);
  t.diagnostic(`kill -9: promoted after ${promotedMs} ms, first 200 after ${publishedMs} ms, first delivery after ${deliveredMs} ms`);
  await assertFollowed(s, old, promoted, false);
  assert.ok(received(s.sink).includes('before'));
});

test('Sentinel: SIGSTOP of the primary (silent, sockets open) — the +switch-master announcement moves both brokers to the promoted replica', async (t) => {
  const s = await setup(t);
  const old = await before(s);
  const t0 = Date.now();
  s.group.stop(old);
  t.after(() => s.group.cont(old));
  const promoted = await s.group.waitForNewPrimary(old, 30_000).catch((err: Error) => {
    throw new Error(`${err.message}\n${s.group.logs()}`);
  });
  const promotedMs = Date.now() - t0;
  const { publishedMs, deliveredMs } = await publishUntilDelivered(s, t0, 30_000);
  t.diagnostic(`SIGSTOP: promoted after ${promotedMs} ms, first 200 after ${publishedMs} ms, first delivery after ${deliveredMs} ms`);
  await assertFollowed(s, old, promoted, false);
  // The old primary comes back as a replica; nothing of ours goes back to it.
  s.group.cont(old);
  await waitFor(
    async () => {
      const r = new Redis({
        port: old,
        host: '127.0.0.1',
        protocol: 2,
        lazyConnect: true,
        retryStrategy: () => null,
        commandTimeout: 1000,
      });
      r.on('error', () => undefined);
      try {
        await r.connect();
        return /^role:slave/m.test(await r.info('replication'));
      } finally {
        r.disconnect();
      }
    },
    20_000,
    'the old primary demoted to a replica',
    200,
  );
  assert.ok(!(await clientNames(old)).some((n) => n.startsWith('cyclone-sse-')), 'no broker connection on the demoted primary');
  const { deliveredMs: again } = await publishUntilDelivered(s, Date.now(), 10_000);
  t.diagnostic(`after SIGCONT of the old primary: delivery within ${again} ms`);
});

test('Sentinel: planned SENTINEL FAILOVER — the old primary stays up as a replica, the brokers leave it and keep publishing', async (t) => {
  const s = await setup(t);
  const old = await before(s);
  const t0 = Date.now();
  await s.group.failover();
  const promoted = await s.group.waitForNewPrimary(old, 30_000).catch((err: Error) => {
    throw new Error(`${err.message}\n${s.group.logs()}`);
  });
  const promotedMs = Date.now() - t0;
  const { publishedMs, deliveredMs } = await publishUntilDelivered(s, t0, 30_000);
  t.diagnostic(
    `SENTINEL FAILOVER: promoted after ${promotedMs} ms, first 200 after ${publishedMs} ms, first delivery after ${deliveredMs} ms`,
  );
  await assertFollowed(s, old, promoted, true);
});

test('Sentinel: the broker connects while one sentinel is SIGSTOPped (its silence is bounded) and while another is dead', async (t) => {
  const group = await startRedisSentinelGroup({ replicas: 1, sentinels: 3 });
  const connection: RedisConnectionConfig = { sentinels: group.sentinels, sentinelName: group.name };
  const sink = new RecordingSink(new Set(['a']));
  const broker = new RedisBroker({ connection, prefix: `s${randomBytes(3).toString('hex')}`, logger, ...HISTORY });
  broker.subscribe(sink);
  t.after(async () => {
    await broker.close();
    await group.close();
  });
  group.stop(group.sentinels[0]!.port);
  await group.kill9(group.sentinels[1]!.port);
  await broker.start();
  await broker.publish([{ channels: ['a'], data: 'through the third sentinel' }]);
  await waitFor(() => received(sink).includes('through the third sentinel'), 10_000, 'delivery');
});
