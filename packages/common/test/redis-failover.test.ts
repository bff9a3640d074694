// A Redis failover that loses the old primary's last writes, made exact: real redis-servers (a
// primary and its replica), the "primary address" played by a switchable TCP forwarder, the
// replica promoted (REPLICAOF NO ONE) while the old primary still takes — and the edges still
// deliver — six more messages, then the address moved to the promoted replica. Checks the
// invariants of docs/delivery.md: no id names two messages (I1), a subscriber gets every message
// or a reset for exactly the channels that lost one (I2); and, with --redis-wait-replicas, that
// subscribers only ever see what a replica acknowledged (I3).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Redis } from 'ioredis';
import { startRedis, startTcpSwitch, waitFor, type RedisServer } from '@cyclone-sse/testkit';
import { createLogger, parseId, RedisBroker, type RedisBrokerOptions } from '../src/index.js';
import { idOf, RecordingSink } from './broker.contract.js';

const logger = createLogger('error');
logger.silent = true;
const HISTORY = { historySize: 1000, historyTtlSeconds: 600, idempotencyTtlSeconds: 60 };
const CHANNELS = ['a', 'b', 'c'];

async function admin(t: { after(fn: () => unknown): void }, url: string): Promise<Redis> {
  const r = new Redis(url, { protocol: 2, lazyConnect: true });
  await r.connect();
  t.after(() => r.disconnect());
  return r;
}

async function startPair(t: { after(fn: () => unknown): void }): Promise<{ primary: RedisServer; replica: RedisServer }> {
  const primary = await startRedis({ extraArgs: ['--repl-diskless-sync-delay', '0'] });
  t.after(() => primary.stop());
  const replica = await startRedis({ extraArgs: ['--replicaof', '127.0.0.1', String(primary.port)] });
  t.after(() => replica.stop());
  const r = await admin(t, replica.url);
  await waitFor(async () => /master_link_status:up/.test(await r.info('replication')), 15_000, 'replica in sync');
  return { primary, replica };
}

function broker(t: { after(fn: () => unknown): void }, port: number, extra: Partial<RedisBrokerOptions> = {}): RedisBroker {
  const b = new RedisBroker({ url: `redis://127.0.0.1:${port}`, prefix: 'fo', logger, probeIntervalMs: 0, ...HISTORY, ...extra });
  t.after(() => b.close());
  return b;
}

async function publish(b: RedisBroker, channel: string, data: string): Promise<string> {
  const [r] = await b.publish([{ channels: [channel], data }]);
  return r!.ids[0]!;
}

/** Every id of a sink names one payload, and every id arrives once. */
function assertOneMessagePerId(sink: RecordingSink): Map<string, string> {
  const seen = new Map<string, string>();
  for (const m of sink.messages) {
    const id = idOf(m.frame);
    assert.ok(!seen.has(id), `id ${id} delivered twice`);
    seen.set(id, m.frame.toString());
  }
  return seen;
}

test('a failover that lost the last writes: new epoch, no id reused, resets exactly where a message was lost', async (t) => {
  const { primary, replica } = await startPair(t);
  const address = await startTcpSwitch(primary.port);
  t.after(() => address.close());
  // A second address for a lagging edge: it loses its connection before the lost writes.
  const lagAddress = await startTcpSwitch(primary.port);
  t.after(() => lagAddress.close());

  const sink = new RecordingSink(new Set(CHANNELS));
  const edge = broker(t, address.port);
  edge.subscribe(sink);
  const lagSink = new RecordingSink(new Set(CHANNELS));
  const lagging = broker(t, lagAddress.port);
  lagging.subscribe(lagSink);
  const publisher = broker(t, address.port, { subscribe: false });
  await Promise.all([edge.start(), lagging.start(), publisher.start()]);

  const payload = new Map<string, string>();
  const sent: { id: string; channel: string }[] = [];
  const send = async (channel: string, data: string): Promise<string> => {
    const id = await publish(publisher, channel, data);
    payload.set(id, data);
    sent.push({ id, channel });
    return id;
  };
  for (let i = 0; i < 10; i++) await send(CHANNELS[i % 3]!, `kept ${i}`);
  await waitFor(() => sink.messages.length === 10 && lagSink.messages.length === 10, 10_000, 'ten messages on both edges');
  const primaryAdmin = await admin(t, primary.url);
  assert.equal(await primaryAdmin.call('WAIT', 1, 5000), 1, 'the replica has the ten messages');

  // The replica is promoted; the old primary goes on taking writes that it will never replicate.
  lagAddress.switchTo(1); // the lagging edge is cut off (port 1: refused) before those writes
  const replicaAdmin = await admin(t, replica.url);
  await replicaAdmin.call('REPLICAOF', 'NO', 'ONE');
  const lostIds: string[] = [];
  for (const channel of ['a', 'b', 'a', 'b', 'a', 'b']) lostIds.push(await send(channel, `lost ${lostIds.length}`));
  await waitFor(() => sink.messages.length === 16, 10_000, 'the edge delivered the six doomed messages');

  // The primary's address now leads to the promoted replica (as Sentinel tells its clients).
  address.switchTo(replica.port);
  lagAddress.switchTo(replica.port);
  await waitFor(() => edge.isReady() && publisher.isReady() && lagging.isReady(), 15_000, 'reconnected to the new primary');
  const after: string[] = [];
  for (let i = 0; i < 6; i++) {
    after.push(await waitFor(() => send(CHANNELS[i % 3]!, `after ${i}`).catch(() => undefined), 10_000, 'publish on the new primary'));
  }
  // The lagging edge never got the doomed messages: a reset of exactly a and b (c lost nothing),
  // at the top it had reached when it learnt of the loss (from the lineage in its catch-up, or
  // from the reports when they came later); after that top, every message of a and b, and all of c.
  const required = () => {
    const resetAt = new Map<string, number>();
    for (const call of lagSink.lostCalls)
      for (const ch of call.channels) resetAt.set(ch, Math.max(resetAt.get(ch) ?? 0, call.position.seq));
    if (!resetAt.has('a') || !resetAt.has('b')) return undefined;
    return after.filter((id, i) => CHANNELS[i % 3] === 'c' || parseId(id)!.seq > resetAt.get(CHANNELS[i % 3]!)!);
  };
  await waitFor(
    () => sink.messages.length === 22 && required()?.every((id) => lagSink.ids().includes(id)),
    10_000,
    'the messages after the failover',
  ).catch((err: Error) => {
    throw new Error(
      `${err.message}: edge ${sink.ids().join(' ')} | lagging ${lagSink.ids().join(' ')} | lost ${JSON.stringify(lagSink.lostCalls)}`,
    );
  });

  // I1: a new epoch, so the seqs handed out again are other ids; no id names two payloads.
  const oldEpoch = parseId(sent[0]!.id)!.epoch;
  const newEpoch = parseId(after[0]!)!.epoch;
  assert.notEqual(newEpoch, oldEpoch);
  assert.deepEqual(
    after.map((id) => parseId(id)!.seq),
    [11, 12, 13, 14, 15, 16],
    'the new primary continues from what it had',
  );
  for (const s of [sink, lagSink]) {
    for (const [id, frame] of assertOneMessagePerId(s))
      assert.ok(frame.endsWith(`data: ${payload.get(id)}\n\n`), `id ${id} names its payload`);
  }

  // The edge that delivered the doomed messages: everything, in order, and no reset.
  assert.deepEqual(sink.ids(), [...sent.slice(0, 16).map((s) => s.id), ...after]);
  assert.deepEqual(sink.lostCalls, []);

  // The lagging edge: exactly a and b reset, once each, as lost; then what followed the reset.
  assert.deepEqual(lagSink.lostCalls.flatMap((c) => c.channels).sort(), ['a', 'b']);
  assert.ok(lagSink.lostCalls.every((c) => c.reason === 'lost'));
  assert.deepEqual(
    lagSink.ids().slice(0, 10),
    sent.slice(0, 10).map((s) => s.id),
  );
  const lagAfter = lagSink.ids().slice(10);
  assert.deepEqual(
    lagAfter,
    after.filter((id) => lagAfter.includes(id)),
    'in order, nothing but the new epoch',
  );
  for (const id of required()!) assert.ok(lagAfter.includes(id), `${id} after the reset`);

  // Resumes with cursors of the old epoch, on the new primary.
  const fromKept = await edge.history(CHANNELS, sent[9]!.id);
  assert.deepEqual(fromKept.reset, { channels: ['a', 'b'], reason: 'lost' });
  assert.deepEqual(
    fromKept.messages.map((m) => idOf(m.frame)),
    after.filter((_, i) => CHANNELS[i % 3] === 'c'),
  );
  assert.equal(fromKept.split, 10);
  const fromDoomed = await edge.history(CHANNELS, lostIds[5]!); // saw every lost message
  assert.equal(fromDoomed.reset, undefined);
  assert.deepEqual(
    fromDoomed.messages.map((m) => idOf(m.frame)),
    after,
  );
  const midway = await edge.history(CHANNELS, lostIds[3]!); // saw up to the 2nd lost b: lost a at 15 and b at 16 follow
  assert.deepEqual(midway.reset, { channels: ['a', 'b'], reason: 'lost' });
  const midwayA = await edge.history(['a', 'c'], lostIds[4]!); // saw the last lost a
  assert.equal(midwayA.reset, undefined);
  const fresh = await edge.history(CHANNELS, after[2]!); // a cursor of the new epoch: never reset for the old losses
  assert.equal(fresh.reset, undefined);
  assert.deepEqual(
    fresh.messages.map((m) => idOf(m.frame)),
    after.slice(3),
  );
  const lost = await replicaAdmin.hgetall('fo:lost');
  assert.deepEqual(lost, { [`${oldEpoch} a`]: String(parseId(lostIds[4]!)!.seq), [`${oldEpoch} b`]: String(parseId(lostIds[5]!)!.seq) });
});

test('a failover that lost nothing (every write replicated): a new epoch, no reset anywhere, nothing delivered twice', async (t) => {
  const { primary, replica } = await startPair(t);
  const address = await startTcpSwitch(primary.port);
  t.after(() => address.close());
  const sink = new RecordingSink(new Set(CHANNELS));
  const edge = broker(t, address.port);
  edge.subscribe(sink);
  const publisher = broker(t, address.port, { subscribe: false });
  await Promise.all([edge.start(), publisher.start()]);
  const ids: string[] = [];
  for (let i = 0; i < 9; i++) ids.push(await publish(publisher, CHANNELS[i % 3]!, `m${i}`));
  await waitFor(() => sink.messages.length === 9, 10_000, 'nine messages');
  const primaryAdmin = await admin(t, primary.url);
  assert.equal(await primaryAdmin.call('WAIT', 1, 5000), 1);
  await (await admin(t, replica.url)).call('REPLICAOF', 'NO', 'ONE');
  address.switchTo(replica.port);
  await waitFor(() => edge.isReady() && publisher.isReady(), 15_000, 'reconnected');
  for (let i = 0; i < 6; i++) {
    ids.push(await waitFor(() => publish(publisher, CHANNELS[i % 3]!, `n${i}`).catch(() => undefined), 10_000, 'publish'));
  }
  await waitFor(() => sink.messages.length === 15, 10_000, 'fifteen messages');
  assert.deepEqual(sink.ids(), ids);
  assert.deepEqual(sink.lostCalls, []);
  const resumed = await edge.history(CHANNELS, ids[2]!);
  assert.equal(resumed.reset, undefined);
  assert.deepEqual(
    resumed.messages.map((m) => idOf(m.frame)),
    ids.slice(3),
  );
});

test('--redis-wait-replicas: a publish is seen only after a replica has it; a WAIT short of replicas answers 503 REPLICATION_TIMEOUT', async (t) => {
  const { primary, replica } = await startPair(t);
  const sink = new RecordingSink(new Set(['a']));
  const edge = broker(t, primary.port);
  edge.subscribe(sink);
  const publisher = broker(t, primary.port, { subscribe: false, waitReplicas: 1, waitTimeoutMs: 2000 });
  await Promise.all([edge.start(), publisher.start()]);
  const ids: string[] = [];
  for (let i = 0; i < 5; i++) ids.push(await publish(publisher, 'a', `w${i}`));
  await waitFor(() => sink.messages.length === 5, 10_000, 'five released messages');
  assert.deepEqual(sink.ids(), ids);

  // The replica stops acknowledging: the publish is sequenced, not released, and answered 503.
  process.kill(replica.pid, 'SIGSTOP');
  t.after(() => {
    try {
      process.kill(replica.pid, 'SIGCONT'); // never left stopped, even when an assertion failed
    } catch {
      // already gone
    }
  });
  await assert.rejects(publisher.publish([{ channels: ['a'], data: 'held', idempotencyKey: 'k1' }]), {
    code: 'REPLICATION_TIMEOUT',
    statusCode: 503,
  });
  assert.equal(publisher.stats.waitTimeouts, 1);
  const position = await edge.history(['a'], ids[4]!);
  assert.deepEqual(position.messages, [], 'an unreleased message is not in what subscribers can read');
  assert.equal(position.position.seq, parseId(ids[4]!)!.seq);
  process.kill(replica.pid, 'SIGCONT');
  // The retry with the same key is answered the same id and released once the replica has it.
  const [retry] = await waitFor(
    () => publisher.publish([{ channels: ['a'], data: 'held', idempotencyKey: 'k1' }]).catch(() => undefined),
    10_000,
    'the retry',
  );
  assert.equal(retry!.duplicate, true);
  assert.equal(parseId(retry!.ids[0]!)!.seq, parseId(ids[4]!)!.seq + 1);
  await waitFor(() => sink.messages.length === 6, 10_000, 'the held message, released');
  assert.deepEqual(sink.ids(), [...ids, retry!.ids[0]!]);
  assert.deepEqual(sink.lostCalls, []);
});
