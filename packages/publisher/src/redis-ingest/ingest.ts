import { randomUUID } from 'node:crypto';
import type { Cluster, Redis } from 'ioredis';
import {
  Counter,
  Gauge,
  HubError,
  RedisKeys,
  errorFields,
  createRedisClient,
  createRedisClusterClient,
  validateChannel,
  type Logger,
  type RedisConnectionConfig,
  type Registry,
} from '@cyclone-sse/common';
import type { PublishService } from '../publish-service.js';
import type { PublishInputSource } from '../publisher-server.js';
import { ClusterNodeSubscriber } from './cluster-node-subscriber.js';

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
 *
 * On a Redis Cluster (`connection.clusterNodes`) the lease goes through an ioredis Cluster client
 * and the `PSUBSCRIBE` through a plain connection to one node ({@link ClusterNodeSubscriber}):
 * a classic `PUBLISH` to any node is broadcast to every node of the cluster.
 */
export class RedisIngest implements PublishInputSource {
  readonly name = 'redis-ingest';
  private readonly id = randomUUID();
  private readonly cmd: Redis | Cluster;
  /** Standalone and Sentinel: one subscriber connection that reconnects by itself. */
  private readonly sub: Redis | undefined;
  /** Redis Cluster: a connection to one node at a time. */
  private readonly nodeSub: ClusterNodeSubscriber | undefined;
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
    if (connection.clusterNodes && connection.clusterNodes.length > 0) {
      const seeds = connection.clusterNodes;
      const cmd = createRedisClusterClient(connection, { maxRetriesPerRequest: 1 }, { enableOfflineQueue: false, lazyConnect: true });
      this.cmd = cmd;
      const known = () => cmd.nodes('all').map((n) => ({ host: n.options.host ?? '127.0.0.1', port: n.options.port ?? 6379 }));
      this.nodeSub = new ClusterNodeSubscriber(connection, () => [...seeds, ...known()], {
        message: (channel, message) => this.onMessage(channel.toString('utf8'), message),
        ready: (node) => {
          this.logger.info('ingest subscriber connected', { event: 'ingest_node_connected', node: `${node.host}:${node.port}` });
          void this.resubscribe();
        },
        closed: (node) => {
          this.subscribed = false;
          this.leader.set(0);
          this.logger.warn('ingest subscriber lost its node; moving to another', {
            event: 'ingest_node_lost',
            node: `${node.host}:${node.port}`,
          });
        },
      });
    } else {
      this.cmd = createRedisClient(connection, { enableOfflineQueue: false, maxRetriesPerRequest: 1, lazyConnect: true });
      const sub = createRedisClient(connection, { autoResubscribe: false, lazyConnect: true });
      this.sub = sub;
      sub.on('error', () => undefined);
      sub.on('close', () => {
        this.subscribed = false;
      });
      sub.on('pmessageBuffer', (_p: string, channel: Buffer, message: Buffer) => this.onMessage(channel.toString('utf8'), message));
    }
    this.cmd.on('error', () => undefined);
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
    await Promise.all([this.cmd.connect(), this.sub?.connect(), this.nodeSub?.start()]);
    await this.tick();
    this.timer = setInterval(() => void this.tick(), Math.max(50, Math.floor(this.leaseMs / 3)));
  }

  isReady(): boolean {
    return this.cmd.status === 'ready';
  }

  get isLeader(): boolean {
    return this.holding && this.subscribed;
  }

  /** The subscriber connection when it is ready. */
  private subscriber(): Redis | undefined {
    if (this.nodeSub) return this.nodeSub.ready;
    return this.sub?.status === 'ready' ? this.sub : undefined;
  }

  /** A new cluster node connection: subscribe at once while holding the lease (not at the next tick). */
  private async resubscribe(): Promise<void> {
    const sub = this.subscriber();
    if (!this.holding || this.subscribed || !sub || this.stopped) return;
    try {
      await sub.psubscribe(this.options.pattern);
      this.subscribed = true;
    } catch {
      /* the next tick tries again */
    }
    this.leader.set(this.isLeader ? 1 : 0);
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
      const sub = this.subscriber();
      if (held && !this.subscribed && sub) {
        await sub.psubscribe(this.options.pattern);
        this.subscribed = true;
      } else if (!held && this.subscribed) {
        this.subscribed = false;
        await sub?.punsubscribe(this.options.pattern);
      }
    } catch (err) {
      // Redis unreachable: the lease lapses on its own; let go so no one ingests twice.
      if (this.holding) this.logger.warn('ingest lease lost (redis unreachable)', { event: 'ingest_lease_lost', ...errorFields(err) });
      this.holding = false;
      if (this.subscribed)
        this.subscriber()
          ?.punsubscribe(this.options.pattern)
          .catch(() => undefined);
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
    this.sub?.disconnect();
    this.nodeSub?.stop();
    this.cmd.disconnect();
  }
}
