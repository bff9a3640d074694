// The Redis broker over TLS, against real redis-server processes that speak only TLS
// (`--tls-port`, `--port 0`, a certificate from a private CA made with openssl): rediss:// with
// the CA delivers; without it the connection is refused with a log line that says what to fix;
// and TLS data nodes behind plain-TCP sentinels (enableTLSForSentinelMode) deliver and follow a
// failover.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import winston from 'winston';
import { makeTlsFiles, startRedisSentinelGroup, startRedisTls, startTcpRelay, waitFor } from '@cyclone-sse/testkit';
import { createLogger, RedisBroker, type RedisConnectionConfig } from '../src/index.js';
import { RecordingSink } from './broker.contract.js';

const quiet = createLogger('error');
quiet.silent = true;
const HISTORY = { historySize: 1000, historyTtlSeconds: 600, idempotencyTtlSeconds: 60 };

function received(sink: RecordingSink): string[] {
  return sink.messages.map((m) => /\ndata: (.*)\n/.exec(m.frame.toString('utf8'))?.[1] ?? '?');
}

/** A logger whose JSON lines land in `lines`. */
function capturingLogger(): { logger: winston.Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(l) as Record<string, unknown>);
      done();
    },
  });
  const logger = winston.createLogger({
    level: 'info',
    format: winston.format.json(),
    transports: [new winston.transports.Stream({ stream })],
  });
  return { logger, lines };
}

/** A subscribing and a publishing broker on `connection` (not started yet). */
function pair(connection: RedisConnectionConfig) {
  const options = { connection, prefix: `tls${randomBytes(3).toString('hex')}`, logger: quiet, ...HISTORY };
  const sink = new RecordingSink(new Set(['a']));
  const edge = new RedisBroker(options);
  edge.subscribe(sink);
  const publisher = new RedisBroker({ ...options, subscribe: false });
  return {
    sink,
    publisher,
    start: () => Promise.all([edge.start(), publisher.start()]),
    close: () => Promise.all([edge.close(), publisher.close()]),
  };
}

test('TLS: a broker on rediss:// trusting the private CA publishes and a subscribing broker delivers', async (t) => {
  const redis = await startRedisTls();
  t.after(() => redis.stop());
  const { sink, publisher, start, close } = pair({ url: redis.url, ca: readFileSync(redis.tls.caFile) });
  t.after(close);
  await start();
  const [r] = await publisher.publish([{ channels: ['a'], data: 'over tls' }]);
  assert.equal(r!.ids.length, 1);
  await waitFor(() => received(sink).includes('over tls'), 5000, 'delivery over TLS');
});

test('TLS: without the CA the connection is refused, logged once with a hint, and the broker stays not ready (no crash)', async (t) => {
  const redis = await startRedisTls();
  t.after(() => redis.stop());
  // A TCP relay in front of the TLS port counts the broker's connection attempts.
  const relay = await startTcpRelay(redis.port);
  t.after(() => relay.close());
  const port = relay.port;
  const { logger, lines } = capturingLogger();
  const broker = new RedisBroker({ url: `rediss://127.0.0.1:${port}`, prefix: 'tls-no-ca', logger, ...HISTORY });
  t.after(() => broker.close());
  const started = broker.start().then(
    () => 'started',
    () => 'rejected',
  );
  const line = await waitFor(() => lines.find((l) => l.event === 'redis_error'), 10_000, 'a redis_error log line');
  assert.equal(line.level, 'warn');
  assert.match(String(line.hint), /--redis-ca-file/);
  assert.match(String((line.err as { message: string }).message), /certificate/i);
  // ioredis keeps retrying, each attempt failing the same way: one line for the state change, none per retry.
  const from = relay.connections;
  await waitFor(() => relay.connections >= from + 3, 15_000, 'three more connection attempts by the broker', 20);
  assert.equal(lines.filter((l) => l.event === 'redis_error').length, 1, 'no log line per retry');
  assert.equal(lines.filter((l) => l.event === 'redis_connection_lost').length, 1);
  assert.equal(broker.isReady(), false);
  await broker.close();
  assert.equal(await started, 'rejected', 'start() ends (rejects) when the broker is closed');
});

test('TLS behind Sentinel: TLS data nodes, plain-TCP sentinels — delivery, then a failover followed over TLS', async (t) => {
  const files = makeTlsFiles();
  t.after(() => files.remove());
  const group = await startRedisSentinelGroup({ replicas: 1, sentinels: 3, tls: files });
  const connection: RedisConnectionConfig = {
    url: 'rediss://127.0.0.1',
    sentinels: group.sentinels,
    sentinelName: group.name,
    ca: readFileSync(files.caFile),
  };
  const { sink, publisher, start, close } = pair(connection);
  t.after(async () => {
    await close();
    await group.close();
  });
  await start();
  await publisher.publish([{ channels: ['a'], data: 'tls via sentinel' }]);
  await waitFor(() => received(sink).includes('tls via sentinel'), 5000, 'delivery before the failover');
  await group.waitReplicasInSync();
  const old = (await group.primary()).port;
  await group.failover();
  await group.waitForNewPrimary(old, 30_000);
  let n = 0;
  const answered: string[] = [];
  await waitFor(
    async () => {
      const data = `after-${n++}`;
      await publisher.publish([{ channels: ['a'], data }]);
      answered.push(data);
      return true;
    },
    30_000,
    'a publish answered after the failover',
    100,
  );
  await waitFor(() => received(sink).some((d) => answered.includes(d)), 15_000, 'delivery after the failover');
});
