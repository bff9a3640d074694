import type { Broker, Config, Logger } from '@cyclone-sse/common';
import { startEdgeNode, type EdgeNode, type ExtraRoutes } from '@cyclone-sse/edge';
import { createPublisherParts, registerPublisherApp } from '@cyclone-sse/publisher';

/** The publish API on the edge's apps, sharing its broker, metrics registry and CORS policy. */
export const publishRoutes: ExtraRoutes = ({ config, logger, broker, registry, cors }) => {
  const parts = createPublisherParts(config, broker, logger, registry, cors);
  return (app) => registerPublisherApp(app, parts, config, logger);
};

/**
 * The all-in-one: one process that serves event streams and the publish API on the same port,
 * over the in-memory broker (or Redis with --redis-url). The only package that imports both the
 * edge and the publisher.
 */
export function startAllInOneNode(config: Config, logger: Logger, opts: { broker?: Broker } = {}): Promise<EdgeNode> {
  return startEdgeNode(config, logger, { broker: opts.broker, routes: publishRoutes });
}
