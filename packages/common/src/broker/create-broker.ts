import type { Config } from '../config/options.js';
import type { Logger } from '../log/logger.js';
import type { Broker } from './broker.js';
import { MemoryBroker } from './memory-broker.js';
import { RedisBroker } from './redis-broker.js';
import { brokerLimits } from './publish-prepare.js';
import { describeRedisConnection, redisConnectionConfig, usesRedis, usesRedisCluster } from './redis-connection.js';
import { RedisClusterBroker } from './redis-cluster-broker.js';

/** The partition count of a deployment: --redis-partitions, 0 = 16 on a Redis Cluster, 1 otherwise. */
export function partitionCount(config: { redisPartitions?: number; redisClusterNodes?: readonly string[] }): number {
  const p = config.redisPartitions ?? 0;
  if (p > 0) return p;
  return usesRedisCluster(config) ? DEFAULT_CLUSTER_PARTITIONS : 1;
}

/** Partitions on a Redis Cluster when --redis-partitions is 0 (docs/benchmarks.md: 5-6 per shard of 3). */
export const DEFAULT_CLUSTER_PARTITIONS = 16;

export interface CreateBrokerOptions {
  /**
   * Open the Redis subscriber connection (default true). The publisher passes false: it only
   * sequences and publishes, nothing is delivered to it.
   */
  subscribe?: boolean;
}

/**
 * The broker a node runs on, from its configuration: a RedisBroker on `--redis-url` or
 * `--redis-sentinels` (connection settings from redis-connection.ts, history size
 * and TTLs, key prefix), else the in-memory broker (single process: the all-in-one and tests).
 */
export function createBroker(config: Config, logger: Logger, opts: CreateBrokerOptions = {}): Broker {
  const history = {
    historySize: config.historySize,
    historyTtlSeconds: config.historyTtl,
    idempotencyTtlSeconds: config.idempotencyTtl,
    ...brokerLimits(config),
  };
  if (usesRedis(config)) {
    const connection = redisConnectionConfig(config);
    const log = logger.child({ component: 'redis' });
    log.info('redis connection', { event: 'redis_config', ...describeRedisConnection(connection) });
    if (usesRedisCluster(config))
      return new RedisClusterBroker({
        ...history,
        connection,
        prefix: config.redisPrefix,
        partitions: partitionCount(config),
        subscribe: opts.subscribe ?? true,
        waitReplicas: config.redisWaitReplicas ?? 0,
        waitTimeoutMs: config.redisWaitTimeout ?? 1000,
        logger: log,
      });
    return new RedisBroker({
      ...history,
      connection,
      prefix: config.redisPrefix,
      subscribe: opts.subscribe ?? true,
      waitReplicas: config.redisWaitReplicas ?? 0,
      waitTimeoutMs: config.redisWaitTimeout ?? 1000,
      logger: log,
    });
  }
  return new MemoryBroker(history);
}
