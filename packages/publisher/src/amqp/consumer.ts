import { connect, type Channel, type ChannelModel, type ConsumeMessage } from 'amqplib';
import { HubError, errorFields, type Logger, type PublishInput, type Registry } from '@cyclone-sse/common';
import type { PublishService } from '../publish-service.js';
import type { PublishInputSource } from '../publisher-server.js';
import { backoffDelay, pause } from './backoff.js';
import { DirectBindings } from './bindings.js';
import { toPublishInput, validationError } from './delivery.js';
import { createAmqpMetrics, type AmqpMetrics } from './metrics.js';
import { SEED_EXCHANGE, declareTopology, type ExchangeType } from './topology.js';

export interface AmqpConsumerOptions {
  url: string;
  exchange: string;
  /** Type used when the exchange has to be declared; decides how the queue is bound. */
  exchangeType: ExchangeType;
  queue: string;
  prefetch: number;
  deadLetterExchange: string;
  maxChannelLength: number;
  maxBody: number;
  /** Direct exchange: ms between re-syncs of the per-channel bindings (default 1000). */
  bindingsRefreshMs?: number;
  /** Durability when the exchange has to be declared; default true, except for the seed's name. */
  exchangeDurable?: boolean;
  /** Connection name shown by RabbitMQ (default `cyclone-sse-publisher`). */
  connectionName?: string;
  /** First and largest delay of the reconnect and Redis-retry backoff (default 100 / 5000 ms). */
  retryInitialMs?: number;
  retryMaxMs?: number;
  /** Test hook: runs after the broker sequenced a batch and before it is acked. */
  onPublished?: (inputs: PublishInput[]) => void | Promise<void>;
}

/** One connection with its consuming channel; deliveries remember theirs (acks are per channel). */
interface Session {
  conn: ChannelModel;
  ch?: Channel;
  consuming: boolean;
  closed: boolean;
  /** Why the consuming channel closed (the connection close that follows carries no error). */
  channelError?: Error;
  bindings?: DirectBindings;
}

interface Delivery {
  session: Session;
  msg: ConsumeMessage;
  input?: PublishInput;
  error?: HubError;
}

/** Consecutive deliveries sent to the broker in one call. */
const MAX_BATCH = 100;
/**
 * Body bytes one batch carries at most: well under the default --max-publish-fanout-bytes
 * (8 MiB), so a batch is refused for its size only when data lines expand it (it is then retried
 * one by one, as after any refusal).
 */
const MAX_BATCH_BYTES = 2 * 1024 * 1024;

/**
 * The AMQP input (docs/architecture.md#publishing-path, docs/delivery.md#details): consumes a durable single-active-consumer queue and publishes each
 * delivery through the publish service, strictly in delivery order, acking only after the broker
 * sequenced it (at-least-once; a redelivery is deduplicated by its `messageId`). While the broker
 * is unavailable it retries the same batch with backoff and takes no new work; the rest stays
 * unacked or queued in RabbitMQ. Poison is rejected to the dead-letter exchange.
 */
export class AmqpConsumer implements PublishInputSource {
  readonly name = 'amqp';
  readonly metrics: AmqpMetrics;
  private readonly log: Logger;
  private readonly abort = new AbortController();
  private session: Session | undefined;
  private readonly pending: Delivery[] = [];
  private working: Promise<void> | undefined;
  private loop: Promise<void> | undefined;
  private stopping = false;
  private everConnected = false;
  private linkDown = false;
  private brokerDown = false;
  /** After the broker refused a batch: this many deliveries go one by one, to find the poison. */
  private singles = 0;

  constructor(
    private readonly options: AmqpConsumerOptions,
    private readonly service: PublishService,
    registry: Registry,
    logger: Logger,
    private readonly channelsWithSubscribers?: () => Promise<Iterable<string>>,
  ) {
    this.metrics = createAmqpMetrics(registry);
    this.log = logger.child({ component: 'amqp' });
  }

  /** Resolves after the first connection attempt (success or not); retries continue in the background. */
  async start(): Promise<void> {
    if (this.loop) return;
    if (this.options.exchangeType === 'direct' && !this.channelsWithSubscribers) {
      this.log.warn('direct exchange without a source of subscribed channels: nothing is bound', {
        event: 'amqp_nothing_bound',
        exchange: this.options.exchange,
      });
    }
    let first!: () => void;
    const attempted = new Promise<void>((resolve) => (first = resolve));
    this.loop = this.run(first);
    await attempted;
  }

  /** Stops taking work, lets the in-flight batch finish and ack, then closes (the rest is requeued). */
  async stop(): Promise<void> {
    if (this.stopping) return this.loop;
    this.stopping = true;
    this.abort.abort();
    await this.working;
    // Closing the channel (not basic.cancel first) requeues what is unacked in the same step that
    // removes the consumer, so a standby single-active consumer starts at the right message.
    const session = this.session;
    if (session && !session.closed) await session.conn.close().catch(() => {});
    await this.loop;
    this.log.info('amqp consumer stopped', { event: 'amqp_stopped' });
  }

  isReady(): boolean {
    return !this.stopping && this.session?.consuming === true && !this.session.closed;
  }

  // --- connection ---------------------------------------------------------------------------

  private async run(attempted: () => void): Promise<void> {
    let failures = 0;
    while (!this.stopping) {
      const consumed = await this.connectAndConsume(attempted);
      attempted();
      if (this.stopping) break;
      failures = consumed ? 0 : failures + 1;
      await pause(backoffDelay(failures, this.retryInitialMs, this.retryMaxMs), this.abort.signal);
      if (this.stopping) break;
      this.metrics.reconnects.inc();
    }
  }

  /** One session: resolves when its connection is gone; true if it got as far as consuming. */
  private async connectAndConsume(attempted: () => void): Promise<boolean> {
    const o = this.options;
    let conn: ChannelModel;
    try {
      conn = await connect(o.url, { clientProperties: { connection_name: o.connectionName ?? 'cyclone-sse-publisher' }, timeout: 10_000 });
    } catch (err) {
      this.linkLost('amqp_connect_failed', err);
      return false;
    }
    const session: Session = { conn, consuming: false, closed: false };
    const closed = new Promise<Error | undefined>((resolve) => conn.once('close', resolve));
    conn.on('error', () => {}); // 'close' follows and carries the error
    conn.on('handler-error', (err: Error, name: string) =>
      this.log.error('amqp connection handler threw', { event: 'amqp_handler_error', on: name, ...errorFields(err) }),
    );
    conn.on('blocked', (reason: string) => this.log.warn('rabbitmq blocked publishing', { event: 'amqp_blocked', reason }));
    conn.on('unblocked', () => this.log.info('rabbitmq unblocked publishing', { event: 'amqp_unblocked' }));
    this.session = session;
    try {
      if (this.stopping) throw new Error('stopping');
      await declareTopology(conn, { ...o, exchangeDurable: o.exchangeDurable ?? o.exchange !== SEED_EXCHANGE }, this.log);
      if (o.exchangeType === 'direct' && this.channelsWithSubscribers) {
        session.bindings = new DirectBindings(
          conn,
          {
            queue: o.queue,
            exchange: o.exchange,
            maxChannelLength: o.maxChannelLength,
            refreshMs: o.bindingsRefreshMs ?? 1000,
            source: this.channelsWithSubscribers,
          },
          this.metrics.bindings,
          this.log,
        );
        await session.bindings.start();
      } else {
        this.metrics.bindings.set(o.exchangeType === 'direct' ? 0 : 1);
      }
      const ch = await conn.createChannel();
      session.ch = ch;
      ch.on('error', (err: Error) => (session.channelError = err)); // 'close' follows
      ch.on('handler-error', (err: Error, name: string) =>
        this.log.error('amqp channel handler threw', { event: 'amqp_handler_error', on: name, ...errorFields(err) }),
      );
      // The consuming channel and the connection live and die together: one reconnect path.
      ch.once('close', () => void conn.close().catch(() => {}));
      await ch.prefetch(o.prefetch);
      if (this.stopping) throw new Error('stopping');
      await ch.consume(o.queue, (msg) => this.onDelivery(session, msg), { noAck: false });
      session.consuming = true;
      this.everConnected = true;
      this.linkDown = false;
      this.metrics.connected.set(1);
      this.log.info('consuming', { event: 'amqp_connected', exchange: o.exchange, exchangeType: o.exchangeType, queue: o.queue });
    } catch (err) {
      if (!this.stopping) this.linkLost('amqp_setup_failed', err);
      await conn.close().catch(() => {});
    }
    attempted();
    const reason = await closed;
    session.closed = true;
    this.metrics.connected.set(0);
    await session.bindings?.stop();
    if (session.consuming && !this.stopping) this.linkLost('amqp_disconnected', reason ?? session.channelError);
    // Unacked deliveries of a dead channel are requeued by RabbitMQ: drop our copies.
    this.dropPending(session);
    return session.consuming;
  }

  /** Warns once per loss; further failed attempts are debug. */
  private linkLost(event: string, err: unknown): void {
    const fields = errorFields(err ?? 'closed');
    if (!this.linkDown)
      this.log.warn(this.everConnected ? 'rabbitmq connection lost; reconnecting' : 'cannot connect to rabbitmq; retrying', {
        event,
        ...fields,
      });
    else this.log.debug('rabbitmq still unavailable', { event, ...fields });
    this.linkDown = true;
  }

  private dropPending(session: Session): void {
    let kept = 0;
    for (const d of this.pending) if (d.session !== session) this.pending[kept++] = d;
    this.pending.length = kept;
  }

  private get retryInitialMs(): number {
    return this.options.retryInitialMs ?? 100;
  }

  private get retryMaxMs(): number {
    return this.options.retryMaxMs ?? 5000;
  }

  // --- deliveries ---------------------------------------------------------------------------

  private onDelivery(session: Session, msg: ConsumeMessage | null): void {
    if (msg === null) {
      // Cancelled by the server (queue deleted): reconnecting re-declares the queue.
      this.log.warn('consumer cancelled by rabbitmq', { event: 'amqp_consumer_cancelled', queue: this.options.queue });
      void session.conn.close().catch(() => {});
      return;
    }
    if (msg.fields.redelivered) this.metrics.redeliveries.inc();
    const delivery: Delivery = { session, msg };
    try {
      delivery.input = toPublishInput(msg, this.options);
    } catch (err) {
      delivery.error = err instanceof HubError ? err : new HubError('INVALID_BODY', String(err));
    }
    this.pending.push(delivery);
    this.pump();
  }

  /** One worker drains `pending` in order; the next delivery starts it again. */
  private pump(): void {
    if (this.working || this.stopping || this.pending.length === 0) return;
    this.working = this.drain()
      .catch((err: unknown) => {
        this.log.error('amqp worker failed', { event: 'amqp_worker_error', ...errorFields(err) });
      })
      .finally(() => {
        this.working = undefined;
        this.pump();
      });
  }

  private async drain(): Promise<void> {
    while (!this.stopping && this.pending.length > 0) {
      const head = this.pending[0]!;
      if (head.session !== this.session || head.session.closed) {
        this.pending.shift(); // will be redelivered
        continue;
      }
      if (head.error) {
        this.pending.shift();
        this.deadLetter(head, head.error);
        continue;
      }
      const single = this.singles > 0;
      const limit = single ? 1 : MAX_BATCH;
      let n = 1;
      let bytes = head.msg.content.length;
      const fits = (d: Delivery) => d.input !== undefined && d.session === head.session && bytes + d.msg.content.length <= MAX_BATCH_BYTES;
      while (n < limit && n < this.pending.length && fits(this.pending[n]!)) bytes += this.pending[n++]!.msg.content.length;
      await this.publish(this.pending.slice(0, n));
      if (single) this.singles--;
    }
  }

  /**
   * Publishes a batch and acks it, retrying with backoff while the broker is unavailable. Leaves
   * the batch in `pending` (for a redelivery) when its channel is gone or the consumer stops.
   */
  private async publish(batch: Delivery[]): Promise<void> {
    const session = batch[0]!.session;
    const inputs = batch.map((d) => d.input!);
    for (let attempt = 0; ; attempt++) {
      try {
        await this.service.publish(inputs, 'amqp');
        break;
      } catch (err) {
        const invalid = validationError(err);
        if (invalid) return this.rejectFromBatch(batch, invalid);
        if (!this.brokerDown)
          this.log.warn('broker unavailable; holding deliveries unacked', { event: 'amqp_broker_unavailable', ...errorFields(err) });
        this.brokerDown = true;
        await pause(backoffDelay(attempt, this.retryInitialMs, this.retryMaxMs), this.abort.signal);
        if (this.stopping || session.closed || session !== this.session) return;
      }
    }
    if (this.brokerDown) this.log.info('broker available again; consuming', { event: 'amqp_broker_recovered' });
    this.brokerDown = false;
    await this.options.onPublished?.(inputs);
    if (session.closed || session !== this.session) return; // the redelivery is deduplicated by messageId
    try {
      // Everything earlier on this channel is already acked or rejected: one cumulative ack.
      session.ch!.ack(batch[batch.length - 1]!.msg, true);
      this.metrics.acks.inc(batch.length);
    } catch (err) {
      this.log.debug('ack on a closing channel', { event: 'amqp_ack_failed', ...errorFields(err) });
    }
    this.pending.splice(0, batch.length);
  }

  /** The broker refused an input: a single delivery is poison; a batch is retried one by one. */
  private rejectFromBatch(batch: Delivery[], err: HubError): void {
    if (batch.length === 1) {
      this.pending.shift();
      this.deadLetter(batch[0]!, err);
    } else {
      this.singles = batch.length;
    }
  }

  private deadLetter(d: Delivery, err: HubError): void {
    if (d.session.closed || d.session !== this.session) return;
    try {
      d.session.ch!.nack(d.msg, false, false);
    } catch {
      return; // channel closing: it will be redelivered and rejected again
    }
    this.metrics.deadLetters.inc({ reason: err.code });
    this.log.info('delivery rejected to the dead-letter exchange', {
      event: 'amqp_message_dead_lettered',
      code: err.code,
      reason: err.message,
      routingKey: d.msg.fields.routingKey,
      messageId: d.msg.properties.messageId as unknown,
    });
    if (this.log.isDebugEnabled())
      this.log.debug('dead-lettered payload', { event: 'amqp_dead_letter_payload', payload: d.msg.content.toString('utf8') });
  }
}
