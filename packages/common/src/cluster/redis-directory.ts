import type { Cluster, Redis } from 'ioredis';
import { Counter, type Registry } from 'prom-client';
import { RedisKeys } from '../broker/redis-keys.js';
import { createRedisClient, createRedisClusterClient, toConnectionConfig, type RedisConnectionConfig } from '../broker/redis-connection.js';
import { errorFields } from '../log/error-fields.js';
import type { Logger } from '../log/logger.js';

/** The hash tag of the directory's keys on a Redis Cluster (one slot for all of them). */
export const DIRECTORY_TAG = 'dir';

/** What a directory call does: an edge's report (and removal), a reader's sum over the nodes. */
export const DIRECTORY_OPS = ['report', 'remove', 'read'] as const;
export type DirectoryOp = (typeof DIRECTORY_OPS)[number];

export interface RedisDirectoryOptions {
  /** Failures are logged here, once per change of state and op (failing, then recovered). */
  logger?: Logger;
  /** Registers cyclone_sse_cluster_directory_failures_total{op}. */
  registry?: Registry;
}

/**
 * Where every edge reports its channel subscriber counts, with an expiry, so the cluster-wide
 * view (GET /stats?scope=cluster, the AMQP direct-exchange bindings) forgets dead edges.
 * A failing report makes this edge's channels disappear from that view when its last report
 * expires (and the publisher unbinds them), so failures are counted and logged on state change.
 *
 * Keys (RedisKeys): `<p>:nodes` sorted set node id → report expiry (ms); `<p>:node:<id>` hash
 * channel → count. On a Redis Cluster (`connection.clusterNodes`) they share the hash tag
 * {@link DIRECTORY_TAG} (`<p>:{dir}:nodes`, `<p>:{dir}:node:<id>`), so a report's MULTI and a
 * read's pipeline stay in one slot; they go through an ioredis Cluster client.
 */
export class RedisDirectory {
  private readonly redis: Redis | Cluster;
  private readonly keys: RedisKeys;
  private readonly failures: Counter<'op'> | undefined;
  private readonly failing = new Set<DirectoryOp>();

  constructor(
    /** A Redis URL, or Sentinel and TLS settings (redis-connection.ts). */
    connection: RedisConnectionConfig | string,
    prefix: string,
    private readonly ttlSeconds: number,
    private readonly options: RedisDirectoryOptions = {},
  ) {
    const config = toConnectionConfig(connection);
    const cluster = (config.clusterNodes?.length ?? 0) > 0;
    this.keys = cluster ? new RedisKeys(prefix, DIRECTORY_TAG) : new RedisKeys(prefix);
    this.redis = cluster
      ? createRedisClusterClient(config, { maxRetriesPerRequest: 1 }, { enableOfflineQueue: false, lazyConnect: true })
      : createRedisClient(config, { enableOfflineQueue: false, maxRetriesPerRequest: 1, lazyConnect: true });
    this.redis.on('error', () => {
      /* the connection state is reported by the brokers; failed calls are counted below */
    });
    if (options.registry) {
      this.failures = new Counter({
        name: 'cyclone_sse_cluster_directory_failures_total',
        help: 'cluster directory calls that failed (Redis unreachable), by op: report, remove, read',
        labelNames: ['op'] as const,
        registers: [options.registry],
      });
      for (const op of DIRECTORY_OPS) this.failures.inc({ op }, 0);
    }
  }

  async connect(): Promise<void> {
    await this.redis.connect();
  }

  async report(nodeId: string, counts: Iterable<[string, number]>): Promise<void> {
    const key = this.keys.node(nodeId);
    const flat: (string | number)[] = [];
    for (const [ch, n] of counts) flat.push(ch, n);
    const m = this.redis.multi().del(key);
    if (flat.length > 0) m.hset(key, ...flat).expire(key, this.ttlSeconds);
    m.zadd(this.keys.nodes, String(Date.now() + this.ttlSeconds * 1000), nodeId);
    await this.track('report', m.exec());
  }

  async remove(nodeId: string): Promise<void> {
    await this.track('remove', this.redis.multi().del(this.keys.node(nodeId)).zrem(this.keys.nodes, nodeId).exec());
  }

  /** Sum of the live nodes' counts per channel. */
  channels(): Promise<Map<string, number>> {
    return this.track('read', this.read());
  }

  private async read(): Promise<Map<string, number>> {
    await this.redis.zremrangebyscore(this.keys.nodes, '-inf', Date.now());
    const nodes = await this.redis.zrange(this.keys.nodes, '0', '-1');
    const out = new Map<string, number>();
    if (nodes.length === 0) return out;
    const p = this.redis.pipeline();
    for (const id of nodes) p.hgetall(this.keys.node(id));
    for (const [err, res] of (await p.exec()) ?? []) {
      if (err) throw err;
      for (const [ch, n] of Object.entries(res as Record<string, string>)) out.set(ch, (out.get(ch) ?? 0) + Number(n));
    }
    return out;
  }

  /** Counts a failure, logs the first of a run and the recovery after it; passes the outcome on. */
  private async track<T>(op: DirectoryOp, call: Promise<T>): Promise<T> {
    try {
      const result = await call;
      if (this.failing.delete(op))
        this.options.logger?.info('cluster directory reachable again', { event: 'cluster_directory_recovered', op });
      return result;
    } catch (err) {
      this.failures?.inc({ op });
      if (!this.failing.has(op)) {
        this.failing.add(op);
        this.options.logger?.warn(`cluster directory ${op} failed; retrying every interval`, {
          event: 'cluster_directory_failed',
          op,
          ...errorFields(err),
        });
      }
      throw err;
    }
  }

  async close(): Promise<void> {
    this.redis.disconnect();
  }
}
