#!/usr/bin/env node
import { createLogger, loadConfig, runServices, usesRedis } from '@cyclone-sse/common';
import { startEdgeNode, type EdgeNode } from './node.js';
import { installSafetyNet } from './safety-net.js';

const config = await loadConfig('edge');
const logger = createLogger(config.logLevel, { service: 'cyclone-sse-edge' });
if (!usesRedis(config)) {
  process.stderr.write(
    'cyclone-sse-edge: CONFIG_INVALID: --redis-url, --redis-sentinels or --redis-cluster-nodes is required (use cyclone-sse for a single process without Redis)\n',
  );
  process.exit(2);
}
let node: EdgeNode | undefined;
installSafetyNet(logger, () => node?.edge.metrics.internalErrors.inc({ where: 'process' }));

await runServices(
  [
    {
      name: 'edge',
      async start() {
        node = await startEdgeNode(config, logger);
        logger.info('listening', {
          event: 'listening',
          port: node.port,
          metricsPort: node.metricsPort,
          sslPort: node.sslPort,
          node: node.nodeId,
        });
      },
      async stop() {
        await node?.stop(config.drainSeconds);
      },
    },
  ],
  logger,
);
