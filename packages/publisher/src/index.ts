export { registerPublishRoutes, type PublishRouteOptions } from './http/publish-route.js';
export { PublishService, type Source } from './publish-service.js';
export { createPublisherMetrics, type PublisherMetrics } from './metrics.js';
export { SecretCheck } from './auth.js';
export { parseForm, parseJson } from './parse.js';
export { createPublisherParts, registerPublisherApp, type PublishInputSource, type PublisherParts } from './publisher-server.js';
export { RedisIngest } from './redis-ingest/ingest.js';
export { startPublisherNode, type PublisherNode } from './node.js';
export { AmqpConsumer } from './amqp/consumer.js';
