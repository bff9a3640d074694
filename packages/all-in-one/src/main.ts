#!/usr/bin/env node
import { createLogger, loadConfig, runServices } from '@cyclone-sse/common';
import { installSafetyNet, type EdgeNode } from '@cyclone-sse/edge';
import { startAllInOneNode } from './node.js';

const config = await loadConfig('all-in-one');
const logger = createLogger(config.logLevel, { service: 'cyclone-sse' });
let node: EdgeNode | undefined;
installSafetyNet(logger, () => node?.edge.metrics.internalErrors.inc({ where: 'process' }));

await runServices(
  [
    {
      name: 'all-in-one',
      async start() {
        node = await startAllInOneNode(config, logger);
        const host = config.listen === '0.0.0.0' || config.listen === '::' ? '127.0.0.1' : config.listen;
        const base = `http://${host.includes(':') ? `[${host}]` : host}:${node.port}`;
        logger.info('listening', {
          event: 'listening',
          port: node.port,
          metricsPort: node.metricsPort,
          sslPort: node.sslPort,
          broker: node.broker.kind,
        });
        process.stdout.write(
          [
            '',
            `cyclone-sse is running on ${base} (${node.broker.kind} broker)${node.sslPort !== undefined ? `, HTTPS on port ${node.sslPort}` : ''}`,
            ...(config.demo ? [`  Live demo page: ${base}/demo`] : []),
            '',
            '  Subscribe (browser console):',
            `    new EventSource('${base}/?channels=base').onmessage = (e) => console.log(e.lastEventId, e.data)`,
            '  Subscribe (terminal):',
            `    curl -N '${base}/?channels=base'`,
            '  Publish:',
            `    curl -X POST -d "message=%5B123%2C+124%5D&channel=base" ${base}/publish`,
            `    curl -X POST -H 'Content-Type: application/json' -d '{"channel":"base","data":{"hello":"world"}}' ${base}/publish`,
            `  Stats: ${base}/stats   Metrics: ${node.metricsPort !== undefined ? `http://${host}:${node.metricsPort}/metrics` : 'disabled'}`,
            '',
          ].join('\n') + '\n',
        );
      },
      async stop() {
        await node?.stop(config.drainSeconds);
      },
    },
  ],
  logger,
);
