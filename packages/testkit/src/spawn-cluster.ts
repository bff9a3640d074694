import type { TestContext } from 'node:test';
import { randomBytes } from 'node:crypto';
import { startNginx, type Nginx } from './nginx.js';
import { spawnNode, type NodeProcess } from './process.js';

export interface Cluster {
  prefix: string;
  edges: NodeProcess[];
  publishers: NodeProcess[];
  nginx: Nginx;
  base: string;
}

/** Spawns edges and publishers on one Redis behind a private nginx; everything stops at test end. */
export async function startCluster(
  t: TestContext,
  opts: {
    /** The Redis of every process; or give `redisArgs` (e.g. `--redis-sentinels …`). */
    redisUrl?: string;
    redisArgs?: string[];
    edges?: number;
    publishers?: number;
    edgeArgs?: string[];
    publisherArgs?: string[];
    prefix?: string;
  },
): Promise<Cluster> {
  const prefix = opts.prefix ?? `t${randomBytes(4).toString('hex')}`;
  const redis = [...(opts.redisUrl !== undefined ? ['--redis-url', opts.redisUrl] : []), ...(opts.redisArgs ?? [])];
  const common = [...redis, '--redis-prefix', prefix, '--log-level', 'info'];
  const edges: NodeProcess[] = [];
  const publishers: NodeProcess[] = [];
  t.after(async () => {
    await Promise.all([...edges, ...publishers].map((p) => p.stop(3000)));
  });
  for (let i = 0; i < (opts.edges ?? 2); i++)
    edges.push(await spawnNode('edge', [...common, '--retry', '300', '--drain-seconds', '0', ...(opts.edgeArgs ?? [])]));
  for (let i = 0; i < (opts.publishers ?? 1); i++)
    publishers.push(await spawnNode('publisher', [...common, ...(opts.publisherArgs ?? [])]));
  const nginx = await startNginx({ edges: edges.map((e) => e.port), publishers: publishers.map((p) => p.port) });
  t.after(() => nginx.stop());
  return { prefix, edges, publishers, nginx, base: nginx.base };
}
