// Live gap repair of the Redis broker against real failures on a private redis-server: a killed
// subscriber connection, Redis kill -9 with and without persistence, the output-buffer limit
// dropping a slow subscriber, and a gap longer than the history.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Redis } from 'ioredis';
import { startRedis, waitFor, type RedisServer } from '@cyclone-sse/testkit';
import { createLogger, parseId, RedisBroker, type RedisBrokerOptions } from '../src/index.js';
import { RecordingSink } from './broker.contract.js';

const logger = createLogger('error');
logger.silent = true;
const HISTORY = { historySize: 20_000, historyTtlSeconds: 600, idempotencyTtlSeconds: 60 };

interface Setup {
  redis: RedisServer;
  admin: Redis;
  sink: RecordingSink;
  edge: RedisBroker;
  publisher: RedisBroker;
}

async function setup(
  t: { after(fn: () => unknown): void },
  opts: { appendonly?: boolean; active: string[]; broker?: Partial<RedisBrokerOptions> },
): Promise<Setup> {
  const redis = await startRedis({ appendonly: opts.appendonly });
  t.after(() => redis.stop());
  const admin = new Redis(redis.url, { protocol: 2, lazyConnect: true });
  await admin.connect();
  t.after(() => admin.disconnect());
  const options = { url: redis.url, prefix: 'gap', logger, ...HISTORY, ...opts.broker };
  const sink = new RecordingSink(new Set(opts.active));
  const edge = new RedisBroker(options);
  edge.subscribe(sink);
  const publisher = new RedisBroker({ ...options, subscribe: false });
  t.after(() => edge.close());
  t.after(() => publisher.close());
  await Promise.all([edge.start(), publisher.start()]);
  return { redis, admin, sink, edge, publisher };
}

async function publish(broker: RedisBroker, channel: string, data: string): Promise<string> {
  const [result] = await broker.publish([{ channels: [channel], data }]);
  return result!.ids[0]!;
}

function idsOn(sink: RecordingSink, channel: string): string[] {
  return sink.messages.filter((m) => m.channel === channel).map((m) => sinkId(m.frame));
}

function sinkId(frame: Buffer): string {
  const text = frame.toString('latin1', 0, 64);
  return text.slice(4, text.indexOf('\n'));
}

function assertIncreasing(sink: RecordingSink): void {
  for (let i = 1; i < sink.messages.length; i++) {
    assert.ok(sink.messages[i]!.seq > sink.messages[i - 1]!.seq, `seq order at ${i}`);
  }
}

test('a killed subscriber connection is repaired from history: every message once, in order', async (t) => {
  const { admin, sink, edge, publisher } = await setup(t, { active: ['a'] });
  const published: string[] = [];
  let stop = false;
  const loop = (async () => {
    for (let i = 0; !stop; i++) {
      // Every third message goes to a channel nobody here listens to: it is not repaired.
      const channel = i % 3 === 2 ? 'z' : 'a';
      const id = await publish(publisher, channel, `m${i}`);
      if (channel === 'a') published.push(id);
      await sleep(2); // the publish rate, not a synchronisation
    }
  })();
  await waitFor(() => sink.messages.length >= 50, 10_000, '50 live messages');
  await admin.call('CLIENT', 'KILL', 'TYPE', 'pubsub');
  await waitFor(() => edge.stats.resubscribes >= 1, 10_000, 'resubscribe');
  const mark = sink.messages.length;
  await waitFor(() => sink.messages.length >= mark + 50, 10_000, '50 live messages after the resubscribe');
  stop = true;
  await loop;
  const sentinel = await publish(publisher, 'a', 'sentinel');
  await waitFor(() => idsOn(sink, 'a').includes(sentinel), 10_000, 'the sentinel');
  assert.deepEqual(idsOn(sink, 'a'), [...published, sentinel]);
  assertIncreasing(sink);
  assert.ok(edge.stats.repairs >= 1, 'a repair was counted');
  assert.ok(edge.stats.repairedMessages > 0, 'messages were read from history');
  assert.deepEqual(sink.lostCalls, []);
});

test('Redis kill -9 and restart with AOF: the broker recovers and nothing is lost', async (t) => {
  const { redis, sink, edge, publisher } = await setup(t, { appendonly: true, active: ['a'] });
  const before: string[] = [];
  for (let i = 0; i < 20; i++) before.push(await publish(publisher, 'a', `before ${i}`));
  await waitFor(() => sink.messages.length === 20, 10_000, '20 messages');
  await redis.kill9();
  await assert.rejects(publish(publisher, 'a', 'while down'), { code: 'BROKER_UNAVAILABLE' });
  const batch = [
    { channels: ['a'], data: 'x' },
    { channels: ['a', 'b'], data: 'y' },
  ];
  await assert.rejects(publisher.publish(batch), { code: 'BROKER_UNAVAILABLE' });
  await assert.rejects(edge.history(['a'], before[0]!), { code: 'BROKER_UNAVAILABLE' });
  await waitFor(() => !edge.isReady(), 10_000, 'edge not ready');
  await redis.restart();
  await waitFor(() => edge.isReady() && publisher.isReady(), 15_000, 'both brokers ready again');
  const after: string[] = [];
  for (let i = 0; i < 20; i++) after.push(await publish(publisher, 'a', `after ${i}`));
  await waitFor(() => sink.messages.length >= 40, 10_000, '40 messages');
  assert.deepEqual(idsOn(sink, 'a'), [...before, ...after]);
  // A restarted primary is a new term (a new replication id): the ids after it are of a new epoch
  // (an AOF may have lost its last writes, whose seqs would otherwise be handed out again), and
  // the old epoch resumes through the lineage: nothing reset, nothing lost.
  assert.notEqual(parseId(after[0]!)!.epoch, parseId(before[0]!)!.epoch);
  assert.deepEqual(sink.lostCalls, []);
  const resumed = await edge.history(['a'], before[9]!);
  assert.equal(resumed.reset, undefined);
  assert.equal(resumed.split, parseId(before[19]!)!.seq);
  assert.deepEqual(
    resumed.messages.map((m) => sinkId(m.frame)),
    [...before.slice(10), ...after],
  );
});

test('Redis kill -9 and restart without persistence: a new epoch, sink.lost, then live again', async (t) => {
  const { redis, sink, edge, publisher } = await setup(t, { active: ['a', 'b'] });
  const before: string[] = [];
  for (let i = 0; i < 10; i++) before.push(await publish(publisher, 'a', `before ${i}`));
  await waitFor(() => sink.messages.length === 10, 10_000, '10 messages');
  await redis.kill9();
  await assert.rejects(publish(publisher, 'a', 'while down'), { code: 'BROKER_UNAVAILABLE' });
  await redis.restart();
  await waitFor(() => sink.lostCalls.length === 1, 15_000, 'sink.lost');
  const [lost] = sink.lostCalls;
  assert.deepEqual([...lost!.channels].sort(), ['a', 'b']);
  assert.equal(lost!.reason, 'epoch');
  assert.notEqual(lost!.position.epoch, parseId(before[0]!)!.epoch);
  await waitFor(() => publisher.isReady() && edge.isReady(), 15_000, 'both brokers ready');
  const after: string[] = [];
  for (let i = 0; i < 10; i++) after.push(await publish(publisher, i % 2 ? 'a' : 'b', `after ${i}`));
  await waitFor(() => sink.messages.length >= 20, 10_000, '20 messages');
  assert.deepEqual(sink.ids(), [...before, ...after]);
  assert.ok(after.every((id) => parseId(id)!.epoch === lost!.position.epoch));
  assert.equal(sink.lostCalls.length, 1);
});

/**
 * Runs a publisher in a child process (this process's event loop is about to be blocked) that
 * waits for `go` on stdin, runs `steps`, writes the ids per channel to a marker file and exits.
 */
async function childPublisher(
  t: { after(fn: () => unknown): void },
  redis: RedisServer,
  historySize: number,
  steps: ({ kill: 'pubsub' } | { channel: string; count: number; bytes: number })[],
): Promise<{ go(): void; marker: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'cyclone-gap-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const marker = join(dir, 'done.json');
  const common = pathToFileURL(fileURLToPath(new URL('../dist/index.js', import.meta.url))).href;
  const code = `
    import { renameSync, writeFileSync } from 'node:fs';
    import { createInterface } from 'node:readline';
    import { Redis } from 'ioredis';
    import { RedisBroker, createLogger } from ${JSON.stringify(common)};
    const env = JSON.parse(process.env.GAP_PLAN);
    const logger = createLogger('error');
    const broker = new RedisBroker({ url: env.url, prefix: 'gap', historySize: env.historySize,
      historyTtlSeconds: 600, idempotencyTtlSeconds: 60, subscribe: false, logger });
    await broker.start();
    const admin = new Redis(env.url, { protocol: 2 });
    process.stdout.write('ready\\n');
    for await (const line of createInterface({ input: process.stdin })) if (line === 'go') break;
    const ids = {};
    for (const step of env.steps) {
      if (step.kill) { await admin.call('CLIENT', 'KILL', 'TYPE', step.kill); continue; }
      const data = 'x'.repeat(step.bytes);
      for (let i = 0; i < step.count; i += 100) {
        const batch = Array.from({ length: Math.min(100, step.count - i) }, () => ({ channels: [step.channel], data }));
        for (const r of await broker.publish(batch)) (ids[step.channel] ??= []).push(r.ids[0]);
      }
    }
    // Written whole, then renamed: the reader polls for the marker and must never see half of it.
    writeFileSync(env.marker + '.tmp', JSON.stringify(ids));
    renameSync(env.marker + '.tmp', env.marker);
    await broker.close();
    admin.disconnect();
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', code], {
    env: { ...process.env, GAP_PLAN: JSON.stringify({ url: redis.url, historySize, steps, marker }) },
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  t.after(() => child.kill());
  const lines = createInterface({ input: child.stdout });
  for await (const line of lines) if (line === 'ready') break;
  return { go: () => child.stdin.write('go\n'), marker };
}

/** Blocks this event loop (an edge busy broadcasting) until the child publisher is done. */
function blockUntilExists(path: string, limitMs: number): Record<string, string[]> {
  const deadline = Date.now() + limitMs;
  while (!existsSync(path) && Date.now() < deadline) {
    // busy: no pub/sub data is read meanwhile
  }
  assert.ok(existsSync(path), 'the child publisher finished');
  return JSON.parse(readFileSync(path, 'utf8')) as Record<string, string[]>;
}

test('a subscriber dropped by the output-buffer limit is repaired from history', async (t) => {
  const { redis, admin, sink, edge } = await setup(t, { active: ['c'] });
  await admin.call('CONFIG', 'SET', 'client-output-buffer-limit', 'pubsub 256kb 64kb 1');
  const child = await childPublisher(t, redis, HISTORY.historySize, [{ channel: 'c', count: 5000, bytes: 1024 }]);
  child.go();
  const ids = blockUntilExists(child.marker, 25_000).c!;
  assert.equal(ids.length, 5000);
  await waitFor(() => sink.messages.length >= ids.length, 20_000, `${ids.length} messages`);
  assert.deepEqual(sink.ids(), ids);
  assert.ok(edge.stats.resubscribes >= 1, 'Redis dropped the slow subscriber');
  assert.ok(edge.stats.repairs >= 1 && edge.stats.repairedMessages > 0, 'the gap was read from history');
  assert.deepEqual(sink.lostCalls, []);
});

test('a gap longer than the history: sink.lost for that channel, the others replayed', async (t) => {
  const { redis, sink, edge, publisher } = await setup(t, { active: ['a', 'b'] });
  const first = await publish(publisher, 'a', 'first');
  await waitFor(() => sink.messages.length === 1, 10_000, 'first message');
  const child = await childPublisher(t, redis, 50, [
    { kill: 'pubsub' },
    { channel: 'a', count: 1000, bytes: 10 },
    { channel: 'b', count: 10, bytes: 10 },
  ]);
  child.go();
  const ids = blockUntilExists(child.marker, 25_000);
  await waitFor(() => sink.lostCalls.length === 1, 10_000, 'sink.lost');
  const top = await edge.position();
  assert.deepEqual(sink.lostCalls, [{ channels: ['a'], reason: 'trimmed', position: top, afterMessages: 11 }]);
  assert.deepEqual(sink.ids(), [first, ...ids.b!]);
  const sentinel = await publish(publisher, 'a', 'sentinel');
  await waitFor(() => sink.ids().includes(sentinel), 10_000, 'the sentinel');
  assert.deepEqual(sink.ids(), [first, ...ids.b!, sentinel]);
  assert.equal(edge.stats.lost, 1);
});

test('a subscription that is silently gone (connection up, nothing received) is found by the probe and repaired', async (t) => {
  const { sink, edge, publisher } = await setup(t, { active: ['a'], broker: { probeIntervalMs: 150 } });
  const first = await publish(publisher, 'a', 'before');
  await waitFor(() => sink.messages.length === 1, 5000, 'first message');
  // What a failover can leave behind: the TCP connection is healthy, the subscription is not.
  const internals = edge as unknown as { sub: Redis; keys: { pattern: string }; probeChannel: string };
  await internals.sub.punsubscribe(internals.keys.pattern);
  await internals.sub.unsubscribe(internals.probeChannel);
  const missed: string[] = [];
  for (let i = 0; i < 10; i++) missed.push(await publish(publisher, 'a', `missed ${i}`));
  await waitFor(() => sink.messages.length === 11, 10_000, 'probe to notice and the repair to deliver');
  assert.deepEqual(idsOn(sink, 'a'), [first, ...missed]);
  assert.ok(edge.stats.probeFailures >= 1, 'probe failure counted');
  const next = await publish(publisher, 'a', 'live again');
  await waitFor(() => sink.messages.length === 12, 5000, 'live delivery after the repair');
  assert.equal(idsOn(sink, 'a').at(-1), next);
});
