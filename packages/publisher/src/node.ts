import {
  Gauge,
  assertNativeUws,
  RedisDirectory,
  BrokerDowntime,
  StartupError,
  registerDowntimeMetrics,
  createBroker,
  redisConnectionConfig,
  usesRedis,
  closeApp,
  closeListen,
  createInternalApp,
  isObservableBroker,
  listen,
  registerNotFound,
  uWS,
  type Broker,
  type Config,
  type Listening,
  type Logger,
  type Registry,
} from '@cyclone-sse/common';
import { AmqpConsumer } from './amqp/consumer.js';
import { createPublisherParts, registerPublisherApp, type PublishInputSource } from './publisher-server.js';
import { RedisIngest } from './redis-ingest/ingest.js';

export interface PublisherNode {
  port: number;
  metricsPort: number | undefined;
  broker: Broker;
  registry: Registry;
  sources: PublishInputSource[];
  stop(): Promise<void>;
}

/**
 * The publisher service: HTTP publish API, AMQP consumer and legacy Redis ingest, all sequenced
 * by the Redis broker (publish-only: no subscriber connection).
 */
export async function startPublisherNode(config: Config, logger: Logger, broker?: Broker): Promise<PublisherNode> {
  assertNativeUws();
  if (!usesRedis(config) && !broker)
    throw new StartupError('CONFIG_INVALID', '--redis-url, --redis-sentinels or --redis-cluster-nodes is required');
  // publish-only: no subscriber connection
  const b = broker ?? createBroker(config, logger, { subscribe: false });
  const parts = createPublisherParts(config, b, logger);
  const redisUp = new Gauge({
    name: 'cyclone_sse_publisher_redis_connected',
    help: '1 while the Redis command connection is ready',
    registers: [parts.registry],
    collect() {
      this.set(b.isReady() ? 1 : 0);
    },
  });
  void redisUp;
  if (!broker && isObservableBroker(b)) b.observe(parts.registry, 'publisher');
  const downtime = b.kind.startsWith('redis') ? new BrokerDowntime(() => b.isReady()) : undefined;
  if (downtime) registerDowntimeMetrics(parts.registry, 'publisher', downtime);
  const app = uWS.App();
  registerPublisherApp(app, parts, config, logger);
  registerNotFound(app, parts.cors, logger);

  const sources: PublishInputSource[] = [];
  let directory: RedisDirectory | undefined;
  if (config.amqpUrl) {
    if (config.amqpExchangeType === 'direct' && usesRedis(config)) {
      directory = new RedisDirectory(redisConnectionConfig(config), config.redisPrefix, 10, {
        logger: logger.child({ component: 'cluster-directory' }),
        registry: parts.registry,
      });
    }
    sources.push(
      new AmqpConsumer(
        {
          url: config.amqpUrl,
          exchange: config.amqpExchange,
          exchangeType: config.amqpExchangeType as 'topic' | 'direct' | 'fanout',
          queue: config.amqpQueue,
          prefetch: config.amqpPrefetch,
          deadLetterExchange: config.amqpDeadLetterExchange,
          maxChannelLength: config.maxChannelLength,
          maxBody: config.maxBody,
          bindingsRefreshMs: config.clusterReportInterval * 500,
        },
        parts.service,
        parts.registry,
        logger.child({ component: 'amqp' }),
        directory ? async () => (await directory!.channels()).keys() : undefined,
      ),
    );
  }
  if (config.redisIngestPattern) {
    if (!usesRedis(config))
      throw new StartupError('CONFIG_INVALID', '--redis-ingest-pattern needs --redis-url, --redis-sentinels or --redis-cluster-nodes');
    sources.push(
      new RedisIngest(
        {
          connection: redisConnectionConfig(config),
          prefix: config.redisPrefix,
          pattern: config.redisIngestPattern,
          maxChannelLength: config.maxChannelLength,
          maxBody: config.maxBody,
        },
        parts.service,
        parts.registry,
        logger.child({ component: 'redis-ingest' }),
      ),
    );
  }
  let started = false;
  const internal = createInternalApp(parts.registry, () => {
    // Only Redis gates readiness: a publisher holds no streams and cannot publish without Redis
    // (it would answer 503), while an AMQP outage must not take the HTTP publish API out of the
    // load balancer. Inputs that are down are named in the reason.
    if (!started) return { ready: false, reason: `starting: waiting for the ${b.kind} broker` };
    const details = downtime?.readyFields();
    if (!b.isReady()) return { ready: false, reason: 'redis not ready', details };
    const down = sources.filter((s) => !s.isReady()).map((s) => `${s.name} reconnecting`);
    return { ready: true, reason: down.length > 0 ? down.join(', ') : 'ok', details };
  });

  // The internal port first: /livez answers while the broker makes its first connection.
  let int: Listening | undefined;
  if (config.metricsPort >= 0) int = await listen(internal, config.metricsListen, config.metricsPort);
  await b.start();
  downtime?.start();
  started = true;
  await directory?.connect().catch(() => undefined);
  for (const s of sources) await s.start();
  let pub: Listening | undefined;
  try {
    pub = await listen(app, config.listen, config.port);
  } catch (err) {
    closeListen(pub);
    closeListen(int);
    for (const s of sources) await s.stop();
    downtime?.stop();
    await b.close();
    throw err;
  }
  let stopped = false;
  return {
    port: pub.port,
    metricsPort: int?.port,
    broker: b,
    registry: parts.registry,
    sources,
    async stop() {
      if (stopped) return;
      stopped = true;
      closeListen(pub);
      for (const s of sources) await s.stop();
      closeListen(int);
      closeApp(app);
      closeApp(internal);
      await directory?.close();
      downtime?.stop();
      await b.close();
    },
  };
}
