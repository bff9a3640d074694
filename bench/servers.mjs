/**
 * The servers of `npm run bench`, each started fresh and pinned with `taskset`:
 *
 *   naive       bench/naive-server.mjs (Node http)                      core 0
 *   all-in-one  packages/all-in-one/dist/main.js (memory broker)        core 0
 *   edge-redis  packages/edge/dist/main.js on Redis                     core 0
 *               + packages/publisher/dist/main.js + redis-server        core 1 (with the load generator)
 *   edge-cluster the same on a Redis Cluster of 3 primaries             core 0
 *               (--redis-cluster-nodes, 16 partitions; publisher and the
 *               3 redis-server nodes on core 1)
 *   floor-chain bench/floor-edge.mjs on Redis                           core 0
 *               + bench/floor-publisher.mjs + redis-server              core 1
 *               (not a cyclone server: the floor of the architecture, the cheapest chain with
 *               its hops; only by `--servers`)
 *
 * For edge-redis, edge-cluster and floor-chain the "server" CPU is the edge alone; publisher +
 * redis-server are reported separately ("aux"). Memory is always the RSS of the process holding
 * the subscribers.
 *
 * cyclone-sse's processes run with their V8 flags (V8_FLAGS_BY_COMPONENT in
 * packages/common/src/runtime/v8-flags.ts), exactly as
 * its bin shims, `npm start` and the image start them: the bench measures what ships. The naive
 * baseline keeps Node's defaults.
 */
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CLIENT_CORE, PIN, SERVER_CORE, spawnPinned, startRedis, stopChild } from './proc.mjs';

export { CLIENT_CORE, SERVER_CORE, freePort, spawnPinned, stopChild } from './proc.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const { V8_FLAGS_BY_COMPONENT } = await import(join(ROOT, 'packages', 'common', 'dist', 'runtime', 'v8-flags.js'));

export const BINS = {
  naive: join(ROOT, 'bench', 'naive-server.mjs'),
  'all-in-one': join(ROOT, 'packages', 'all-in-one', 'dist', 'main.js'),
  edge: join(ROOT, 'packages', 'edge', 'dist', 'main.js'),
  publisher: join(ROOT, 'packages', 'publisher', 'dist', 'main.js'),
  'floor-edge': join(ROOT, 'bench', 'floor-edge.mjs'),
  'floor-publisher': join(ROOT, 'bench', 'floor-publisher.mjs'),
};

/** Spawns a Node binary and resolves once it prints `"event":"listening"` (JSON) with its ports. */
export async function startNode(label, core, bin, args, nodeFlags = []) {
  const child = spawnPinned(core, process.execPath, [...nodeFlags, bin, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const listening = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${label} did not listen within 20 s:\n${out}`)), 20_000);
    const onData = (d) => {
      out += d.toString();
      for (const line of out.split('\n')) {
        if (!line.includes('"event":"listening"')) continue;
        try {
          const j = JSON.parse(line);
          clearTimeout(timer);
          resolve(j);
          return;
        } catch {
          /* partial line */
        }
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', (d) => (out += d.toString()));
    child.on('exit', (code) => reject(new Error(`${label} exited with ${code} before listening:\n${out}`)));
  });
  // Keep draining the pipes so a chatty server never blocks on a full pipe.
  child.stdout.resume();
  child.stderr.resume();
  return { child, port: listening.port, metricsPort: listening.metricsPort, output: () => out };
}

export const COMMON = ['--port', '0', '--metrics-port', '0', '--log-level', 'info', '--drain-seconds', '0'];
// Every bench subscriber connects from 127.0.0.1: lift the per-IP stream cap (default 1000).
export const SUBSCRIBER_ARGS = ['--heartbeat', '3600', '--max-connections-per-ip', '0'];
const PUBLISH_ARGS = ['--max-body', '4194304'];

/**
 * Starts `kind` fresh. `nodeFlags` go to the Node process that holds the subscribers (e.g.
 * `--cpu-prof`). Resolves with ports, the pids counted as server and aux CPU, and stop().
 */
export async function startServer(kind, nodeFlags = []) {
  if (kind === 'naive') {
    const s = await startNode('naive', SERVER_CORE, BINS.naive, ['--port', '0'], nodeFlags);
    return oneProcess(kind, s, undefined);
  }
  if (kind === 'all-in-one') {
    const s = await startNode(
      'all-in-one',
      SERVER_CORE,
      BINS['all-in-one'],
      [...COMMON, ...SUBSCRIBER_ARGS, ...PUBLISH_ARGS],
      [...V8_FLAGS_BY_COMPONENT['all-in-one'], ...nodeFlags],
    );
    return oneProcess(kind, s, s.metricsPort);
  }
  if (kind === 'edge-redis' || kind === 'floor-chain') {
    const redis = await startRedis(CLIENT_CORE);
    return startOnRedis(
      kind,
      ['--redis-url', `redis://127.0.0.1:${redis.port}`],
      [redis.child.pid],
      () => stopChild(redis.child),
      nodeFlags,
      kind === 'floor-chain' ? { publisher: BINS['floor-publisher'], edge: BINS['floor-edge'] } : undefined,
    );
  }
  if (kind === 'edge-cluster') {
    const { startRedisCluster } = await import(join(ROOT, 'packages', 'testkit', 'dist', 'redis-cluster.js'));
    const cluster = await startRedisCluster({ primaries: 3, replicasPerPrimary: 0 });
    if (PIN)
      for (const n of cluster.nodes)
        await new Promise((r) => spawn('taskset', ['-p', '-c', CLIENT_CORE, String(n.pid)], { stdio: 'ignore' }).on('exit', r));
    return startOnRedis(
      kind,
      ['--redis-cluster-nodes', cluster.seeds],
      cluster.nodes.map((n) => n.pid),
      () => cluster.close(),
      nodeFlags,
    );
  }
  throw new Error(`unknown server ${kind}`);
}

/** A server that is one process `s` (started by `startNode`), publishing too. */
function oneProcess(kind, s, metricsPort) {
  return {
    kind,
    port: s.port,
    pubPort: s.port,
    metricsPort,
    serverPids: [s.child.pid],
    auxPids: [],
    output: s.output,
    stop: () => stopChild(s.child),
  };
}

/**
 * A publisher (core 1) and an edge (core 0) on the Redis that `redisArgs` name (its processes
 * `redisPids`, stopped by `stopRedis`). On a failure stops what started, Redis included.
 * `bins` replaces cyclone-sse's publisher and edge (the floor chain: they read only --redis-url
 * of the same command line, and run with the V8 flags of the component they stand for).
 */
async function startOnRedis(kind, redisArgs, redisPids, stopRedis, nodeFlags, bins = undefined) {
  const stopAll = [];
  try {
    const pub = await startNode(
      'publisher',
      CLIENT_CORE,
      bins?.publisher ?? BINS.publisher,
      [...COMMON, ...PUBLISH_ARGS, ...redisArgs],
      V8_FLAGS_BY_COMPONENT.publisher,
    );
    stopAll.push(pub.child);
    const edge = await startNode(
      'edge',
      SERVER_CORE,
      bins?.edge ?? BINS.edge,
      [...COMMON, ...SUBSCRIBER_ARGS, ...redisArgs],
      [...V8_FLAGS_BY_COMPONENT.edge, ...nodeFlags],
    );
    stopAll.push(edge.child);
    return {
      kind,
      port: edge.port,
      pubPort: pub.port,
      metricsPort: edge.metricsPort,
      serverPids: [edge.child.pid],
      auxPids: [pub.child.pid, ...redisPids],
      output: edge.output,
      stop: async () => {
        await stopChild(edge.child);
        await stopChild(pub.child);
        await stopRedis();
      },
    };
  } catch (err) {
    for (const c of stopAll) await stopChild(c);
    await stopRedis();
    throw err;
  }
}
