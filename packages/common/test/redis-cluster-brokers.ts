// The set-up the RedisClusterBroker tests share (redis-cluster-broker.test.ts,
// redis-cluster-wait.test.ts): one Redis Cluster per test file, and per test a publisher and an
// edge on a fresh key prefix. It builds the brokers from this package's src (not the built dist
// that @cyclone-sse/testkit would import) and records with the contract's RecordingSink, so it
// lives next to broker.contract.ts rather than in the testkit.
import { after, before } from 'node:test';
import { startRedisCluster, type RedisCluster, type RedisClusterOptions } from '@cyclone-sse/testkit';
import { RedisClusterBroker, type Logger, type RedisClusterBrokerOptions, type RedisConnectionConfig } from '../src/index.js';
import { RecordingSink } from './broker.contract.js';

/** History settings of every broker of these tests. */
const HISTORY = { historySize: 1000, historyTtlSeconds: 3600, idempotencyTtlSeconds: 60 };

/** A test file's Redis Cluster: read `cluster` and `connection` (its seed nodes) inside tests and hooks only. */
export interface FileRedisCluster {
  readonly cluster: RedisCluster;
  readonly connection: RedisConnectionConfig;
}

/** Starts a Redis Cluster before the file's tests and stops it after them (call at the top level of a test file). */
export function fileRedisCluster(options: RedisClusterOptions): FileRedisCluster {
  let started: FileRedisCluster | undefined;
  before(async () => {
    const cluster = await startRedisCluster(options);
    started = { cluster, connection: { clusterNodes: cluster.seedList.map((s) => ({ host: s.host, port: s.port })) } };
  });
  after(async () => {
    await started?.cluster.close();
  });
  const get = (): FileRedisCluster => {
    if (!started) throw new Error('the Redis Cluster is started in before(): read it inside a test');
    return started;
  };
  return {
    get cluster() {
      return get().cluster;
    },
    get connection() {
      return get().connection;
    },
  };
}

export interface ClusterBrokersOptions {
  connection: RedisConnectionConfig;
  /** The test's own key prefix. */
  prefix: string;
  partitions: number;
  logger: Logger;
  /** More options of the publisher (e.g. `waitReplicas`). */
  publisher?: Partial<RedisClusterBrokerOptions>;
}

/**
 * A publisher (no subscriber connections) and an edge (probes every 200 ms, slot map every
 * 500 ms) whose sink records, both started; closed when the test ends. `watch` makes the edge and
 * its sink serve the channels and resolves once their subscriptions are confirmed.
 */
export async function clusterBrokers(t: { after(fn: () => unknown): void }, o: ClusterBrokersOptions) {
  const { connection, prefix, partitions, logger } = o;
  const publisher = new RedisClusterBroker({ ...HISTORY, connection, prefix, partitions, subscribe: false, logger, ...o.publisher });
  const edge = new RedisClusterBroker({ ...HISTORY, connection, prefix, partitions, logger, probeIntervalMs: 200, slotRefreshMs: 500 });
  const sink = new RecordingSink();
  edge.subscribe(sink);
  t.after(async () => {
    await publisher.close();
    await edge.close();
  });
  await Promise.all([publisher.start(), edge.start()]);
  const watch = async (channels: string[]) => {
    for (const c of channels) {
      sink.active.add(c);
      edge.watch(c);
    }
    await edge.whenSubscribed(channels);
  };
  return { publisher, edge, sink, watch, prefix };
}
