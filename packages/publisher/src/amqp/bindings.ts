import type { Channel, ChannelModel } from 'amqplib';
import { errorFields, validateChannel, type Gauge, type Logger } from '@cyclone-sse/common';

export interface DirectBindingsOptions {
  queue: string;
  exchange: string;
  maxChannelLength: number;
  refreshMs: number;
  /** Channels with subscribers somewhere in the cluster. */
  source: () => Promise<Iterable<string>>;
}

/**
 * Keeps one binding (routing key = channel) of the publish queue per channel that has
 * subscribers, for a direct exchange, which cannot be bound with a wildcard. Bindings this
 * process did not make (a previous run's) are left alone: AMQP cannot list them, and an extra
 * binding only sequences messages nobody is listening to yet.
 */
export class DirectBindings {
  private readonly bound = new Set<string>();
  private ch: Channel | undefined;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  private sourceDown = false;
  private bindFailing = false;

  constructor(
    private readonly conn: ChannelModel,
    private readonly o: DirectBindingsOptions,
    private readonly gauge: Gauge,
    private readonly log: Logger,
  ) {}

  /** Syncs once, then every `refreshMs` until stop(). */
  async start(): Promise<void> {
    await this.sync();
    this.schedule();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
    await this.ch?.close().catch(() => {});
    this.gauge.set(0);
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.running = this.sync().finally(() => {
        this.running = undefined;
        this.schedule();
      });
    }, this.o.refreshMs);
    this.timer.unref();
  }

  private async sync(): Promise<void> {
    let names: Iterable<string>;
    try {
      names = await this.o.source();
    } catch (err) {
      if (!this.sourceDown)
        this.log.warn('cannot read the subscribed channels; bindings kept', { event: 'amqp_bindings_source_failed', ...errorFields(err) });
      this.sourceDown = true;
      return;
    }
    if (this.sourceDown) this.log.info('subscribed channels readable again', { event: 'amqp_bindings_source_recovered' });
    this.sourceDown = false;
    const wanted = new Set<string>();
    for (const name of names) if (this.isBindable(name)) wanted.add(name);
    try {
      const ch = await this.channel();
      for (const name of wanted) {
        if (this.stopped) return;
        if (this.bound.has(name)) continue;
        await ch.bindQueue(this.o.queue, this.o.exchange, name);
        this.bound.add(name);
      }
      for (const name of [...this.bound]) {
        if (this.stopped) return;
        if (wanted.has(name)) continue;
        await ch.unbindQueue(this.o.queue, this.o.exchange, name);
        this.bound.delete(name);
      }
      if (this.bindFailing) this.log.info('bindings in sync again', { event: 'amqp_bindings_recovered' });
      this.bindFailing = false;
    } catch (err) {
      if (!this.bindFailing && !this.stopped)
        this.log.warn('binding sync failed; retrying', { event: 'amqp_bindings_failed', ...errorFields(err) });
      this.bindFailing = true;
    } finally {
      if (!this.stopped) this.gauge.set(this.bound.size);
    }
  }

  private isBindable(name: string): boolean {
    try {
      validateChannel(name, Math.min(this.o.maxChannelLength, 255));
      return true;
    } catch {
      return false;
    }
  }

  /** A channel of its own: a failed bind closes it, and that must not stop consuming. */
  private async channel(): Promise<Channel> {
    if (this.ch) return this.ch;
    const ch = await this.conn.createChannel();
    ch.on('error', () => {}); // the rejected bind reports it
    ch.once('close', () => {
      if (this.ch === ch) this.ch = undefined;
    });
    this.ch = ch;
    return ch;
  }
}
