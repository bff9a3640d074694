#!/usr/bin/env node
import { createLogger, loadConfig, runServices, usesRedis } from '@cyclone-sse/common';
import { startPublisherNode, type PublisherNode } from './node.js';

const config = await loadConfig('publisher');
const logger = createLogger(config.logLevel, { service: 'cyclone-sse-publisher' });
if (!usesRedis(config)) {
  process.stderr.write('cyclone-sse-publisher: CONFIG_INVALID: --redis-url, --redis-sentinels or --redis-cluster-nodes is required\n');
  process.exit(2);
}
let node: PublisherNode | undefined;

await runServices(
  [
    {
      name: 'publisher',
      async start() {
        node = await startPublisherNode(config, logger);
        logger.info('listening', {
          event: 'listening',
          port: node.port,
          metricsPort: node.metricsPort,
          inputs: ['http', ...node.sources.map((s) => s.name)],
        });
      },
      async stop() {
        await node?.stop();
      },
    },
  ],
  logger,
);
