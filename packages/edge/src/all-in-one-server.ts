import {
  MemoryBroker,
  createRegistry,
  isNativeUws,
  NATIVE_UWS_MESSAGE,
  uWS,
  type Broker,
  type Config,
  type Logger,
  type Registry,
} from '@cyclone-sse/common';
import { PublishService, createPublisherMetrics, registerPublishRoutes } from '@cyclone-sse/publisher';
import { Edge, createInternalApp, listenBoth, registerNotFound, type RunningServer } from './server.js';

export interface AllInOne {
  port: number;
  metricsPort: number | undefined;
  broker: Broker;
  edge: Edge;
  registry: Registry;
  /** Drains streams over `drainSeconds` (default 0), closes listeners and the broker. */
  stop(drainSeconds?: number): Promise<void>;
}

export function createBroker(config: Config): Broker {
  const history = {
    historySize: config.historySize,
    historyTtlSeconds: config.historyTtl,
    idempotencyTtlSeconds: config.idempotencyTtl,
  };
  if (config.redisUrl) {
    throw new Error('--redis-url is not supported by this build yet');
  }
  return new MemoryBroker(history);
}

/**
 * One process serving the edge routes and the publish routes on one port, on the in-memory
 * broker (or Redis with --redis-url). What `npm start` runs.
 */
export async function startAllInOne(config: Config, logger: Logger, broker: Broker = createBroker(config)): Promise<AllInOne> {
  if (!isNativeUws()) throw new Error(NATIVE_UWS_MESSAGE);
  const registry = createRegistry();
  const edge = new Edge({ config, broker, registry, logger });
  const publisherMetrics = createPublisherMetrics(registry);
  const service = new PublishService(broker, publisherMetrics, logger.child({ component: 'publisher' }));

  const app = uWS.App();
  edge.register(app);
  registerPublishRoutes(app, {
    service,
    cors: edge.cors,
    metrics: publisherMetrics,
    logger: logger.child({ component: 'publish' }),
    options: { httpSecret: config.httpSecret, maxBody: config.maxBody, maxBatch: config.maxBatch, maxChannelLength: config.maxChannelLength },
  });
  registerNotFound(app, edge.cors, logger);
  const internal = createInternalApp(registry, () => {
    if (edge.draining) return { ready: false, reason: 'draining' };
    if (!broker.isReady()) return { ready: false, reason: `${broker.kind} broker not ready` };
    return { ready: true, reason: 'ok' };
  });

  await broker.start();
  edge.start();
  let server: RunningServer;
  try {
    server = await listenBoth(app, internal, config);
  } catch (err) {
    await broker.close();
    throw err;
  }
  let stopped = false;
  return {
    port: server.port,
    metricsPort: server.metricsPort,
    broker,
    edge,
    registry,
    async stop(drainSeconds = 0) {
      if (stopped) return;
      stopped = true;
      await edge.drain(drainSeconds);
      server.close();
      await broker.close();
    },
  };
}
