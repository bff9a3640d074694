#!/usr/bin/env node
import { createLogger, loadConfig, runServices } from '@cyclone-sse/common';
import { startAllInOne, type AllInOne } from './all-in-one-server.js';

const config = await loadConfig('all-in-one');
const logger = createLogger(config.logLevel, { service: 'cyclone-sse' });
let hub: AllInOne | undefined;

await runServices(
  [
    {
      name: 'all-in-one',
      async start() {
        hub = await startAllInOne(config, logger);
        const host = config.listen === '0.0.0.0' ? '127.0.0.1' : config.listen;
        const base = `http://${host.includes(':') ? `[${host}]` : host}:${hub.port}`;
        logger.info('listening', { event: 'listening', port: hub.port, metricsPort: hub.metricsPort, broker: hub.broker.kind });
        process.stdout.write(
          [
            '',
            `cyclone-sse is running on ${base} (${hub.broker.kind} broker)`,
            '',
            '  Subscribe (browser console):',
            `    new EventSource('${base}/?channels=base').onmessage = (e) => console.log(e.lastEventId, e.data)`,
            '  Subscribe (terminal):',
            `    curl -N '${base}/?channels=base'`,
            '  Publish:',
            `    curl -X POST -d "message=%5B123%2C+124%5D&channel=base" ${base}/publish`,
            `    curl -X POST -H 'Content-Type: application/json' -d '{"channel":"base","data":{"hello":"world"}}' ${base}/publish`,
            `  Stats: ${base}/stats   Metrics: ${hub.metricsPort !== undefined ? `http://${host}:${hub.metricsPort}/metrics` : 'disabled'}`,
            '',
          ].join('\n') + '\n',
        );
      },
      async stop() {
        await hub?.stop(config.drainSeconds);
      },
    },
  ],
  logger,
);
