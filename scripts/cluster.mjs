#!/usr/bin/env node
// A local cluster on loopback: 2 edges + 1 publisher on Redis, behind nginx.
// Usage: npm run cluster [-- --redis-url redis://127.0.0.1:6379 --edges 2]
// Ctrl-C stops everything this script started.
import { parseArgs } from 'node:util';
import { spawnNode, startNginx } from '@cyclone-sse/testkit';

const { values } = parseArgs({
  options: {
    'redis-url': { type: 'string', default: process.env.CYCLONE_SSE_REDIS_URL ?? 'redis://127.0.0.1:6379' },
    'redis-prefix': { type: 'string', default: 'cyclone-sse' },
    edges: { type: 'string', default: '2' },
    port: { type: 'string', default: '8080' },
    'amqp-url': { type: 'string', default: '' },
  },
});
const common = ['--redis-url', values['redis-url'], '--redis-prefix', values['redis-prefix']];
const started = [];
let nginx;
const stop = async () => {
  await nginx?.stop();
  await Promise.all(started.map((p) => p.stop(10_000)));
  process.exit(0);
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
try {
  for (let i = 0; i < Number(values.edges); i++) started.push(await spawnNode('edge', [...common, '--drain-seconds', '2']));
  const pubArgs = values['amqp-url'] ? ['--amqp-url', values['amqp-url']] : [];
  const publisher = await spawnNode('publisher', [...common, ...pubArgs]);
  started.push(publisher);
  nginx = await startNginx({ edges: started.slice(0, -1).map((e) => e.port), publishers: [publisher.port], port: Number(values.port) });
  const base = nginx.base;
  console.log(`
cyclone-sse cluster on ${base} (nginx config: ${nginx.dir}/nginx.conf)
  edges:     ${started
    .slice(0, -1)
    .map((e) => `${e.base} (metrics ${e.metricsBase}/metrics)`)
    .join('\n             ')}
  publisher: ${publisher.base} (metrics ${publisher.metricsBase}/metrics)

  curl -N '${base}/?channels=base'
  curl -X POST -d "message=%5B123%2C+124%5D&channel=base" ${base}/publish
  curl '${started[0].metricsBase}/stats?scope=cluster'   # cluster-wide counts: internal port (never anonymous on ${base})
Ctrl-C stops everything.`);
} catch (err) {
  console.error(err.message);
  await stop();
}
