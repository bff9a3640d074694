#!/usr/bin/env node
/**
 * Redis CPU per publish-shaped script call: INCR + XADD + (S)PUBLISH in one EVALSHA, on a
 * standalone redis-server (PUBLISH, one PSUBSCRIBE subscriber, as the edges do today) and on a
 * primary of a 3-shard Redis Cluster (SPUBLISH with one SSUBSCRIBE subscriber; and, for the
 * broadcast cost, classic PUBLISH), with and without a replica per shard.
 * Numbers are deltas of `INFO commandstats` (cmdstat_evalsha usec: the script's own time) and
 * `INFO cpu` (used_cpu_user + used_cpu_sys of the whole process: also I/O, replication and the
 * cluster bus) over N calls, pipelined `--depth` at a time; the median of `--runs` runs.
 * Not a test. Needs `npm run build` (imports the built testkit).
 *
 *   node bench/cluster-publish.mjs [--calls 20000] [--runs 3] [--depth 50] [--payload 100]
 */
import { Redis } from 'ioredis';
import { startRedis, startRedisCluster } from '@cyclone-sse/testkit';
import { parseInfo } from './proc.mjs';

const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const CALLS = arg('calls', 20_000);
const RUNS = arg('runs', 3);
const DEPTH = arg('depth', 50);
const PAYLOAD = 'x'.repeat(arg('payload', 100));

const LUA = `
local s = redis.call('INCR', KEYS[1])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', 1000, s .. '-0', 'f', ARGV[3])
redis.call(ARGV[1], ARGV[2], s .. ' 0 ' .. ARGV[3])
return s`;

async function sample(redis) {
  const cpu = parseInfo(await redis.info('cpu'));
  const stats = parseInfo(await redis.info('commandstats'));
  const m = /calls=(\d+),usec=(\d+)/.exec(stats.cmdstat_evalsha ?? '') ?? [0, 0, 0];
  return {
    cpuUs: (Number(cpu.used_cpu_user) + Number(cpu.used_cpu_sys)) * 1e6,
    mainUs: (Number(cpu.used_cpu_user_main_thread ?? 0) + Number(cpu.used_cpu_sys_main_thread ?? 0)) * 1e6,
    calls: Number(m[1]),
    usec: Number(m[2]),
  };
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/**
 * One variant: `target` runs the script; `watch` are other nodes whose CPU is charged too
 * (replica, other primaries); `subscribe` opens the subscriber.
 */
async function variant(name, { port, command, channel, keys, watch = [], subscribe }) {
  const client = new Redis({ port, host: '127.0.0.1' });
  const sub = new Redis({ port: subscribe.port, host: '127.0.0.1' });
  let received = 0;
  for (const ev of ['message', 'pmessage', 'smessage']) sub.on(ev, () => received++);
  await subscribe.run(sub);
  const sha = await client.script('LOAD', LUA);
  const watchers = watch.map((p) => new Redis({ port: p, host: '127.0.0.1' }));
  const runs = [];
  for (let r = 0; r < RUNS; r++) {
    // warm-up
    for (let i = 0; i < 1000; i += DEPTH) {
      const p = client.pipeline();
      for (let j = 0; j < DEPTH; j++) p.evalsha(sha, 2, keys[0], keys[1], command, channel, PAYLOAD);
      await p.exec();
    }
    const before = await sample(client);
    const wBefore = await Promise.all(watchers.map(sample));
    const got0 = received;
    for (let i = 0; i < CALLS; i += DEPTH) {
      const p = client.pipeline();
      for (let j = 0; j < DEPTH; j++) p.evalsha(sha, 2, keys[0], keys[1], command, channel, PAYLOAD);
      await p.exec();
    }
    const deadline = Date.now() + 10_000;
    while (received - got0 < CALLS && Date.now() < deadline) await new Promise((res) => setTimeout(res, 5));
    const after = await sample(client);
    const wAfter = await Promise.all(watchers.map(sample));
    const calls = after.calls - before.calls;
    runs.push({
      scriptUs: (after.usec - before.usec) / calls,
      cpuUs: (after.cpuUs - before.cpuUs) / calls,
      othersUs: wAfter.reduce((s, w, i) => s + (w.cpuUs - wBefore[i].cpuUs), 0) / calls,
      delivered: received - got0,
    });
  }
  client.disconnect();
  sub.disconnect();
  for (const w of watchers) w.disconnect();
  const row = {
    variant: name,
    'evalsha usec/call': median(runs.map((r) => r.scriptUs)).toFixed(1),
    'node CPU µs/call': median(runs.map((r) => r.cpuUs)).toFixed(1),
    'other nodes CPU µs/call': watch.length ? median(runs.map((r) => r.othersUs)).toFixed(1) : '-',
    delivered: `${median(runs.map((r) => r.delivered))}/${CALLS}`,
  };
  console.error(JSON.stringify(row));
  return row;
}

const rows = [];
const standalone = await startRedis();
try {
  rows.push(
    await variant('standalone, PUBLISH, 1 PSUBSCRIBE', {
      port: standalone.port,
      command: 'PUBLISH',
      channel: 'b:ch:news',
      keys: ['b:seq', 'b:h:news'],
      subscribe: { port: standalone.port, run: (s) => s.psubscribe('b:ch:*') },
    }),
  );
} finally {
  await standalone.stop();
}

for (const replicas of [0, 1]) {
  const c = await startRedisCluster({ primaries: 3, replicasPerPrimary: replicas });
  try {
    const port = await c.slotOwner(360); // {p60}
    const others = c.nodes.filter((n) => n.port !== port).map((n) => n.port);
    const shardReplica = (await c.shards())
      .find((s) => s.nodes.some((n) => n.port === port))
      .nodes.filter((n) => n.port !== port)
      .map((n) => n.port);
    const base = { port, keys: ['b:{p60}:seq', 'b:{p60}:h:news'] };
    rows.push(
      await variant(`cluster R=${replicas}, SPUBLISH, 1 SSUBSCRIBE`, {
        ...base,
        command: 'SPUBLISH',
        channel: 'b:{p60}:ch:news',
        watch: shardReplica,
        subscribe: { port, run: (s) => s.ssubscribe('b:{p60}:ch:news') },
      }),
    );
    rows.push(
      await variant(`cluster R=${replicas}, classic PUBLISH, 1 SUBSCRIBE`, {
        ...base,
        command: 'PUBLISH',
        channel: 'b:ch:news',
        watch: others,
        subscribe: { port, run: (s) => s.subscribe('b:ch:news') },
      }),
    );
  } finally {
    await c.close();
  }
}
console.log(
  `\n${CALLS} calls × ${RUNS} runs (median), pipeline depth ${DEPTH}, payload ${PAYLOAD.length} B, ${new Date().toISOString()}\n`,
);
console.table(rows);
