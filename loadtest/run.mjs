#!/usr/bin/env node
// Runs loadtest/broadcast.js with k6 against a local cyclone-sse cluster and exits with k6's
// status (0 pass, 99 thresholds failed, other = error).
//
//   npm run loadtest                      # ~1 min: 2 edges + publisher + nginx on a free port
//   npm run loadtest -- --smoke           # ~15 s, few VUs
//   npm run loadtest -- --base-url https://sse.example.com   # no local cluster, your deployment
//
// Flags: --smoke, --base-url URL (skip the local cluster), --edges N (2), --redis-url URL
// ($REDIS_URL, else redis://127.0.0.1:6379), --summary FILE (loadtest/results/summary.json; the
// text table goes next to it as .txt), --k6 PATH (skip loadtest/build-k6.sh). broadcast.js knobs
// (SUBSCRIBERS, RATE, DURATION, …) come from the environment; --smoke only sets defaults for the
// ones you did not set. Arguments after `--` go to `k6 run`.
//
// Everything this script starts (edges, publisher, nginx, k6) is stopped by its own PID on exit,
// and the run's Redis keys (a unique --redis-prefix) are deleted.
import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { connect } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..');

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    smoke: { type: 'boolean', default: false },
    'base-url': { type: 'string' },
    edges: { type: 'string', default: '2' },
    'redis-url': { type: 'string', default: process.env.REDIS_URL || process.env.CYCLONE_SSE_REDIS_URL || 'redis://127.0.0.1:6379' },
    summary: { type: 'string', default: join(here, 'results', 'summary.json') },
    k6: { type: 'string' },
  },
});

const SMOKE = {
  SUBSCRIBERS: '20',
  CHANNELS: '4',
  CHANNELS_PER_SUB: '2',
  RATE: '20',
  PUBLISHERS: '4',
  CONNECT: '2s',
  DURATION: '6s',
  DRAIN: '2s',
};
const knobs = values.smoke ? Object.fromEntries(Object.entries(SMOKE).map(([k, v]) => [k, process.env[k] || v])) : {};

const log = (msg) => console.error(`[loadtest] ${msg}`);
const started = []; // cluster processes (testkit NodeProcess)
const gone = []; // ... that exited before cleanup
let nginx;
let k6;
let cleaning;

async function cleanup() {
  cleaning ??= (async () => {
    if (k6 && k6.exitCode === null && k6.signalCode === null) k6.kill('SIGKILL');
    await nginx?.stop().catch(() => {});
    await Promise.all(started.map((p) => p.stop(5_000).catch(() => {})));
    if (prefix) await deleteKeys(values['redis-url'], prefix).catch((err) => log(`could not delete ${prefix}:* keys: ${err.message}`));
  })();
  return cleaning;
}

let interrupted = false;
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    if (interrupted) return;
    interrupted = true;
    log(`${sig}: stopping`);
    // k6 stops gracefully on SIGINT (and still writes its summary); the rest is cleaned up after.
    if (k6 && k6.exitCode === null) k6.kill('SIGINT');
    else void cleanup().then(() => process.exit(130));
  });
}

let prefix;
try {
  // The first build takes minutes: start it while the cluster comes up.
  const k6Path = values.k6 ? Promise.resolve(values.k6) : buildK6();
  k6Path.catch(() => {}); // awaited below

  let baseUrl = values['base-url'];
  if (!baseUrl) {
    await checkRedis(values['redis-url']);
    const { spawnNode, startNginx } = await import('@cyclone-sse/testkit');
    prefix = `cyclone-sse-lt-${Date.now().toString(36)}-${process.pid}`;
    const common = ['--redis-url', values['redis-url'], '--redis-prefix', prefix];
    const edges = [];
    for (let i = 0; i < Number(values.edges); i++) {
      // Every k6 stream comes from 127.0.0.1 (through the local nginx): lift the per-IP stream cap.
      const e = await spawnNode('edge', [...common, '--drain-seconds', '1', '--max-connections-per-ip', '0']);
      track(e);
      edges.push(e);
    }
    const publisher = await spawnNode('publisher', common);
    track(publisher);
    nginx = await startNginx({ edges: edges.map((e) => e.port), publishers: [publisher.port] });
    baseUrl = nginx.base;
    log(
      `cluster: nginx ${baseUrl} -> edges ${edges.map((e) => e.port).join(', ')}, publisher ${publisher.port}; redis ${values['redis-url']} prefix ${prefix}`,
    );
  }

  const bin = await k6Path;
  const summaryJson = resolve(values.summary);
  const summaryTxt = summaryJson.replace(/\.json$/, '') + '.txt';
  mkdirSync(dirname(summaryJson), { recursive: true });
  const env = {
    ...process.env,
    ...knobs,
    BASE_URL: baseUrl,
    SUMMARY_JSON: summaryJson,
    SUMMARY_TXT: summaryTxt,
    K6_NO_USAGE_REPORT: 'true',
  };
  if (values['base-url'] && process.env.PUBLISH_URL) env.PUBLISH_URL = process.env.PUBLISH_URL;
  const total = ['CONNECT', 'DURATION', 'DRAIN'].reduce(
    (s, k) => s + seconds(env[k] ?? { CONNECT: '5s', DURATION: '45s', DRAIN: '5s' }[k]),
    0,
  );
  const k6Args = ['run', '--quiet', '--address', '', join(here, 'broadcast.js'), ...positionals];
  log(`k6 ${k6Args.map((a) => a || "''").join(' ')} (about ${Math.round(total)} s)`);
  // Node cannot raise RLIMIT_NOFILE for a child: let bash do it (one fd per stream).
  k6 = spawn('bash', ['-c', 'ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$@"', 'k6', bin, ...k6Args], {
    cwd: root,
    env,
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const watchdog = setTimeout(
    () => {
      log(`k6 still running after ${Math.round(total + 90)} s: killing it`);
      k6.kill('SIGKILL');
    },
    (total + 90) * 1000,
  );
  const [code, signal] = await new Promise((res) => k6.on('exit', (c, s) => res([c, s])));
  clearTimeout(watchdog);
  for (const p of gone) log(`a cluster process (pid ${p.pid}) exited during the run:\n${p.output().slice(-2000)}`);
  log(`k6 exited with ${code ?? signal}; summary: ${summaryJson}`);
  await cleanup();
  process.exit(code ?? 1);
} catch (err) {
  log(err.stack || String(err));
  await cleanup();
  process.exit(1);
}

function track(p) {
  started.push(p);
  void p.exited.then(() => {
    if (!cleaning) gone.push(p);
  });
}

function seconds(s) {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(String(s).trim());
  if (!m) return 60;
  const n = Number(m[1]);
  return m[2] === 'ms' ? n / 1000 : m[2] === 'm' ? n * 60 : n;
}

/** Runs build-k6.sh (cached after the first build) and resolves with the binary's path. */
function buildK6() {
  return new Promise((res, rej) => {
    const child = spawn('bash', [join(here, 'build-k6.sh')], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.on('error', rej);
    child.on('exit', (code) => {
      const path = out.trim().split('\n').pop();
      if (code === 0 && path) res(path);
      else rej(new Error(`build-k6.sh failed (exit ${code})`));
    });
  });
}

function redisAddress(url) {
  const u = new URL(url);
  return { host: u.hostname || '127.0.0.1', port: Number(u.port || 6379) };
}

/** Fails early with a clear message when Redis does not answer. */
function checkRedis(url) {
  const { host, port } = redisAddress(url);
  return new Promise((res, rej) => {
    const s = connect(port, host);
    const fail = (why) => {
      s.destroy();
      rej(new Error(`Redis at ${url} is not reachable (${why}); start one (redis-server) or pass --redis-url / REDIS_URL`));
    };
    s.setTimeout(2000, () => fail('timeout'));
    s.once('error', (e) => fail(e.message));
    s.once('connect', () => {
      s.destroy();
      res();
    });
  });
}

/** Deletes this run's keys (`<prefix>:*`); the prefix is unique per run. */
async function deleteKeys(url, pfx) {
  const { Redis } = await import('ioredis');
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await redis.connect();
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${pfx.replace(/[*?[\]\\]/g, '\\$&')}:*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length) await redis.unlink(...keys);
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
}
