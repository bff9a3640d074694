import { Redis } from 'ioredis';

/**
 * Where every edge reports its channel subscriber counts, with an expiry, so the cluster-wide
 * view (GET /stats?scope=cluster, the AMQP direct-exchange bindings) forgets dead edges.
 *
 * Keys: `<p>:nodes` sorted set node id → report expiry (ms); `<p>:node:<id>` hash channel → count.
 */
export class RedisDirectory {
  private readonly redis: Redis;

  constructor(
    url: string,
    private readonly prefix: string,
    private readonly ttlSeconds: number,
  ) {
    this.redis = new Redis(url, { enableOfflineQueue: false, maxRetriesPerRequest: 1, lazyConnect: true });
    this.redis.on('error', () => {
      /* state is reported by the brokers; a failed report is retried next interval */
    });
  }

  async connect(): Promise<void> {
    await this.redis.connect();
  }

  async report(nodeId: string, counts: Iterable<[string, number]>): Promise<void> {
    const key = `${this.prefix}:node:${nodeId}`;
    const flat: (string | number)[] = [];
    for (const [ch, n] of counts) flat.push(ch, n);
    const m = this.redis.multi().del(key);
    if (flat.length > 0) m.hset(key, ...flat).expire(key, this.ttlSeconds);
    m.zadd(`${this.prefix}:nodes`, String(Date.now() + this.ttlSeconds * 1000), nodeId);
    await m.exec();
  }

  async remove(nodeId: string): Promise<void> {
    await this.redis.multi().del(`${this.prefix}:node:${nodeId}`).zrem(`${this.prefix}:nodes`, nodeId).exec();
  }

  /** Sum of the live nodes' counts per channel. */
  async channels(): Promise<Map<string, number>> {
    const nodesKey = `${this.prefix}:nodes`;
    await this.redis.zremrangebyscore(nodesKey, '-inf', Date.now());
    const nodes = await this.redis.zrange(nodesKey, '0', '-1');
    const out = new Map<string, number>();
    if (nodes.length === 0) return out;
    const p = this.redis.pipeline();
    for (const id of nodes) p.hgetall(`${this.prefix}:node:${id}`);
    for (const [err, res] of (await p.exec()) ?? []) {
      if (err) throw err;
      for (const [ch, n] of Object.entries(res as Record<string, string>)) out.set(ch, (out.get(ch) ?? 0) + Number(n));
    }
    return out;
  }

  async close(): Promise<void> {
    this.redis.disconnect();
  }
}
