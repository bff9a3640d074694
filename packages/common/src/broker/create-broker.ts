import type { Config } from '../config/options.js';
import type { Logger } from '../log/logger.js';
import type { Broker } from './broker.js';
import { MemoryBroker } from './memory-broker.js';
import { RedisBroker } from './redis-broker.js';
import { brokerLimits } from './publish-prepare.js';

export interface CreateBrokerOptions {
  /**
   * Open the Redis subscriber connection (default true). The publisher passes false: it only
   * sequences and publishes, nothing is delivered to it.
   */
  subscribe?: boolean;
}

/**
 * The broker a node runs on, from its configuration: a RedisBroker on `--redis-url` (history size
 * and TTLs, key prefix), else the in-memory broker (single process: the all-in-one and tests).
 */
export function createBroker(config: Config, logger: Logger, opts: CreateBrokerOptions = {}): Broker {
  const history = {
    historySize: config.historySize,
    historyTtlSeconds: config.historyTtl,
    idempotencyTtlSeconds: config.idempotencyTtl,
    ...brokerLimits(config),
  };
  if (config.redisUrl) {
    return new RedisBroker({
      ...history,
      url: config.redisUrl,
      prefix: config.redisPrefix,
      subscribe: opts.subscribe ?? true,
      waitReplicas: config.redisWaitReplicas ?? 0,
      waitTimeoutMs: config.redisWaitTimeout ?? 1000,
      logger: logger.child({ component: 'redis' }),
    });
  }
  return new MemoryBroker(history);
}
