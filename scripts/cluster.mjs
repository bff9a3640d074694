#!/usr/bin/env node
// A local cluster on loopback: 2 edges + 1 publisher on Redis, behind nginx.
// Usage: npm run cluster [-- --redis-url redis://127.0.0.1:6379 --edges 2]
//        npm run cluster -- --redis-cluster    (its own 6-node Redis Cluster: 3 primaries, 3 replicas)
// Ctrl-C stops everything this script started.
import { parseArgs } from 'node:util';
import { spawnNode, startNginx, startRedisCluster } from '@cyclone-sse/testkit';

const { values } = parseArgs({
  options: {
    'redis-url': { type: 'string', default: process.env.CYCLONE_SSE_REDIS_URL ?? 'redis://127.0.0.1:6379' },
    'redis-cluster': { type: 'boolean', default: false },
    'redis-prefix': { type: 'string', default: 'cyclone-sse' },
    edges: { type: 'string', default: '2' },
    port: { type: 'string', default: '8080' },
    'amqp-url': { type: 'string', default: '' },
  },
});
const started = [];
let nginx;
let redisCluster;
let stopping = false;
const stop = async (code = 0) => {
  if (stopping) return;
  stopping = true;
  await nginx?.stop();
  await Promise.all(started.map((p) => p.stop(10_000)));
  await redisCluster?.close();
  process.exit(code);
};
process.on('SIGINT', () => stop());
process.on('SIGTERM', () => stop());
try {
  if (values['redis-cluster']) {
    console.log('starting a Redis Cluster: 6 redis-server processes (3 primaries, 3 replicas)…');
    redisCluster = await startRedisCluster({ primaries: 3, replicasPerPrimary: 1, nodeTimeoutMs: 2000, startTimeoutMs: 60_000 });
  }
  const redis = redisCluster ? ['--redis-cluster-nodes', redisCluster.seeds] : ['--redis-url', values['redis-url']];
  const common = [...redis, '--redis-prefix', values['redis-prefix']];
  for (let i = 0; i < Number(values.edges); i++) started.push(await spawnNode('edge', [...common, '--drain-seconds', '2']));
  const pubArgs = values['amqp-url'] ? ['--amqp-url', values['amqp-url']] : [];
  const publisher = await spawnNode('publisher', [...common, ...pubArgs]);
  started.push(publisher);
  nginx = await startNginx({ edges: started.slice(0, -1).map((e) => e.port), publishers: [publisher.port], port: Number(values.port) });
  const base = nginx.base;
  let redisLines = '';
  if (redisCluster) {
    const primaries = await redisCluster.primaryPorts();
    const ports = redisCluster.nodes.map((n) => `${n.port}${primaries.includes(n.port) ? ' (primary)' : ''}`);
    redisLines = `
  redis cluster: ${ports.join(', ')}
             (--redis-cluster-nodes ${redisCluster.seeds})
  redis-cli -c -p ${redisCluster.nodes[0].port} cluster shards   # the slot map`;
  }
  console.log(`
cyclone-sse cluster on ${base} (nginx config: ${nginx.dir}/nginx.conf)
  edges:     ${started
    .slice(0, -1)
    .map((e) => `${e.base} (metrics ${e.metricsBase}/metrics)`)
    .join('\n             ')}
  publisher: ${publisher.base} (metrics ${publisher.metricsBase}/metrics)${redisLines}

  curl -N '${base}/?channels=base'
  curl -X POST -d "message=%5B123%2C+124%5D&channel=base" ${base}/publish
  curl '${started[0].metricsBase}/stats?scope=cluster'   # cluster-wide counts: internal port (never anonymous on ${base})
Ctrl-C stops everything.`);
} catch (err) {
  console.error(err.message);
  await stop(1);
}
