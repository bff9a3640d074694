import { CorsPolicy, createRegistry, type Broker, type Config, type Logger, type Registry, type TemplatedApp } from '@cyclone-sse/common';
import { registerPublishRoutes } from './http/publish-route.js';
import { createPublisherMetrics, type PublisherMetrics } from './metrics.js';
import { PublishService } from './publish-service.js';

/** An input that feeds the publish service (AMQP consumer, legacy Redis ingest). */
export interface PublishInputSource {
  readonly name: string;
  start(): Promise<void>;
  stop(): Promise<void>;
  /** For /readyz: false while the source wants to run but is disconnected. */
  isReady(): boolean;
}

export interface PublisherParts {
  service: PublishService;
  metrics: PublisherMetrics;
  registry: Registry;
  cors: CorsPolicy;
}

/** Registers the publish API on an app (shared by the publisher service and the all-in-one). */
export function createPublisherParts(
  config: Config,
  broker: Broker,
  logger: Logger,
  registry = createRegistry(),
  cors = new CorsPolicy(config.corsOrigins),
): PublisherParts {
  const metrics = createPublisherMetrics(registry);
  const service = new PublishService(broker, metrics, logger.child({ component: 'publisher' }));
  return { service, metrics, registry, cors };
}

export function registerPublisherApp(app: TemplatedApp, parts: PublisherParts, config: Config, logger: Logger): void {
  registerPublishRoutes(app, {
    service: parts.service,
    cors: parts.cors,
    metrics: parts.metrics,
    logger: logger.child({ component: 'publish' }),
    options: {
      httpSecret: config.httpSecret,
      maxBody: config.maxBody,
      maxBatch: config.maxBatch,
      maxChannelLength: config.maxChannelLength,
      maxJsonDepth: config.maxJsonDepth,
      maxChannelsPerPublish: config.maxChannelsPerPublish,
      jwt: config.publisherJwtKey
        ? {
            key: config.publisherJwtKey,
            algorithms: config.jwtAlgorithms,
            audience: config.jwtAudience,
            issuer: config.jwtIssuer,
            allowWithoutExp: config.allowTokensWithoutExp,
          }
        : undefined,
    },
  });
}
