import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import {
  Counter,
  Gauge,
  HubError,
  RedisKeys,
  errorFields,
  createRedisClient,
  validateChannel,
  type Logger,
  type RedisConnectionConfig,
  type Registry,
} from '@cyclone-sse/common';
import type { PublishService } from '../publish-service.js';
import type { PublishInputSource } from '../publisher-server.js';

export interface RedisIngestOptions {
  /** Where to connect: a URL, or Sentinel and TLS settings; `connection` wins. */
  url?: string;
  connection?: RedisConnectionConfig;
  prefix: string;
  pattern: string;
  maxChannelLength: number;
  maxBody: number;
  /** Lease time; the holder renews at a third of it. */
  leaseMs?: number;
}

// Renews the lease only if this replica still holds it.
const RENEW = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end`;
const RELEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end`;

/**
 * The seed's Redis broker contract: raw `PUBLISH <channel> '<json>'` messages matching the pattern
 * are sequenced like any other input, under the same channel name. Only the replica holding the
 * lease `<prefix>:ingest-lease` subscribes, so two replicas never ingest the same message twice;
 * the hub's own `<prefix>:` channels are never ingested.
 */
export class RedisIngest implements PublishInputSource {
  readonly name = 'redis-ingest';
  private readonly id = randomUUID();
  private readonly cmd: Redis;
  private readonly sub: Redis;
  private readonly keys: RedisKeys;
  private readonly leaseMs: number;
  private holding = false;
  private subscribed = false;
  private timer: NodeJS.Timeout | undefined;
  private chain: Promise<void> = Promise.resolve();
  private stopped = false;
  private readonly ingested: Counter<'outcome'>;
  private readonly leader: Gauge;

  constructor(
    private readonly options: RedisIngestOptions,
    private readonly service: PublishService,
    registry: Registry,
    private readonly logger: Logger,
  ) {
    this.keys = new RedisKeys(options.prefix);
    this.leaseMs = options.leaseMs ?? 6000;
    const connection = options.connection ?? { url: options.url };
    this.cmd = createRedisClient(connection, { enableOfflineQueue: false, maxRetriesPerRequest: 1, lazyConnect: true });
    this.sub = createRedisClient(connection, { autoResubscribe: false, lazyConnect: true });
    for (const c of [this.cmd, this.sub]) c.on('error', () => undefined);
    this.sub.on('close', () => {
      this.subscribed = false;
    });
    this.sub.on('pmessageBuffer', (_p: string, channel: Buffer, message: Buffer) => this.onMessage(channel.toString('utf8'), message));
    this.ingested = new Counter({
      name: 'cyclone_sse_publisher_redis_ingested_total',
      help: 'raw Redis messages ingested, by outcome',
      labelNames: ['outcome'] as const,
      registers: [registry],
    });
    for (const outcome of ['ok', 'rejected', 'failed']) this.ingested.inc({ outcome }, 0);
    this.leader = new Gauge({
      name: 'cyclone_sse_publisher_redis_ingest_leader',
      help: '1 while this replica holds the ingest lease',
      registers: [registry],
    });
  }

  async start(): Promise<void> {
    await Promise.all([this.cmd.connect(), this.sub.connect()]);
    await this.tick();
    this.timer = setInterval(() => void this.tick(), Math.max(50, Math.floor(this.leaseMs / 3)));
  }

  isReady(): boolean {
    return this.cmd.status === 'ready';
  }

  get isLeader(): boolean {
    return this.holding && this.subscribed;
  }

  /** Acquires or renews the lease; subscribes while holding it. */
  private async tick(): Promise<void> {
    if (this.stopped) return;
    try {
      const held = this.holding
        ? (await this.cmd.eval(RENEW, 1, this.keys.ingestLease, this.id, this.leaseMs)) === 1
        : (await this.cmd.set(this.keys.ingestLease, this.id, 'PX', this.leaseMs, 'NX')) === 'OK';
      if (held && !this.holding)
        this.logger.info('ingest lease acquired', { event: 'ingest_lease_acquired', pattern: this.options.pattern });
      if (!held && this.holding) this.logger.warn('ingest lease lost', { event: 'ingest_lease_lost' });
      this.holding = held;
      if (held && !this.subscribed && this.sub.status === 'ready') {
        await this.sub.psubscribe(this.options.pattern);
        this.subscribed = true;
      } else if (!held && this.subscribed) {
        await this.sub.punsubscribe(this.options.pattern);
        this.subscribed = false;
      }
    } catch (err) {
      // Redis unreachable: the lease lapses on its own; let go so no one ingests twice.
      if (this.holding) this.logger.warn('ingest lease lost (redis unreachable)', { event: 'ingest_lease_lost', ...errorFields(err) });
      this.holding = false;
      if (this.subscribed) this.sub.punsubscribe(this.options.pattern).catch(() => undefined);
      this.subscribed = false;
    }
    this.leader.set(this.isLeader ? 1 : 0);
  }

  private onMessage(channel: string, message: Buffer): void {
    if (!this.holding) return;
    if (channel.startsWith(this.keys.namespace)) return; // never the hub's own channels
    this.chain = this.chain.then(() => this.ingest(channel, message));
  }

  private async ingest(channel: string, message: Buffer): Promise<void> {
    try {
      validateChannel(channel, this.options.maxChannelLength);
      if (message.length > this.options.maxBody) throw new HubError('PAYLOAD_TOO_LARGE', `message is ${message.length} bytes`);
      await this.service.publish([{ channels: [channel], data: message.toString('utf8') }], 'redis');
      this.ingested.inc({ outcome: 'ok' });
    } catch (err) {
      const rejected = err instanceof HubError && err.statusCode < 500;
      this.ingested.inc({ outcome: rejected ? 'rejected' : 'failed' });
      // A refused message is the sender's fault (its reason says why); a failure keeps its cause
      // (BROKER_UNAVAILABLE wraps the Redis error).
      this.logger.info('raw redis message not ingested', {
        event: 'ingest_failed',
        reason: (err as Error).message,
        ...(rejected ? {} : errorFields(err)),
      });
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    await this.chain;
    if (this.holding) await this.cmd.eval(RELEASE, 1, this.keys.ingestLease, this.id).catch(() => undefined);
    this.holding = false;
    this.sub.disconnect();
    this.cmd.disconnect();
  }
}
