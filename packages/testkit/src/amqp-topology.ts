import { randomBytes } from 'node:crypto';
import amqp, { type ConfirmChannel } from 'amqplib';
import { testAmqpUrl } from './env.js';

export interface AmqpTestTopology {
  /** Random per test: also a prefix for message ids. */
  suffix: string;
  exchange: string;
  queue: string;
  /** The publisher's AMQP options for this exchange, queue and dead-letter exchange. */
  publisherArgs: string[];
  /** A confirm channel to publish test messages with (`ch.publish` + `ch.waitForConfirms`). */
  ch: ConfirmChannel;
}

/**
 * A private exchange, queue and dead-letter exchange on the shared test RabbitMQ (the publisher
 * declares them when it starts with `publisherArgs`), and a confirm channel to publish on; all of
 * it is deleted when the test ends.
 */
export async function amqpTestTopology(t: { after(fn: () => unknown): void }, name: string): Promise<AmqpTestTopology> {
  const suffix = randomBytes(3).toString('hex');
  const exchange = `cyclone-sse-${name}-${suffix}`;
  const queue = `${exchange}.publish`;
  const conn = await amqp.connect(testAmqpUrl());
  const ch = await conn.createConfirmChannel();
  t.after(async () => {
    for (const q of [queue, `${queue}.dead-letter`]) await ch.deleteQueue(q).catch(() => undefined);
    for (const x of [exchange, `${exchange}.dlx`]) await ch.deleteExchange(x).catch(() => undefined);
    await conn.close().catch(() => undefined);
  });
  const publisherArgs = [
    '--amqp-url',
    testAmqpUrl(),
    '--amqp-exchange',
    exchange,
    '--amqp-queue',
    queue,
    '--amqp-dead-letter-exchange',
    `${exchange}.dlx`,
  ];
  return { suffix, exchange, queue, publisherArgs, ch };
}
