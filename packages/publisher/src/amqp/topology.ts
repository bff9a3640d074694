import type { Channel, ChannelModel } from 'amqplib';
import { errorFields, type Logger } from '@cyclone-sse/common';

/** The seed's exchange: its producers (pika defaults) declare it non-durable. */
export const SEED_EXCHANGE = 'sse-cyclone-server';

export type ExchangeType = 'topic' | 'direct' | 'fanout';

export interface TopologyOptions {
  exchange: string;
  exchangeType: ExchangeType;
  /** Durability used when the exchange has to be declared. */
  exchangeDurable: boolean;
  queue: string;
  deadLetterExchange: string;
}

/** The queue that keeps rejected (poison) deliveries, bound to the dead-letter exchange. */
export function deadLetterQueue(queue: string): string {
  return `${queue}.dead-letter`;
}

/**
 * Declares what the consumer needs. An existing exchange is used as it is (re-declaring it with
 * other arguments would fail with 406 and, worse, break producers that declare it their way); our
 * own exchange and queues are declared, and used as they are if they exist with other arguments.
 */
export async function declareTopology(conn: ChannelModel, o: TopologyOptions, log: Logger): Promise<void> {
  const exists = await probe(conn, (ch) => ch.checkExchange(o.exchange));
  if (exists) {
    log.info('using existing exchange', { event: 'amqp_exchange_exists', exchange: o.exchange });
  } else {
    await declareOrUse(
      conn,
      log,
      o.exchange,
      (ch) => ch.assertExchange(o.exchange, o.exchangeType, { durable: o.exchangeDurable }),
      (ch) => ch.checkExchange(o.exchange),
    );
  }
  const dlq = deadLetterQueue(o.queue);
  await declareOrUse(
    conn,
    log,
    o.deadLetterExchange,
    (ch) => ch.assertExchange(o.deadLetterExchange, 'fanout', { durable: true }),
    (ch) => ch.checkExchange(o.deadLetterExchange),
  );
  await declareOrUse(
    conn,
    log,
    dlq,
    (ch) => ch.assertQueue(dlq, { durable: true }),
    (ch) => ch.checkQueue(dlq),
  );
  await withChannel(conn, (ch) => ch.bindQueue(dlq, o.deadLetterExchange, ''));
  const args = { 'x-single-active-consumer': true, 'x-dead-letter-exchange': o.deadLetterExchange };
  await declareOrUse(
    conn,
    log,
    o.queue,
    (ch) => ch.assertQueue(o.queue, { durable: true, arguments: args }),
    (ch) => ch.checkQueue(o.queue),
  );
  // A direct exchange cannot take a wildcard: its bindings follow the subscribed channels.
  if (o.exchangeType === 'topic') await withChannel(conn, (ch) => ch.bindQueue(o.queue, o.exchange, '#'));
  if (o.exchangeType === 'fanout') await withChannel(conn, (ch) => ch.bindQueue(o.queue, o.exchange, ''));
}

/**
 * Runs `fn` on a channel of its own and closes it: a failed declaration closes the channel it
 * ran on, and that must not be the consuming one.
 */
export async function withChannel<T>(conn: ChannelModel, fn: (ch: Channel) => Promise<T>): Promise<T> {
  const ch = await conn.createChannel();
  let closed = false;
  ch.on('error', () => {}); // the rejected operation reports it
  ch.once('close', () => (closed = true));
  try {
    return await fn(ch);
  } finally {
    if (!closed) await ch.close().catch(() => {});
  }
}

/** True when `check` succeeds, false on 404 NOT_FOUND; other failures are thrown. */
async function probe(conn: ChannelModel, check: (ch: Channel) => Promise<unknown>): Promise<boolean> {
  try {
    await withChannel(conn, check);
    return true;
  } catch (err) {
    if (amqpCode(err) === 404) return false;
    throw err;
  }
}

async function declareOrUse(
  conn: ChannelModel,
  log: Logger,
  name: string,
  declare: (ch: Channel) => Promise<unknown>,
  check: (ch: Channel) => Promise<unknown>,
): Promise<void> {
  try {
    await withChannel(conn, declare);
  } catch (err) {
    if (amqpCode(err) !== 406) throw err;
    log.warn('exists with other arguments; using it as it is', { event: 'amqp_topology_inequivalent', name, ...errorFields(err) });
    await withChannel(conn, check);
  }
}

function amqpCode(err: unknown): number | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'number' ? code : undefined;
}
