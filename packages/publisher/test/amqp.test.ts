import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test, type TestContext } from 'node:test';
import { connect, type ConfirmChannel, type GetMessage, type Options } from 'amqplib';
import {
  MemoryBroker,
  RedisBroker,
  Registry,
  createLogger,
  formatId,
  type Broker,
  type BrokerMessage,
  type PublishInput,
} from '@cyclone-sse/common';
import {
  closeRabbitConnections,
  createRabbitVhost,
  ensureRabbit,
  parseSse,
  startRedis,
  waitFor,
  type RabbitVhost,
} from '@cyclone-sse/testkit';
import { AmqpConsumer, type AmqpConsumerOptions } from '../src/amqp/consumer.js';
import { createPublisherMetrics } from '../src/metrics.js';
import { PublishService } from '../src/publish-service.js';

const logger = createLogger(process.env.TEST_LOG_LEVEL ?? 'error');
const TEST = { timeout: 30_000 };

interface Received {
  channel: string;
  data: string;
  event?: string;
}

function decode(channel: string, frame: Buffer): Received {
  const [ev] = parseSse(frame.toString('utf8')).events;
  assert.ok(ev, `unparsable frame ${JSON.stringify(frame.toString())}`);
  return ev.event === undefined ? { channel, data: ev.data } : { channel, data: ev.data, event: ev.event };
}

/** A memory broker whose sink records every live message, in order. */
function recordingBroker(): { broker: MemoryBroker; received: Received[]; seqs: number[] } {
  const broker = new MemoryBroker({ historySize: 1000, historyTtlSeconds: 3600, idempotencyTtlSeconds: 300 });
  const received: Received[] = [];
  const seqs: number[] = [];
  broker.subscribe({
    message: (msg: BrokerMessage) => {
      seqs.push(msg.seq);
      received.push(decode(msg.channel, msg.frame));
    },
    activeChannels: () => [],
    lost: () => assert.fail('a memory broker never loses messages'),
  });
  return { broker, received, seqs };
}

/** Cleanups run last-registered first, in one after hook. */
function cleanups(t: TestContext): (fn: () => unknown) => void {
  const fns: (() => unknown)[] = [];
  t.after(async () => {
    for (const fn of fns.reverse()) await fn();
  });
  return (fn) => fns.push(fn);
}

async function vhostFor(defer: ReturnType<typeof cleanups>): Promise<RabbitVhost> {
  await ensureRabbit();
  const vhost = await createRabbitVhost('amqp-test');
  defer(() => vhost.delete());
  return vhost;
}

/** A producer on its own connection, publishing with confirms (the message is in the queue when it returns). */
async function producer(url: string, defer: ReturnType<typeof cleanups>) {
  const conn = await connect(url);
  conn.on('error', () => {});
  const ch: ConfirmChannel = await conn.createConfirmChannel();
  ch.on('error', () => {});
  defer(() => conn.close().catch(() => {}));
  return {
    ch,
    async publish(exchange: string, key: string, body: string | Buffer, options: Options.Publish = {}): Promise<void> {
      ch.publish(exchange, key, Buffer.isBuffer(body) ? body : Buffer.from(body), { persistent: true, ...options });
      await ch.waitForConfirms();
    },
  };
}

interface Rig {
  consumer: AmqpConsumer;
  amqpRegistry: Registry;
  serviceRegistry: Registry;
  options: AmqpConsumerOptions;
}

function consumerOptions(url: string, overrides: Partial<AmqpConsumerOptions> = {}): AmqpConsumerOptions {
  return {
    url,
    exchange: 'cyclone-sse',
    exchangeType: 'topic',
    queue: 'cyclone-sse.publish',
    prefetch: 100,
    deadLetterExchange: 'cyclone-sse.dead-letter',
    maxChannelLength: 255,
    maxBody: 1_048_576,
    retryInitialMs: 50,
    retryMaxMs: 500,
    connectionName: `amqp-test-${process.pid}-${randomBytes(4).toString('hex')}`,
    ...overrides,
  };
}

async function startConsumer(
  defer: ReturnType<typeof cleanups>,
  broker: Broker,
  options: AmqpConsumerOptions,
  channels?: () => Promise<Iterable<string>>,
  service?: { service: PublishService; registry: Registry },
): Promise<Rig> {
  const serviceRegistry = service?.registry ?? new Registry();
  const svc = service?.service ?? new PublishService(broker, createPublisherMetrics(serviceRegistry), logger);
  const amqpRegistry = new Registry();
  const consumer = new AmqpConsumer(options, svc, amqpRegistry, logger, channels);
  defer(() => consumer.stop());
  await consumer.start();
  await waitFor(() => consumer.isReady(), 10_000, 'amqp consumer ready');
  return { consumer, amqpRegistry, serviceRegistry, options };
}

async function metric(registry: Registry, name: string, labels: Record<string, string> = {}): Promise<number> {
  const m = registry.getSingleMetric(name);
  assert.ok(m, `metric ${name} is registered`);
  const { values } = await m.get();
  const hit = values.find((v) => Object.entries(labels).every(([k, want]) => String(v.labels[k]) === want));
  return hit?.value ?? 0;
}

async function drainQueue(ch: ConfirmChannel, queue: string, count: number): Promise<GetMessage[]> {
  const got: GetMessage[] = [];
  await waitFor(
    async () => {
      const msg = await ch.get(queue, { noAck: true });
      if (msg) got.push(msg);
      return got.length >= count;
    },
    10_000,
    `${count} messages in ${queue}`,
  );
  return got;
}

test('topic exchange: 200 messages arrive in order with exact data and event, each acked once', TEST, async (t) => {
  const defer = cleanups(t);
  const vhost = await vhostFor(defer);
  const { broker, received, seqs } = recordingBroker();
  await broker.start();
  defer(() => broker.close());
  const options = consumerOptions(vhost.url, { prefetch: 50 });

  const serviceRegistry = new Registry();
  const service = new PublishService(broker, createPublisherMetrics(serviceRegistry), logger);
  const amqpRegistry = new Registry();
  const consumer = new AmqpConsumer(options, service, amqpRegistry, logger);
  defer(() => consumer.stop());
  const text = await amqpRegistry.metrics();
  for (const name of ['acks_total', 'redeliveries_total', 'reconnects_total', 'connected', 'bindings']) {
    assert.match(text, new RegExp(`^cyclone_sse_publisher_amqp_${name} 0$`, 'm'), name);
  }
  assert.match(text, /^cyclone_sse_publisher_amqp_dead_letters_total\{reason="INVALID_CHANNEL"\} 0$/m);
  await consumer.start();
  await waitFor(() => consumer.isReady(), 10_000, 'amqp consumer ready');

  const pub = await producer(vhost.url, defer);
  const expected: Received[] = [];
  const channels = ['news', 'sport.results', 'room/42', 'ü-ch'];
  for (let i = 0; i < 200; i++) {
    const channel = channels[i % channels.length]!;
    const data = i % 7 === 0 ? `line one ${i}\nline two` : JSON.stringify(['comment', String(i)]);
    const props: Options.Publish = {};
    if (i % 3 === 0) props.type = `ev-${i}`;
    if (i % 5 === 0) props.messageId = `msg-${i}`;
    expected.push(props.type ? { channel, data, event: props.type } : { channel, data });
    pub.ch.publish('cyclone-sse', channel, Buffer.from(data), { persistent: true, ...props });
  }
  await pub.ch.waitForConfirms();

  await waitFor(() => received.length >= 200, 20_000, '200 messages in the broker');
  assert.deepEqual(received, expected);
  assert.ok(
    seqs.every((s, i) => i === 0 || s > seqs[i - 1]!),
    'sequence increases',
  );
  await waitFor(async () => (await metric(amqpRegistry, 'cyclone_sse_publisher_amqp_acks_total')) === 200, 5000, '200 acks');
  await waitFor(async () => (await pub.ch.checkQueue(options.queue)).messageCount === 0, 5000, 'queue empty');
  assert.equal(await metric(amqpRegistry, 'cyclone_sse_publisher_amqp_redeliveries_total'), 0);
  assert.equal(await metric(amqpRegistry, 'cyclone_sse_publisher_amqp_connected'), 1);
  assert.equal(await metric(amqpRegistry, 'cyclone_sse_publisher_amqp_bindings'), 1);
  assert.equal(await metric(serviceRegistry, 'cyclone_sse_publisher_publishes_total', { source: 'amqp', outcome: 'ok' }), 200);
  // Stopping leaves a queue that a later consumer (or a standby replica) continues from.
  await consumer.stop();
  assert.equal(consumer.isReady(), false);
  assert.equal(await metric(amqpRegistry, 'cyclone_sse_publisher_amqp_connected'), 0);
});

test('seed producer: non-durable direct exchange, per-channel bindings follow the subscribed channels', TEST, async (t) => {
  const defer = cleanups(t);
  const vhost = await vhostFor(defer);
  const { broker, received } = recordingBroker();
  await broker.start();
  defer(() => broker.close());
  const exchange = `sse-cyclone-server-${randomBytes(3).toString('hex')}`;
  const pub = await producer(vhost.url, defer);
  // extras/pub.py with pika defaults, before the hub runs…
  await pub.ch.assertExchange(exchange, 'direct', { durable: false });

  const subscribed = new Set(['base']);
  const options = consumerOptions(vhost.url, { exchange, exchangeType: 'direct', bindingsRefreshMs: 50 });
  const rig = await startConsumer(defer, broker, options, async () => subscribed);
  assert.equal(await metric(rig.amqpRegistry, 'cyclone_sse_publisher_amqp_bindings'), 1);
  // …and again while it runs: same arguments, no 406 (a 406 would reject and close the channel).
  await pub.ch.assertExchange(exchange, 'direct', { durable: false });

  await pub.publish(exchange, 'nobody', '["comment","999"]');
  await pub.publish(exchange, 'base', '["comment","123"]');
  await pub.publish(exchange, 'base', 'sentinel 1');
  await waitFor(() => received.some((r) => r.data === 'sentinel 1'), 10_000, 'sentinel 1');
  assert.deepEqual(received, [
    { channel: 'base', data: '["comment","123"]' },
    { channel: 'base', data: 'sentinel 1' },
  ]);

  // A channel gets its first subscriber (a never-bindable name is skipped, not fatal)…
  subscribed.add('other');
  subscribed.add('bad\u0000name');
  await waitFor(async () => (await metric(rig.amqpRegistry, 'cyclone_sse_publisher_amqp_bindings')) === 2, 10_000, 'other bound');
  // …and another loses its last.
  subscribed.delete('base');
  await waitFor(async () => (await metric(rig.amqpRegistry, 'cyclone_sse_publisher_amqp_bindings')) === 1, 10_000, 'base unbound');
  const before = received.length;
  await pub.publish(exchange, 'other', 'now bound');
  await pub.publish(exchange, 'base', 'after unbind');
  await pub.publish(exchange, 'other', 'sentinel 2');
  await waitFor(() => received.some((r) => r.data === 'sentinel 2'), 10_000, 'sentinel 2');
  assert.deepEqual(received.slice(before), [
    { channel: 'other', data: 'now bound' },
    { channel: 'other', data: 'sentinel 2' },
  ]);
  assert.ok(rig.consumer.isReady());
});

test('seed exchange name absent: declared non-durable, so a pika producer can declare it afterwards', TEST, async (t) => {
  const defer = cleanups(t);
  const vhost = await vhostFor(defer);
  const { broker, received } = recordingBroker();
  await broker.start();
  defer(() => broker.close());
  const options = consumerOptions(vhost.url, { exchange: 'sse-cyclone-server', exchangeType: 'direct' });
  await startConsumer(defer, broker, options, async () => ['base']);
  const pub = await producer(vhost.url, defer);
  await pub.ch.assertExchange('sse-cyclone-server', 'direct', { durable: false });
  await pub.publish('sse-cyclone-server', 'base', '["comment", "123"]');
  await waitFor(() => received.length === 1, 10_000, 'the seed message');
  assert.deepEqual(received, [{ channel: 'base', data: '["comment", "123"]' }]);
  // Our own queue is durable with the dead-letter exchange; a durable redeclare of the exchange fails.
  await assert.rejects(pub.ch.assertExchange('sse-cyclone-server', 'direct', { durable: true }), /406|inequivalent/);
});

test('poison messages go to the dead-letter queue, are counted, and the consumer keeps going', TEST, async (t) => {
  const defer = cleanups(t);
  const vhost = await vhostFor(defer);
  const { broker, received } = recordingBroker();
  await broker.start();
  defer(() => broker.close());
  const options = consumerOptions(vhost.url, { maxBody: 64 });
  const rig = await startConsumer(defer, broker, options);
  const pub = await producer(vhost.url, defer);

  await pub.publish('cyclone-sse', 'ok', 'first');
  await pub.publish('cyclone-sse', 'bad\u0001key', 'control char in the routing key');
  await pub.publish('cyclone-sse', 'ok', 'x'.repeat(65));
  await pub.publish('cyclone-sse', 'ok', 'bad type', { type: 'evil\nevent: injected' });
  await pub.publish('cyclone-sse', 'ok', 'bad id', { messageId: 'id\nwith newline' });
  await pub.publish('cyclone-sse', 'ok', Buffer.from([0x61, 0xff, 0xfe]));
  await pub.publish('cyclone-sse', 'ok', 'control', { type: 'reset' }); // a hub event name
  await pub.publish('cyclone-sse', 'ok', 'a\u2028id: 1'); // a splitlines() separator
  await pub.publish('cyclone-sse', 'ok', 'good');
  await waitFor(() => received.some((r) => r.data === 'good'), 10_000, 'the good message');
  assert.deepEqual(received, [
    { channel: 'ok', data: 'first' },
    { channel: 'ok', data: 'good' },
  ]);

  const dead = await drainQueue(pub.ch, `${options.queue}.dead-letter`, 7);
  assert.deepEqual(
    dead.map((m) => [m.fields.routingKey, m.content.length]),
    [
      ['bad\u0001key', 31],
      ['ok', 65],
      ['ok', 8],
      ['ok', 6],
      ['ok', 3],
      ['ok', 7],
      ['ok', 9],
    ],
  );
  assert.equal(dead[2]!.properties.type, 'evil\nevent: injected');
  assert.equal((dead[0]!.properties.headers?.['x-death'] as { reason: string }[])[0]!.reason, 'rejected');
  for (const reason of [
    'INVALID_CHANNEL',
    'PAYLOAD_TOO_LARGE',
    'INVALID_EVENT',
    'INVALID_ID',
    'INVALID_BODY',
    'RESERVED_EVENT',
    'INVALID_DATA',
  ]) {
    assert.equal(await metric(rig.amqpRegistry, 'cyclone_sse_publisher_amqp_dead_letters_total', { reason }), 1, reason);
  }
  await waitFor(async () => (await metric(rig.amqpRegistry, 'cyclone_sse_publisher_amqp_acks_total')) === 2, 5000, '2 acks');
  assert.equal((await pub.ch.checkQueue(options.queue)).messageCount, 0);
  assert.ok(rig.consumer.isReady());
});

test('a delivery published but not acked (connection lost) is redelivered and deduplicated by messageId', TEST, async (t) => {
  const defer = cleanups(t);
  const vhost = await vhostFor(defer);
  const { broker, received } = recordingBroker();
  await broker.start();
  defer(() => broker.close());
  const serviceRegistry = new Registry();
  const service = new PublishService(broker, createPublisherMetrics(serviceRegistry), logger);

  // Consumer A loses its connection after the broker sequenced the message, before the ack; its
  // own reconnect is slow, so a restarted consumer B (same queue) takes the redelivery.
  let crashes = 0;
  const optionsA = consumerOptions(vhost.url, { retryInitialMs: 10_000, retryMaxMs: 10_000 });
  optionsA.onPublished = async (inputs: PublishInput[]) => {
    if (crashes > 0 || inputs[0]?.idempotencyKey !== 'order-1') return;
    crashes++;
    assert.equal(await closeRabbitConnections(optionsA.connectionName!), 1);
    await waitFor(() => !a.consumer.isReady(), 5000, 'consumer A disconnected');
  };
  const a = await startConsumer(defer, broker, optionsA, undefined, { service, registry: serviceRegistry });
  const pub = await producer(vhost.url, defer);
  await pub.publish('cyclone-sse', 'orders', '{"order":1}', { messageId: 'order-1' });
  await waitFor(() => crashes === 1 && !a.consumer.isReady(), 10_000, 'the crash after publish');
  assert.deepEqual(received, [{ channel: 'orders', data: '{"order":1}' }]);
  await a.consumer.stop();

  const b = await startConsumer(defer, broker, consumerOptions(vhost.url), undefined, { service, registry: serviceRegistry });
  await pub.publish('cyclone-sse', 'orders', 'sentinel');
  await waitFor(() => received.some((r) => r.data === 'sentinel'), 10_000, 'sentinel');
  assert.deepEqual(received, [
    { channel: 'orders', data: '{"order":1}' },
    { channel: 'orders', data: 'sentinel' },
  ]);
  assert.equal(await metric(b.amqpRegistry, 'cyclone_sse_publisher_amqp_redeliveries_total'), 1);
  assert.equal(await metric(a.amqpRegistry, 'cyclone_sse_publisher_amqp_acks_total'), 0);
  await waitFor(async () => (await metric(b.amqpRegistry, 'cyclone_sse_publisher_amqp_acks_total')) === 2, 5000, 'B acked both');
  assert.equal(await metric(serviceRegistry, 'cyclone_sse_publisher_publishes_total', { source: 'amqp', outcome: 'duplicate' }), 1);
  assert.equal((await pub.ch.checkQueue(optionsA.queue)).messageCount, 0);
});

test('Redis down: deliveries stay queued unacked, then arrive in order, once, when Redis is back', TEST, async (t) => {
  const defer = cleanups(t);
  const vhost = await vhostFor(defer);
  const redis = await startRedis({ appendonly: true });
  defer(() => redis.stop());
  const broker = new RedisBroker({
    url: redis.url,
    prefix: `amqp-test-${process.pid}-${randomBytes(3).toString('hex')}`,
    historySize: 1000,
    historyTtlSeconds: 3600,
    idempotencyTtlSeconds: 300,
    subscribe: false,
    logger,
  });
  await broker.start();
  defer(() => broker.close());
  const options = consumerOptions(vhost.url, { prefetch: 10 });
  const rig = await startConsumer(defer, broker, options);
  const pub = await producer(vhost.url, defer);
  const history = async (): Promise<string[]> => {
    const { epoch } = await broker.position();
    const res = await broker.history(['ch'], formatId(epoch, 0));
    assert.equal(res.reset, undefined);
    return res.messages.map((m) => decode(m.channel, m.frame).data);
  };

  for (let i = 0; i < 5; i++) await pub.publish('cyclone-sse', 'ch', `before-${i}`);
  await waitFor(async () => (await history()).length === 5, 10_000, '5 messages in redis');

  await redis.kill9();
  const expected = Array.from({ length: 5 }, (_, i) => `before-${i}`);
  for (let i = 0; i < 30; i++) {
    await pub.publish('cyclone-sse', 'ch', `during-${i}`);
    expected.push(`during-${i}`);
  }
  await waitFor(
    async () =>
      (await metric(rig.serviceRegistry, 'cyclone_sse_publisher_publishes_total', { source: 'amqp', outcome: 'unavailable' })) > 0,
    10_000,
    'a failed publish',
  );
  // At most `prefetch` are held unacked by the consumer; the rest wait in the queue.
  const queued = await pub.ch.checkQueue(options.queue);
  assert.ok(queued.messageCount >= 20, `queued ${queued.messageCount}`);
  assert.equal(await metric(rig.amqpRegistry, 'cyclone_sse_publisher_amqp_acks_total'), 5);
  assert.ok(rig.consumer.isReady(), 'still connected to rabbitmq');

  await redis.restart();
  await waitFor(async () => (await history()).length >= 35, 20_000, '35 messages in redis');
  assert.deepEqual(await history(), expected);
  await waitFor(async () => (await metric(rig.amqpRegistry, 'cyclone_sse_publisher_amqp_acks_total')) === 35, 5000, '35 acks');
  assert.equal((await pub.ch.checkQueue(options.queue)).messageCount, 0);
  assert.equal(await metric(rig.amqpRegistry, 'cyclone_sse_publisher_amqp_redeliveries_total'), 0);
});

test('connection closed by the broker: the consumer reconnects and keeps consuming', TEST, async (t) => {
  const defer = cleanups(t);
  const vhost = await vhostFor(defer);
  const { broker, received } = recordingBroker();
  await broker.start();
  defer(() => broker.close());
  const options = consumerOptions(vhost.url);
  const rig = await startConsumer(defer, broker, options);
  const pub = await producer(vhost.url, defer);
  await pub.publish('cyclone-sse', 'ch', 'one');
  await waitFor(() => received.length === 1, 10_000, 'message one');

  assert.equal(await closeRabbitConnections(options.connectionName!, 'test'), 1);
  await waitFor(
    async () => (await metric(rig.amqpRegistry, 'cyclone_sse_publisher_amqp_reconnects_total')) >= 1 && rig.consumer.isReady(),
    10_000,
    'reconnected',
  );
  await pub.publish('cyclone-sse', 'ch', 'two');
  await waitFor(() => received.length === 2, 10_000, 'message two');
  assert.deepEqual(
    received.map((r) => r.data),
    ['one', 'two'],
  );
  assert.equal(await metric(rig.amqpRegistry, 'cyclone_sse_publisher_amqp_connected'), 1);
});
