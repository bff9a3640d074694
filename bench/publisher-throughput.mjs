#!/usr/bin/env node
/**
 * Publisher throughput (issue 15): publishes/s of the standalone publisher
 * (packages/publisher/dist/main.js) on a private redis-server, under a closed-loop HTTP load
 * (bench/publish-loadgen.mjs: keep-alive connections, each with `--pipeline` requests in flight,
 * wrk-style), and what each publish costs:
 *
 *   - publishes/s            200 answers ÷ wall time of the measured window;
 *   - per publisher CPU-s    200 answers ÷ the publisher's utime+stime over the window
 *                            (/proc/<pid>/stat; every thread) — "publishes/s per core";
 *   - Redis µs/publish       Δ(used_cpu_user + used_cpu_sys) of the private redis ÷ answers, and
 *                            the script's own time (INFO commandstats, evalsha/eval usec) per call, and
 *                            publishes per script call (the publisher batches a turn's publishes).
 *
 * Publisher pinned to core 0; redis-server and the load generator share core 1 (their CPU is
 * not counted as the publisher's). Each (connections) point starts a fresh Redis and publisher,
 * warms up, then measures one window; the median over `--runs` is reported.
 *
 *   node bench/publisher-throughput.mjs                   connections 64,256; 10 s × 3 runs
 *   node bench/publisher-throughput.mjs --quick           connections 128; 3 s × 1 run after 2 s (~8 s)
 *   options: --connections 64,256  --seconds 10  --warmup 2  --runs 3  --pipeline 1
 *            --payload 100  --channels 100  --cpu-prof <dir> (node --cpu-prof of the publisher)
 *            --wait-max <s> (in all, for moments when other processes use < 0.3 cores; default 300)
 *            --publisher-args "<extra flags>"  --node-flags "<node/V8 flags after the publisher's V8 flags>"  --json <file>
 *            --compare before=/tmp/copy,after,young16=:--max-semi-space-size=16
 *                 variants compared in the same run, interleaved: label[=<root of a built copy of the
 *                 repository>][:<node flags after the publisher's V8 flags>] (no root: this checkout;
 *                 root `@floor`: bench/floor-publisher.mjs, a bare uWS + ioredis forwarder)
 *
 * Needs Linux (/proc, taskset), redis-server on the PATH and a build (`npx tsc -b`).
 */
import { once } from 'node:events';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { cpuNs, cpuTicksNs, foreignLoad, groupTicksNs, groupUserSysNs, machineTicks } from './proc-stats.mjs';
import { CLIENT_CORE, SERVER_CORE, parseInfo, spawnPinned, startRedis, stopChild } from './proc.mjs';
import { BINS, COMMON, startNode } from './servers.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const { V8_FLAGS_BY_COMPONENT } = await import(join(ROOT, 'packages', 'common', 'dist', 'runtime', 'v8-flags.js'));

function parseArgs(argv) {
  const o = {
    connections: [64, 256],
    seconds: 10,
    warmup: 2,
    runs: 3,
    pipeline: 1,
    payload: 100,
    channels: 100,
    cpuProf: undefined,
    publisherArgs: [],
    nodeFlags: [],
    json: undefined,
    variants: [{ label: '', flags: [], bin: BINS.publisher }],
    waitMax: 300,
  };
  const given = new Set();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => argv[++i];
    given.add(a);
    if (a === '--quick') o.quick = true;
    else if (a === '--connections') o.connections = next().split(',').map(Number);
    else if (a === '--seconds') o.seconds = Number(next());
    else if (a === '--warmup') o.warmup = Number(next());
    else if (a === '--runs') o.runs = Number(next());
    else if (a === '--pipeline') o.pipeline = Number(next());
    else if (a === '--payload') o.payload = Number(next());
    else if (a === '--channels') o.channels = Number(next());
    else if (a === '--cpu-prof') o.cpuProf = resolve(next());
    else if (a === '--publisher-args') o.publisherArgs = next().split(/\s+/).filter(Boolean);
    else if (a === '--node-flags') o.nodeFlags = next().split(/\s+/).filter(Boolean);
    else if (a === '--wait-max') o.waitMax = Number(next());
    else if (a === '--json') o.json = resolve(next());
    else if (a === '--compare')
      o.variants = next()
        .split(',')
        .map((v) => {
          // label[=root][:node flags], e.g. before=/tmp/copy  after  young16=:--max-semi-space-size=16
          const eq = v.indexOf('=');
          const label = eq < 0 ? v : v.slice(0, eq);
          const rest = eq < 0 ? '' : v.slice(eq + 1);
          const colon = rest.indexOf(':');
          const root = colon < 0 ? rest : rest.slice(0, colon);
          const flags =
            colon < 0
              ? []
              : rest
                  .slice(colon + 1)
                  .split(/\s+/)
                  .filter(Boolean);
          // `@floor`: bench/floor-publisher.mjs, the least a publisher can do per request.
          if (root === '@floor') return { label, flags, bin: join(ROOT, 'bench', 'floor-publisher.mjs') };
          return { label, flags, bin: root ? join(resolve(root), 'packages', 'publisher', 'dist', 'main.js') : BINS.publisher };
        });
    else throw new Error(`unknown option ${a} (see the header of bench/publisher-throughput.mjs)`);
  }
  if (o.quick) {
    if (!given.has('--connections')) o.connections = [128];
    if (!given.has('--seconds')) o.seconds = 3;
    if (!given.has('--warmup')) o.warmup = 2;
    if (!given.has('--runs')) o.runs = 1;
    if (!given.has('--wait-max')) o.waitMax = 20;
  }
  return o;
}

const log = (msg) => process.stderr.write(`[publisher-bench] ${msg}\n`);

/** A private redis-server on core 1 (with the load generator) and a client to sample it. */
async function startRedisWithClient() {
  const redis = await startRedis(CLIENT_CORE);
  const client = new Redis({ port: redis.port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0 });
  try {
    await client.connect();
  } catch (err) {
    await stopChild(redis.child);
    throw err;
  }
  return { ...redis, client };
}

/** The publisher `bin` on core 0, on the Redis on `redisPort`. */
function startPublisher(bin, redisPort, nodeFlags, extraArgs) {
  return startNode(
    'publisher',
    SERVER_CORE,
    bin,
    [...COMMON, '--redis-url', `redis://127.0.0.1:${redisPort}`, ...extraArgs],
    [...V8_FLAGS_BY_COMPONENT.publisher, ...nodeFlags],
  );
}

async function redisSample(client) {
  const cpu = parseInfo(await client.info('cpu'));
  const stats = parseInfo(await client.info('commandstats'));
  let calls = 0;
  let usec = 0;
  for (const name of ['cmdstat_evalsha', 'cmdstat_eval']) {
    const m = /calls=(\d+),usec=(\d+)/.exec(stats[name] ?? '');
    if (m) {
      calls += Number(m[1]);
      usec += Number(m[2]);
    }
  }
  let evalCalls = 0;
  const e = /calls=(\d+)/.exec(stats.cmdstat_eval ?? '');
  if (e) evalCalls = Number(e[1]);
  return { cpuUs: (Number(cpu.used_cpu_user) + Number(cpu.used_cpu_sys)) * 1e6, calls, usec, evalCalls };
}

function percentile(hist, bucketUs, q) {
  const total = hist.reduce((a, b) => a + b, 0);
  if (total === 0) return 0;
  let seen = 0;
  for (let i = 0; i < hist.length; i++) {
    seen += hist[i];
    if (seen >= q * total) return ((i + 1) * bucketUs) / 1000;
  }
  return (hist.length * bucketUs) / 1000;
}

/** One fresh Redis + publisher, one load generator, one measured window. */
async function point(variant, connections, run, opts) {
  const redis = await startRedisWithClient();
  const flags = [...opts.nodeFlags, ...variant.flags];
  if (opts.cpuProf)
    flags.push(
      '--cpu-prof',
      '--cpu-prof-dir',
      opts.cpuProf,
      '--cpu-prof-name',
      `publisher-${variant.label || 'x'}-c${connections}-r${run}-${Date.now()}.cpuprofile`,
    );
  let pub;
  let lg;
  try {
    pub = await startPublisher(variant.bin, redis.port, flags, opts.publisherArgs);
    lg = spawnPinned(
      CLIENT_CORE,
      process.execPath,
      [
        join(ROOT, 'bench', 'publish-loadgen.mjs'),
        JSON.stringify({ port: pub.port, connections, pipeline: opts.pipeline, channels: opts.channels, payload: opts.payload }),
      ],
      { stdio: ['pipe', 'pipe', 'inherit'] },
    );
    const lines = createInterface({ input: lg.stdout })[Symbol.asyncIterator]();
    const mark = async () => {
      lg.stdin.write('mark\n');
      const { value, done } = await lines.next();
      if (done) throw new Error('load generator exited');
      return JSON.parse(value);
    };
    await sleep(opts.warmup * 1000);
    const m0 = await mark();
    const p0 = { ticks: cpuTicksNs(pub.child.pid), sched: cpuNs(pub.child.pid), us: groupUserSysNs([pub.child.pid]) };
    const r0 = await redisSample(redis.client);
    const lg0 = cpuNs(lg.pid);
    const ours = [pub.child.pid, redis.child.pid, lg.pid, process.pid];
    const mt0 = machineTicks().busy;
    const ours0 = groupTicksNs(ours);
    await sleep(opts.seconds * 1000);
    const m1 = await mark();
    const p1 = { ticks: cpuTicksNs(pub.child.pid), sched: cpuNs(pub.child.pid), us: groupUserSysNs([pub.child.pid]) };
    const r1 = await redisSample(redis.client);
    const lg1 = cpuNs(lg.pid);
    const foreignNs = (machineTicks().busy - mt0) * 1e7 - (groupTicksNs(ours) - ours0);
    const ok = m1.ok - m0.ok;
    const wallS = (m1.t - m0.t) / 1000;
    const pubCpuS = (p1.ticks - p0.ticks) / 1e9;
    const calls = r1.calls - r0.calls;
    return {
      variant: variant.label,
      connections,
      run,
      ok,
      bad: m1.bad - m0.bad,
      wallS,
      publishesPerS: ok / wallS,
      pubCpuS,
      pubCores: pubCpuS / wallS,
      perPubCpuS: ok / pubCpuS,
      pubUsPerPublish: (pubCpuS * 1e6) / ok,
      pubSysShare: (p1.us.sys - p0.us.sys) / (p1.ticks - p0.ticks),
      perPubCpuSSched: ok / ((p1.sched - p0.sched) / 1e9),
      redisCpuUsPerPublish: (r1.cpuUs - r0.cpuUs) / ok,
      redisCores: (r1.cpuUs - r0.cpuUs) / 1e6 / wallS,
      scriptUsPerCall: calls ? (r1.usec - r0.usec) / calls : 0,
      scriptCalls: calls,
      publishesPerCall: calls ? ok / calls : 0,
      evalCalls: r1.evalCalls - r0.evalCalls,
      loadgenCores: (lg1 - lg0) / 1e9 / wallS,
      foreignCores: Math.max(0, foreignNs / 1e9 / wallS),
      p50ms: percentile(m1.lat, m1.bucketUs, 0.5),
      p99ms: percentile(m1.lat, m1.bucketUs, 0.99),
    };
  } finally {
    if (lg) {
      lg.stdin.write('stop\n');
      const t = setTimeout(() => lg.kill('SIGKILL'), 5000);
      if (lg.exitCode === null) await once(lg, 'exit');
      clearTimeout(t);
    }
    if (pub) await stopChild(pub.child);
    redis.client.disconnect();
    await stopChild(redis.child);
  }
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const k = (x) => (x >= 1000 ? `${(x / 1000).toFixed(1)}k` : x.toFixed(0));

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  if (opts.cpuProf) mkdirSync(opts.cpuProf, { recursive: true });
  const model = cpus()[0]?.model ?? '?';
  log(
    `${cpus().length} × ${model}, node ${process.version}; publisher on core ${SERVER_CORE}, redis-server + load generator on core ${CLIENT_CORE}`,
  );
  const results = [];
  let waitBudget = opts.waitMax;
  for (let run = 1; run <= opts.runs; run++) {
    for (const c of opts.connections) {
      // Rotate the variants each run so none always goes first.
      const order = opts.variants.map((_, i) => opts.variants[(i + run - 1) % opts.variants.length]);
      for (const v of order) {
        if (waitBudget > 0) {
          const t0 = Date.now();
          let load;
          while ((load = await foreignLoad(2000)) > 0.3 && Date.now() - t0 < waitBudget * 1000) await sleep(1000);
          waitBudget -= (Date.now() - t0) / 1000;
          if (load > 0.3) log(`machine still busy (other processes use ${load.toFixed(2)} cores); measuring anyway`);
        }
        const r = await point(v, c, run, opts);
        log(
          `run ${run}/${opts.runs} ${v.label ? `${v.label} ` : ''}connections ${c}: ${k(r.publishesPerS)}/s, ${k(r.perPubCpuS)} per publisher CPU-s (${r.pubUsPerPublish.toFixed(1)} µs/publish, ${(100 * r.pubSysShare).toFixed(0)} % kernel; ${r.pubCores.toFixed(2)} cores), ` +
            `redis ${r.redisCpuUsPerPublish.toFixed(1)} µs/publish (script ${r.scriptUsPerCall.toFixed(1)} µs per call of ${r.publishesPerCall.toFixed(1)} publishes; ${r.redisCores.toFixed(2)} cores), ` +
            `load generator ${r.loadgenCores.toFixed(2)} cores, other processes ${r.foreignCores.toFixed(2)} cores, p50 ${r.p50ms.toFixed(1)} ms p99 ${r.p99ms.toFixed(1)} ms, bad ${r.bad}`,
        );
        results.push(r);
      }
    }
  }
  if (opts.json) writeFileSync(opts.json, JSON.stringify({ opts, results }, null, 1));
  const labelled = opts.variants.length > 1 || opts.variants[0].label !== '';
  const points = opts.connections.flatMap((c) => opts.variants.map((v) => ({ c, v })));
  const rows = points.map(({ c, v }) => {
    const rs = results.filter((r) => r.connections === c && r.variant === v.label);
    const m = (f) => median(rs.map(f));
    return (
      `| ${labelled ? `${v.label} | ` : ''}${c} × ${opts.pipeline} | ${k(m((r) => r.publishesPerS))} | ${k(m((r) => r.perPubCpuS))} | ` +
      `${m((r) => r.pubCores).toFixed(2)} | ${m((r) => r.redisCpuUsPerPublish).toFixed(1)} | ${m((r) => r.scriptUsPerCall).toFixed(1)} | ${m((r) => r.publishesPerCall).toFixed(1)} | ` +
      `${m((r) => r.redisCores).toFixed(2)} | ${m((r) => r.loadgenCores).toFixed(2)} | ${m((r) => r.foreignCores).toFixed(2)} | ${m((r) => r.p50ms).toFixed(1)} / ${m((r) => r.p99ms).toFixed(1)} | ${rs.reduce((s, r) => s + r.bad, 0)} |`
    );
  });
  const head =
    `| ${labelled ? 'variant | ' : ''}connections × pipeline | publishes/s | per publisher CPU-s | publisher cores | Redis CPU µs/publish | script µs/call | publishes/call | Redis cores | load generator cores | other processes' cores | p50 / p99 ms | non-200 |\n` +
    `|${labelled ? '---|' : ''}${'---|'.repeat(12)}`;
  process.stdout.write(
    `\n${opts.runs} run(s) × ${opts.seconds} s (after ${opts.warmup} s warm-up), payload ${opts.payload} B over ${opts.channels} channels, medians:\n\n${head}\n${rows.join('\n')}\n`,
  );
}

main().catch((err) => {
  log(String(err.stack ?? err));
  process.exit(1);
});
