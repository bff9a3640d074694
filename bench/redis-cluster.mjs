#!/usr/bin/env node
/**
 * The hub on a Redis Cluster against the hub on one redis-server, in one run (issue 15): a private
 * 3-primary cluster (`startRedisCluster`, no replicas) and a private standalone redis-server, the
 * real brokers (packages/common/dist: RedisClusterBroker, RedisBroker) and real edge processes
 * (packages/edge/dist/main.js, pinned like `npm run bench` pins them).
 *
 *   1. Redis CPU per publish: `RedisClusterBroker.publish` (PUBLISH_LUA + SPUBLISH, 16 partitions)
 *      on channels of one partition (one shard) vs `RedisBroker.publish` on the standalone
 *      server; and on channels over all partitions (3 shards) vs three standalone servers each
 *      taking a third (the same number of busy Redis processes). One subscriber receives
 *      everything on each side (SSUBSCRIBE per channel / PSUBSCRIBE).
 *   2. Spread: script calls per primary for publishes to many distinct `user:<n>` channels.
 *   3. Cluster bus: bytes (/proc/<pid>/io rchar, wchar) and CPU of the primaries that do not own
 *      the channel, per publish, for the broker's SPUBLISH path and for a classic PUBLISH of the
 *      same message; the idle rate of each node (cluster pings) is measured and subtracted.
 *   4. Edge CPU per published message for channels the edge does not serve (one SSE client on
 *      another channel), and per delivered message (one SSE client per published channel), edge
 *      on the cluster vs edge on the standalone server.
 *
 * Ratios are taken within one repetition (cluster and standalone measured back to back), the
 * table shows medians over repetitions. Not a test. `npm run bench` runs it after the SSE
 * scenarios (options pass through: `--quick` makes it short).
 *
 *   node bench/redis-cluster.mjs [--quick] [--runs 3] [--publishes 20000] [--channels 10000]
 *                                [--append] (append the section to docs/benchmarks.md)
 *                                [--cpu-prof <dir>] (node --cpu-prof of both edges; diagnosis, not a record)
 *                                [--edge-one-partition] (part 4 publishes to channels of one partition)
 *                                [--edge-one-node] (part 4 publishes to channels of the partitions one primary owns)
 *                                [--edge-rate 5000] (publishes per second in part 4, paced the same for both edges)
 */
import { spawnSync } from 'node:child_process';
import { appendFileSync, readFileSync } from 'node:fs';
import { request } from 'node:http';
import { loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { cpuNs, groupUserSysNs, wakeCounts } from './proc-stats.mjs';
import { parseInfo } from './proc.mjs';
import { BINS, CLIENT_CORE, COMMON, SERVER_CORE, SUBSCRIBER_ARGS, startNode, stopChild } from './servers.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const DOC = join(ROOT, 'docs', 'benchmarks.md');
const common = await import(join(ROOT, 'packages', 'common', 'dist', 'index.js'));
const { startRedis, startRedisCluster } = await import(join(ROOT, 'packages', 'testkit', 'dist', 'index.js'));
const { V8_FLAGS_BY_COMPONENT, RedisBroker, RedisClusterBroker, RedisKeys, partitionOf, partitionTags, hashSlot, createLogger } = common;

const argv = process.argv.slice(2);
const has = (f) => argv.includes(f);
const num = (name, dflt) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? Number(argv[i + 1]) : dflt;
};
const QUICK = has('--quick');
const RUNS = num('runs', QUICK ? 1 : 3);
const PUBLISHES = num('publishes', QUICK ? 2000 : 20_000);
const SPREAD_CHANNELS = num('channels', QUICK ? 3000 : 10_000);
const APPEND = has('--append') && !has('--cpu-prof') && !has('--edge-one-partition') && !has('--edge-one-node'); // diagnostic runs are not records
const CPU_PROF = argv.includes('--cpu-prof') ? argv[argv.indexOf('--cpu-prof') + 1] : undefined;
const PARTITIONS = 16;
const EDGE_RATE = num('edge-rate', 5000); // publishes per second in part 4
const HOT = 100; // channels published to in parts 1, 3, 4
const CONCURRENCY = 64; // publish() calls in flight
const PAYLOAD = JSON.stringify(['update', { text: 'x'.repeat(80) }]); // ~100 B
const PREFIX = 'bench';

const log = (msg) => process.stderr.write(`[redis-cluster] ${msg}\n`);
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const quiet = createLogger('error');
const brokerOptions = {
  prefix: PREFIX,
  historySize: 100,
  historyTtlSeconds: 3600,
  idempotencyTtlSeconds: 60,
  logger: quiet,
};

// --- Redis node sampling ------------------------------------------------------------------------

function procIo(pid) {
  const t = readFileSync(`/proc/${pid}/io`, 'latin1');
  return { rchar: Number(/rchar: (\d+)/.exec(t)[1]), wchar: Number(/wchar: (\d+)/.exec(t)[1]) };
}

/** One node's counters: CPU (INFO cpu), script calls, pub/sub commands, bus messages, bytes. */
async function sampleNode(node) {
  const [cpu, cmd, stats, cluster] = await Promise.all([
    node.client.info('cpu'),
    node.client.info('commandstats'),
    node.client.info('stats'),
    node.cluster ? node.client.cluster('INFO') : Promise.resolve(''),
  ]);
  const c = parseInfo(cpu);
  const cs = parseInfo(cmd);
  const st = parseInfo(stats);
  const cl = parseInfo(cluster);
  const calls = (name) => Number(/calls=(\d+)/.exec(cs[`cmdstat_${name}`] ?? '')?.[1] ?? 0);
  const usec = (name) => Number(/usec=(\d+)/.exec(cs[`cmdstat_${name}`] ?? '')?.[1] ?? 0);
  const io = procIo(node.pid);
  return {
    t: process.hrtime.bigint(),
    cpuUs: (Number(c.used_cpu_user) + Number(c.used_cpu_sys)) * 1e6,
    scripts: calls('evalsha') + calls('eval'),
    scriptUs: usec('evalsha') + usec('eval'),
    spublish: calls('spublish'),
    publish: calls('publish'),
    netOut: Number(st.total_net_output_bytes ?? 0),
    replOut: Number(st.total_net_repl_output_bytes ?? 0),
    busSent: Number(cl.cluster_stats_messages_sent ?? 0),
    busReceived: Number(cl.cluster_stats_messages_received ?? 0),
    rchar: io.rchar,
    wchar: io.wchar,
  };
}

function delta(a, b) {
  const d = {};
  for (const k of Object.keys(a)) d[k] = k === 't' ? Number(b.t - a.t) / 1e9 : b[k] - a[k];
  return d;
}

async function sampleAll(nodes) {
  return Promise.all(nodes.map(sampleNode));
}
const deltas = (before, after) => before.map((b, i) => delta(b, after[i]));

// --- publishing -----------------------------------------------------------------------------------

/** `count` single-channel publishes through `broker.publish`, `inFlight` at a time. */
async function publishMany(broker, channelAt, count, inFlight = CONCURRENCY) {
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const i = next++;
      await broker.publish([{ channels: [channelAt(i)], data: PAYLOAD }]);
    }
  };
  await Promise.all(Array.from({ length: inFlight }, worker));
}

/**
 * `count` single-channel publishes at `rate` per second: every 10 ms a burst of rate/100 calls
 * issued together, so an edge sees the same arrival pattern whichever Redis is behind it.
 */
async function publishPaced(broker, channelAt, count, rate) {
  const burst = Math.max(1, Math.round(rate / 100));
  const t0 = Date.now();
  for (let i = 0, tick = 0; i < count; tick++) {
    const calls = [];
    for (const end = Math.min(count, i + burst); i < end; i++) calls.push(broker.publish([{ channels: [channelAt(i)], data: PAYLOAD }]));
    await Promise.all(calls);
    const wait = t0 + (tick + 1) * 10 - Date.now();
    if (wait > 0) await sleep(wait);
  }
}

/** Raw commands (`args(i)`), pipelined CONCURRENCY at a time. */
async function commandMany(client, args, count) {
  for (let i = 0; i < count; i += CONCURRENCY) {
    const p = client.pipeline();
    for (let j = i; j < Math.min(count, i + CONCURRENCY); j++) p.call(...args(j));
    await p.exec();
  }
}

async function waitUntil(pred, ms) {
  const deadline = Date.now() + ms;
  while (!(await pred())) {
    if (Date.now() > deadline) return false;
    await sleep(20);
  }
  return true;
}

// --- edges ----------------------------------------------------------------------------------------

async function startEdge(name, redisArgs) {
  const prof = CPU_PROF ? ['--cpu-prof', '--cpu-prof-dir', CPU_PROF, '--cpu-prof-name', `edge-${name}-${Date.now()}.cpuprofile`] : [];
  const e = await startNode(
    'edge',
    SERVER_CORE,
    BINS.edge,
    [...COMMON, ...SUBSCRIBER_ARGS, '--redis-prefix', PREFIX, ...redisArgs],
    [...V8_FLAGS_BY_COMPONENT.edge, ...prof],
  );
  return {
    ...e,
    pid: e.child.pid,
    stop: async () => {
      const t0 = Date.now();
      await stopChild(e.child);
      if (e.child.exitCode !== 0) log(`edge ${name} ended with ${e.child.exitCode ?? e.child.signalCode} after ${Date.now() - t0} ms`);
    },
  };
}

async function metrics(edge) {
  const text = await new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: edge.metricsPort, path: '/metrics' }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve(body));
    });
    req.on('error', reject);
    req.end();
  });
  const get = (name) => Number(new RegExp(`^cyclone_sse_edge_${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
  const all = (name) => Number(new RegExp(`^cyclone_sse_${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text)?.[1] ?? 0);
  return {
    received: get('messages_received_total'),
    deliveries: get('deliveries_total'),
    writes: get('writes_total'),
    repairs: all('edge_gap_repairs_total'),
  };
}

/**
 * An SSE stream on `channels`; resolves once the edge sent its first bytes (subscribed).
 * `seen(marker)` resolves when a later chunk holds `marker`.
 */
function sseClient(port, channels) {
  return new Promise((resolve, reject) => {
    const qs = channels.map((c) => `channels=${encodeURIComponent(c)}`).join('&');
    let tail = '';
    const waiting = new Map();
    const req = request({ host: '127.0.0.1', port, path: `/?${qs}`, agent: false }, (res) => {
      if (res.statusCode !== 200) reject(new Error(`SSE status ${res.statusCode}`));
      res.setEncoding('utf8');
      res.once('data', () =>
        resolve({
          close: () => req.destroy(),
          seen: (marker) => new Promise((done) => waiting.set(marker, done)),
        }),
      );
      res.on('data', (chunk) => {
        if (waiting.size === 0) return;
        const text = tail + chunk;
        for (const [marker, done] of waiting)
          if (text.includes(marker)) {
            waiting.delete(marker);
            done();
          }
        tail = text.slice(-64);
      });
    });
    req.on('error', (err) => {
      if (err.code !== 'ECONNRESET') reject(err);
    });
    req.end();
  });
}

// --- the run --------------------------------------------------------------------------------------

async function main() {
  const started = Date.now();
  const load0 = loadavg()[0];
  const standalone = await startRedis();
  const cluster = await startRedisCluster({ primaries: 3, replicasPerPrimary: 0 });
  const cleanup = [];
  try {
    const single = { name: 'standalone', port: standalone.port, pid: standalone.pid, client: new Redis({ port: standalone.port }) };
    const primaries = cluster.nodes.map((n) => ({
      name: `:${n.port}`,
      port: n.port,
      pid: n.pid,
      cluster: true,
      client: new Redis({ port: n.port }),
    }));
    cleanup.push(() => [single, ...primaries].forEach((n) => n.client.disconnect()));
    const slotMap = await cluster.slotMap();
    const ownerOfSlot = (slot) => slotMap.find((r) => slot >= r.first && slot <= r.last).primary;

    const sa = new RedisBroker({ ...brokerOptions, url: `redis://127.0.0.1:${standalone.port}`, subscribe: false });
    const cb = new RedisClusterBroker({
      ...brokerOptions,
      connection: { clusterNodes: cluster.seedList.map((s) => ({ host: s.host, port: s.port })) },
      partitions: PARTITIONS,
      subscribe: false,
    });
    // The control for the spread row: three independent redis-servers, each publish to one of
    // them by channel, so three busy Redis processes share this machine's cores as the three
    // primaries do.
    const trio = [standalone, ...(await Promise.all([startRedis(), startRedis()]))];
    cleanup.push(() => Promise.all(trio.slice(1).map((t) => t.stop())));
    const trioNodes = trio.map((t, i) =>
      i === 0 ? single : { name: `s${i}`, port: t.port, pid: t.pid, client: new Redis({ port: t.port }) },
    );
    cleanup.push(() => trioNodes.slice(1).forEach((n) => n.client.disconnect()));
    const trioBrokers = trio.map((t, i) =>
      i === 0 ? sa : new RedisBroker({ ...brokerOptions, url: `redis://127.0.0.1:${t.port}`, subscribe: false }),
    );
    const trioOf = (channel) => hashSlot(channel) % 3;
    const sa3 = { publish: (inputs) => trioBrokers[trioOf(inputs[0].channels[0])].publish(inputs) };
    await Promise.all([cb.start(), ...trioBrokers.map((b) => b.start())]);
    cleanup.push(() => Promise.all([cb.close(), ...trioBrokers.map((b) => b.close())]));
    const tags = partitionTags(PARTITIONS);
    const keysOf = tags.map((t) => new RedisKeys(PREFIX, t));
    const pubsubName = (channel) => keysOf[partitionOf(channel, PARTITIONS)].pubsub(channel);

    // Channels: `hot` spread over partitions (parts 1 and 4); `own` all in one partition (part 3).
    const hot = Array.from({ length: HOT }, (_, i) => `news:${i}`);
    const ownerOf = (ch) => ownerOfSlot(hashSlot(pubsubName(ch)));
    const ownerPort = ownerOf('solo:0');
    const own = [];
    for (let i = 0; own.length < HOT; i++)
      if (partitionOf(`solo:${i}`, PARTITIONS) === partitionOf('solo:0', PARTITIONS)) own.push(`solo:${i}`);
    const owning = primaries.find((n) => n.port === ownerPort);
    const others = primaries.filter((n) => n.port !== ownerPort);
    const partsOfHot = new Set(hot.map((c) => partitionOf(c, PARTITIONS))).size;

    // One subscriber receiving everything on each side (what one edge serving every channel does).
    const psubs = trio.map((t) => new Redis({ port: t.port }));
    await Promise.all(psubs.map((c) => c.psubscribe(`${PREFIX}:ch:*`)));
    const ssubs = primaries.map((n) => new Redis({ port: n.port }));
    cleanup.push(() => [...psubs, ...ssubs].forEach((c) => c.disconnect()));
    for (const ch of [...hot, ...own]) await ssubs[primaries.findIndex((n) => n.port === ownerOf(ch))].ssubscribe(pubsubName(ch));
    let got = 0;
    for (const c of psubs) c.on('pmessage', () => got++);
    for (const s of ssubs) s.on('smessage', () => got++);

    // Warm-up (scripts loaded, keys created).
    await publishMany(sa3, (i) => hot[i % HOT], 1500);
    await publishMany(cb, (i) => hot[i % HOT], 1000);
    await publishMany(cb, (i) => own[i % HOT], 200);

    /** Each node's idle counters per second (cron, cluster-bus pings), sampled over 1 s. */
    const idleRates = async (nodes) => {
      const d = deltas(await sampleAll(nodes), await sleep(1000).then(() => sampleAll(nodes)));
      return d.map((x) => Object.fromEntries(Object.entries(x).map(([k, v]) => [k, k === 't' ? 1 : v / x.t])));
    };
    /** Deltas of `nodes` over `go()` (then until `expect` messages arrived), minus their idle rates. */
    const window = async (nodes, idle, expect, go) => {
      const g0 = got;
      const b = await sampleAll(nodes);
      await go();
      const arrived = await waitUntil(() => got - g0 >= expect, 10_000);
      const d = deltas(b, await sampleAll(nodes));
      const net = d.map((x, i) => Object.fromEntries(Object.entries(x).map(([k, v]) => [k, k === 't' ? v : v - idle[i][k] * x.t])));
      return { raw: d, net, arrived };
    };
    const sum = (ds, k) => ds.reduce((s, x) => s + x[k], 0);

    const runs = [];
    for (let r = 0; r < RUNS; r++) {
      const run = {};
      // 1. Redis CPU per publish: standalone; cluster with the channels of one partition (one
      //    shard: only its primary works); cluster with channels over 16 partitions (all primaries).
      const all = [...trioNodes, ...primaries];
      const idle = await idleRates(all);
      const variants = {
        standalone: { nodes: [single], broker: sa, channels: hot },
        shard: { nodes: primaries, broker: cb, channels: own },
        spread: { nodes: primaries, broker: cb, channels: hot },
        standalone3: { nodes: trioNodes, broker: sa3, channels: hot },
      };
      const order = Object.keys(variants);
      for (let i = 0; i < order.length; i++) {
        const name = order[(i + r) % order.length];
        const v = variants[name];
        const idleOf = v.nodes.map((n) => idle[all.indexOf(n)]);
        const w = await window(v.nodes, idleOf, PUBLISHES, () => publishMany(v.broker, (j) => v.channels[j % HOT], PUBLISHES, v.inFlight));
        const scripts = sum(w.raw, 'scripts');
        run[name] = {
          cpuUs: sum(w.net, 'cpuUs') / PUBLISHES,
          rawCpuUs: sum(w.raw, 'cpuUs') / PUBLISHES,
          scriptUs: sum(w.raw, 'scriptUs') / scripts,
          arrived: w.arrived,
          pubsub: sum(w.raw, name.startsWith('standalone') ? 'publish' : 'spublish'),
          publishesPerS: PUBLISHES / w.raw[0].t,
          net: w.net,
        };
      }
      run.shardRatio = run.shard.cpuUs / run.standalone.cpuUs;
      run.spreadRatio = run.spread.cpuUs / run.standalone3.cpuUs;

      // 2. Spread over the primaries.
      {
        const b = await sampleAll(primaries);
        await publishMany(cb, (i) => `user:${r * SPREAD_CHANNELS + i}`, SPREAD_CHANNELS);
        const d = deltas(b, await sampleAll(primaries));
        run.shares = d.map((x) => x.scripts / sum(d, 'scripts'));
      }

      // 3. Cluster bus: the primaries not owning the channels, for the one-shard window of part 1
      //    (broker, SPUBLISH) and for a classic PUBLISH of a message of the same size on the owner.
      {
        const perOther = (net, k) => others.reduce((s, n) => s + net[primaries.indexOf(n)][k], 0) / others.length / PUBLISHES;
        const bus = (net) => ({
          inB: perOther(net, 'rchar'),
          outB: perOther(net, 'wchar'),
          cpuUs: perOther(net, 'cpuUs'),
          busMsgs: perOther(net, 'busReceived'),
          ownerOutB: net[primaries.indexOf(owning)].wchar / PUBLISHES,
        });
        run.sharded = bus(run.shard.net);
        // A message as the broker sends it: `<seq> <prev> <time> <frame>`.
        const frame = `id: ${'1'.repeat(20)}-123456\ndata: ${PAYLOAD}\n\n`;
        const classic = `${PREFIX}:ch:classic`;
        const csub = new Redis({ port: ownerPort });
        await csub.subscribe(classic);
        csub.on('message', () => got++);
        const idle = await idleRates(primaries);
        const w = await window(primaries, idle, PUBLISHES, () =>
          commandMany(owning.client, (i) => ['publish', classic, `${100000 + i} ${99999 + i} ${Date.now()} ${frame}`], PUBLISHES),
        );
        csub.disconnect();
        run.classic = bus(w.net);
      }
      runs.push(run);
      log(
        `run ${r + 1}/${RUNS}: redis µs/publish standalone ${run.standalone.cpuUs.toFixed(1)} one shard ${run.shard.cpuUs.toFixed(1)} (${run.shardRatio.toFixed(2)}×) spread ${run.spread.cpuUs.toFixed(1)} (${run.spreadRatio.toFixed(2)}×); ` +
          `shares ${run.shares.map((s) => (s * 100).toFixed(1) + '%').join(' ')}; non-owning in/out B per publish SPUBLISH ${run.sharded.inB.toFixed(1)}/${run.sharded.outB.toFixed(1)} PUBLISH ${run.classic.inB.toFixed(1)}/${run.classic.outB.toFixed(1)}`,
      );
    }

    // 4. Edges (for diagnosis: `--edge-one-partition`, the published channels all in one partition;
    //    `--edge-one-node`, all in the partitions one primary owns, so the cluster edge reads them
    //    from one node connection as the standalone edge does from its one).
    const oneNode = [];
    for (let i = 0; oneNode.length < HOT; i++) if (ownerOf(`node:${i}`) === ownerPort) oneNode.push(`node:${i}`);
    const edgeHot = has('--edge-one-partition') ? own : has('--edge-one-node') ? oneNode : hot;
    // As `npm run bench` does: the edge alone on core SERVER_CORE; every redis-server and this
    // process (publisher, SSE clients) on CLIENT_CORE, so the edge's CPU is not inflated by sharing
    // its core (and caches) with three busy primaries instead of one redis-server.
    if (SERVER_CORE !== CLIENT_CORE)
      for (const pid of [process.pid, ...trio.map((t) => t.pid), ...cluster.nodes.map((n) => n.pid)])
        spawnSync('taskset', ['-a', '-p', '-c', CLIENT_CORE, String(pid)], { stdio: 'ignore' });
    const edges = {
      cluster: await startEdge('cluster', ['--redis-cluster-nodes', cluster.seeds]),
      standalone: await startEdge('standalone', ['--redis-url', `redis://127.0.0.1:${standalone.port}`]),
    };
    cleanup.push(() => Promise.all(Object.values(edges).map((e) => e.stop())));
    const clients = [];
    cleanup.push(() => clients.forEach((c) => c.close()));
    const quietClient = {};
    const hotClients = { cluster: [], standalone: [] };
    for (const [side, e] of Object.entries(edges)) clients.push((quietClient[side] = await sseClient(e.port, ['quiet'])));
    let sentinels = 0;
    /**
     * Publishes a sentinel on `quiet` (or, `served`, on every hot channel) and resolves true once
     * the edge's client(s) got it: the edge has handled everything published before (one order
     * per partition), or false after 30 s.
     */
    const settle = async (side, served) => {
      const marker = `sentinel-${++sentinels}`;
      const seen = Promise.all((served ? hotClients[side] : [quietClient[side]]).map((c) => c.seen(marker)));
      await (side === 'cluster' ? cb : sa).publish(
        served ? edgeHot.map((ch) => ({ channels: [ch], data: marker })) : [{ channels: ['quiet'], data: marker }],
      );
      return Promise.race([seen.then(() => true), sleep(30_000).then(() => false)]);
    };
    /**
     * Edge CPU over PUBLISHES publishes on the hot channels, up to the arrival of a sentinel
     * published after them (on `quiet`, or on every hot channel when served): the edge has then
     * handled every message it gets (one order per partition). The edge's CPU over an idle window of
     * the same length right after is subtracted (timers, probes, slot-map refreshes).
     */
    const edgeWindow = async (side, served) => {
      const e = edges[side];
      const broker = side === 'standalone' ? sa : cb;
      const m0 = await metrics(e);
      const t0 = Date.now();
      const c0 = cpuNs(e.pid);
      const us0 = groupUserSysNs([e.pid]);
      const w0 = wakeCounts(e.pid);
      await publishPaced(broker, (i) => edgeHot[i % HOT], PUBLISHES, EDGE_RATE);
      const ok = await settle(side, served);
      const c1 = cpuNs(e.pid);
      const us1 = groupUserSysNs([e.pid]);
      const w1 = wakeCounts(e.pid);
      const wallS = (Date.now() - t0) / 1000;
      const m1 = await metrics(e);
      const i0 = cpuNs(e.pid);
      await sleep(wallS * 1000);
      const idleUs = (cpuNs(e.pid) - i0) / 1e3;
      const cpuUs = (c1 - c0) / 1e3;
      return {
        cpuUs,
        idleUs,
        wallS,
        netCpuUs: cpuUs - idleUs,
        writes: m1.writes - m0.writes,
        repairs: m1.repairs - m0.repairs,
        sysShare: (us1.sys - us0.sys) / (us1.sys - us0.sys + us1.user - us0.user),
        reads: w1.reads - w0.reads,
        wakeups: w1.wakeups - w0.wakeups,
        ok,
        // Not counting the sentinel(s).
        received: m1.received - m0.received - (served ? HOT : 1),
        deliveries: m1.deliveries - m0.deliveries,
      };
    };
    for (const side of Object.keys(edges)) {
      await publishMany(side === 'cluster' ? cb : sa, (i) => edgeHot[i % HOT], 1000); // warm-up
      await settle(side, false);
    }
    for (let r = 0; r < RUNS; r++) {
      const run = runs[r];
      for (const side of r % 2 === 0 ? ['standalone', 'cluster'] : ['cluster', 'standalone'])
        run[`unserved-${side}`] = await edgeWindow(side, false);
    }
    for (const [side, e] of Object.entries(edges)) {
      for (const ch of edgeHot) hotClients[side].push(await sseClient(e.port, [ch]));
      clients.push(...hotClients[side]);
      await publishMany(side === 'cluster' ? cb : sa, (i) => edgeHot[i % HOT], 1000); // warm-up
      await settle(side, true);
    }
    for (let r = 0; r < RUNS; r++) {
      const run = runs[r];
      for (const side of r % 2 === 0 ? ['standalone', 'cluster'] : ['cluster', 'standalone'])
        run[`serve-${side}`] = await edgeWindow(side, true);
      const u = (x) => (run[`unserved-${x}`].netCpuUs / PUBLISHES).toFixed(2);
      const d = (x) => (run[`serve-${x}`].netCpuUs / run[`serve-${x}`].deliveries).toFixed(2);
      // Per 100 deliveries: the Redis socket reads and the sleeps ended (one burst is rate/100 messages).
      const w = (x, k) => ((100 * run[`serve-${x}`][k]) / run[`serve-${x}`].deliveries).toFixed(1);
      log(
        `run ${r + 1}/${RUNS}: edge µs per published message not served: standalone ${u('standalone')} (received ${run['unserved-standalone'].received}) cluster ${u('cluster')} (received ${run['unserved-cluster'].received}); ` +
          `per delivery: standalone ${d('standalone')} cluster ${d('cluster')} (windows ${run['serve-standalone'].wallS.toFixed(1)} s / ${run['serve-cluster'].wallS.toFixed(1)} s); kernel share standalone ${run['serve-standalone'].sysShare.toFixed(2)} cluster ${run['serve-cluster'].sysShare.toFixed(2)}; gap repairs ${run['serve-standalone'].repairs} / ${run['serve-cluster'].repairs}; ` +
          `per 100 deliveries reads(2) standalone ${w('standalone', 'reads')} cluster ${w('cluster', 'reads')}, wake-ups standalone ${w('standalone', 'wakeups')} cluster ${w('cluster', 'wakeups')}`,
      );
    }

    const redisVersion = parseInfo(await single.client.info('server')).redis_version;
    report(runs, { ownerPort, partsOfHot, redisVersion, load0, load1: loadavg()[0], elapsedS: Math.round((Date.now() - started) / 1000) });
  } finally {
    for (const f of cleanup.reverse()) await Promise.resolve(f()).catch(() => {});
    await cluster.close();
    await standalone.stop();
  }
}

function report(runs, ctx) {
  const m = (f) => median(runs.map(f));
  const f1 = (x) => x.toFixed(1);
  const f2 = (x) => x.toFixed(2);
  const verdict = (ok) => (ok ? 'met' : '**missed**');
  const shardRatio = m((r) => r.shardRatio);
  const spreadRatio = m((r) => r.spreadRatio);
  const sharesDev = m((r) => Math.max(...r.shares.map((s) => Math.abs(s * 3 - 1))));
  const shares = [0, 1, 2].map((i) => m((r) => r.shares[i]));
  const bus = (kind, k) => m((r) => r[kind][k]);
  const unserved = (r, s) => r[`unserved-${s}`].netCpuUs / PUBLISHES;
  const perDel = (r, s) => r[`serve-${s}`].netCpuUs / r[`serve-${s}`].deliveries;
  const wPerDel = (r, s) => r[`serve-${s}`].writes / r[`serve-${s}`].deliveries;
  const unservedRatio = m((r) => unserved(r, 'cluster') / unserved(r, 'standalone'));
  const delRatio = m((r) => perDel(r, 'cluster') / perDel(r, 'standalone'));
  const received = m((r) => r['unserved-cluster'].received);
  const redisCell = (v) => `${f1(m((r) => r[v].cpuUs))} µs (raw ${f1(m((r) => r[v].rawCpuUs))}; script ${f1(m((r) => r[v].scriptUs))})`;
  const rows = [
    [
      '1. Redis CPU per publish, channels of one partition (one shard)',
      redisCell('shard'),
      redisCell('standalone'),
      `${f2(shardRatio)}×`,
      '≤ 1.2×',
      verdict(shardRatio <= 1.2),
    ],
    [
      `1. Redis CPU per publish, channels over ${ctx.partsOfHot} partitions (3 shards); standalone: 3 redis-servers, each publish to one by channel`,
      redisCell('spread'),
      redisCell('standalone3'),
      `${f2(spreadRatio)}×`,
      '≤ 1.2×',
      verdict(spreadRatio <= 1.2),
    ],
    [
      `2. script calls per primary, ${SPREAD_CHANNELS} \`user:<n>\` channels`,
      shares.map((s) => `${(s * 100).toFixed(1)} %`).join(' / '),
      '–',
      `max ${(sharesDev * 100).toFixed(1)} % off a third`,
      'each within ±20 % of a third',
      verdict(sharesDev <= 0.2),
    ],
    [
      '3. bytes in / out per publish, each non-owning primary',
      `${f1(bus('sharded', 'inB'))} / ${f1(bus('sharded', 'outB'))} B`,
      `${f1(bus('classic', 'inB'))} / ${f1(bus('classic', 'outB'))} B (classic PUBLISH)`,
      '–',
      '~0 with SPUBLISH (under 1 % of classic PUBLISH: the idle-rate subtraction leaves a few bytes of noise)',
      verdict(Math.max(Math.abs(bus('sharded', 'inB')), Math.abs(bus('sharded', 'outB'))) < 0.01 * bus('classic', 'inB')),
    ],
    [
      '3. cluster-bus messages received per publish, each non-owning primary',
      f2(bus('sharded', 'busMsgs')),
      `${f2(bus('classic', 'busMsgs'))} (classic PUBLISH)`,
      '–',
      '0 with SPUBLISH',
      verdict(Math.abs(bus('sharded', 'busMsgs')) < 0.01),
    ],
    [
      '3. CPU per publish, each non-owning primary',
      `${f2(bus('sharded', 'cpuUs'))} µs`,
      `${f2(bus('classic', 'cpuUs'))} µs (classic PUBLISH)`,
      '–',
      '~0 with SPUBLISH',
      verdict(Math.abs(bus('sharded', 'cpuUs')) < 0.5),
    ],
    [
      `4. edge CPU per published message it does not serve (1 client on another channel; ${HOT} channels published)`,
      `${f2(m((r) => unserved(r, 'cluster')))} µs, received ${received} of ${PUBLISHES}`,
      `${f2(m((r) => unserved(r, 'standalone')))} µs, received ${m((r) => r['unserved-standalone'].received)} of ${PUBLISHES}`,
      `${f2(unservedRatio)}×`,
      'received 0; CPU ≪ standalone',
      verdict(received === 0 && unservedRatio < 0.2),
    ],
    [
      `4. edge CPU per delivered message (1 client on each of the ${HOT} channels)`,
      `${f2(m((r) => perDel(r, 'cluster')))} µs (${f2(m((r) => wPerDel(r, 'cluster')))} writes/delivery)`,
      `${f2(m((r) => perDel(r, 'standalone')))} µs (${f2(m((r) => wPerDel(r, 'standalone')))} writes/delivery)`,
      `${f2(delRatio)}×`,
      'no worse (≤ 1.0×; ≤ 1.1× counted as noise)',
      verdict(delRatio <= 1.1),
    ],
  ];
  const complete = runs.every(
    (r) =>
      ['standalone', 'shard', 'spread'].every((v) => r[v].arrived) &&
      ['unserved', 'serve'].every((k) => r[`${k}-cluster`].ok && r[`${k}-standalone`].ok),
  );
  const date = new Date().toISOString().slice(0, 10);
  const shownArgs = argv.filter((a) => a !== '--append').join(' ');
  const text = [
    `## ${date} — \`node bench/redis-cluster.mjs${shownArgs ? ` ${shownArgs}` : ''}\` (Redis Cluster, issue 15; part of \`npm run bench\`)`,
    '',
    `Private 3-primary Redis Cluster (no replicas, \`startRedisCluster\`, Redis ${ctx.redisVersion}) and a private standalone redis-server in one run; the real brokers (\`RedisClusterBroker\`, ${PARTITIONS} partitions: PUBLISH_LUA with SPUBLISH; \`RedisBroker\`: PUBLISH_LUA with PUBLISH) and real edges (\`packages/edge/dist/main.js\`, pinned to core ${SERVER_CORE}, with every redis-server and the bench process pinned to core ${CLIENT_CORE} during that part, one SSE client each on a channel \`quiet\` and, for the delivery row, one more on each published channel; there the publishes are paced at ${EDGE_RATE}/s in bursts every 10 ms, the same for both edges). ` +
      `${PUBLISHES} single-channel publishes of a ${PAYLOAD.length} B payload per measurement, ${CONCURRENCY} \`publish()\` calls in flight, over ${HOT} channels; ${RUNS} repetition(s), cluster and standalone back to back in each (order rotating), medians of the per-repetition values and ratios. Load average ${ctx.load0.toFixed(2)} → ${ctx.load1.toFixed(2)}; ${ctx.elapsedS} s in all.`,
    '',
    '| measure | cluster | standalone | ratio | goal | |',
    '| --- | --- | --- | --- | --- | --- |',
    ...rows.map((r) => `| ${r.join(' | ')} |`),
    '',
    `1: \`used_cpu_user + used_cpu_sys\` (INFO cpu) of every node involved, minus each node's idle rate (cron, cluster-bus pings) measured over 1 s in the same repetition, ÷ publishes ("raw": without that subtraction); "script" is \`cmdstat_evalsha\` usec per call (wall time inside the script). One subscriber received every message on both sides (PSUBSCRIBE on each standalone server, SSUBSCRIBE per channel on the cluster)${complete ? '' : ' — **some measurement timed out before every message arrived**'}. ` +
      `3: \`/proc/<pid>/io\` rchar / wchar (clients, cluster bus, everything) and \`cluster_stats_messages_received\` of the two primaries that do not own the one-shard channels (owner :${ctx.ownerPort}), idle rates subtracted; "classic PUBLISH" is a \`PUBLISH\` of a message of the same size on the owner (what the standalone path would send on a cluster), with one subscriber there. ` +
      `4: the edge process's scheduler runtime from the first publish until a sentinel published after the batch reached its client(s), minus its runtime over an idle window of the same length right after (timers, probes, slot-map refreshes); \`cyclone_sse_edge_messages_received_total\` and \`deliveries_total\` from its metrics.`,
    '',
  ].join('\n');
  process.stdout.write(`\n${text}\n`);
  if (APPEND) {
    appendFileSync(DOC, `\n${text}`);
    log(`appended to ${DOC}`);
  }
}

main().catch((err) => {
  log(String(err.stack ?? err));
  process.exit(1);
});
