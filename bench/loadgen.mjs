#!/usr/bin/env node
/**
 * Load generator for `npm run bench`: one process, raw `net` sockets with a shared static read
 * buffer (`onread`, no Buffer per read) and a streaming scan that only looks at `data: k=` lines.
 * Started by bench/run.mjs (pinned to its own core) with one JSON argument:
 *
 *   { port, pubPort, n, concurrency, serverPids, auxPids, metrics? }
 *
 * Every payload is 128 bytes: `k=<7 digits> t=<12 digits, send time in µs> xxx…`; k is unique
 * per message in the run, so per subscriber we know exactly which messages must arrive, and can
 * count missing, duplicated and reordered ones. Prints one JSON result line on stdout.
 */
import net from 'node:net';
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { groupCpuNs, groupTicksNs, groupUserSysNs, rssBytes } from './proc-stats.mjs';

const cfg = JSON.parse(process.argv[2]);
const N = cfg.n;
const HOST = '127.0.0.1';
const CHANNELS = 100;
const PAYLOAD = 128;

/** Phases in order; k ranges are consecutive. `report: false` = warm-up, not in the results. */
const PHASES = [
  { name: 'warmup', count: 5, rate: 5, target: 'common', report: false },
  // Steady state (default; `--cold` leaves it out): a long-running hub has its code optimised and
  // its heaps grown. Without this, a fresh process spends the measured phases in V8's baseline
  // tiers and faulting in new heap pages (25–50 µs per page fault on this VM): the channels phase
  // then measured start-up, not the cost of a message. The same for every server, naive included.
  ...(cfg.cold ? [] : [{ name: 'warmup-channels', count: 3000, rate: 1000, target: 'round-robin', report: false }]),
  { name: 'fanout', count: 25, rate: 5, target: 'common', report: true },
  { name: 'channels', count: 1000, rate: 200, target: 'round-robin', report: true },
  { name: 'burst', count: 20, rate: Infinity, target: 'common', report: true },
  // The same 20 messages as 20 separate POSTs back to back, each waiting for its answer.
  { name: 'burst-separate', count: 20, rate: Infinity, separate: true, target: 'common', report: true },
];
let kBase = 0;
for (const p of PHASES) {
  p.k0 = kBase;
  kBase += p.count;
}
const M = kBase; // messages in the run
const phaseOfK = new Uint8Array(M);
PHASES.forEach((p, i) => phaseOfK.fill(i, p.k0, p.k0 + p.count));
const channelOf = (phase, j) => (phase.target === 'common' ? 'common' : `c${j % CHANNELS}`);

// Expected deliveries per phase.
const perChannel = new Array(CHANNELS).fill(0);
for (let i = 0; i < N; i++) perChannel[i % CHANNELS]++;
for (const p of PHASES) {
  if (p.target === 'common') p.expected = p.count * N;
  else {
    p.expected = 0;
    for (let j = 0; j < p.count; j++) p.expected += perChannel[j % CHANNELS];
  }
}

// ---- per-subscriber state (typed arrays, no object per delivery) ----
const counts = new Uint8Array(N * M);
const lastK = new Int32Array(N).fill(-1);
const ready = new Uint8Array(N);
/** @type {(Buffer|undefined)[]} bytes after the last newline of the previous read */
const carry = new Array(N);
const received = new Float64Array(PHASES.length);
const duplicated = new Float64Array(PHASES.length);
const reordered = new Float64Array(PHASES.length);
const unexpected = new Float64Array(PHASES.length);
const lastRecvUs = new Float64Array(PHASES.length);
const latencies = PHASES.map((p) => new Float64Array(p.expected));
/** Slowest delivery of each message (µs), for the per-message view in the raw JSON. */
const perMessageMax = new Float64Array(M);
let readyCount = 0;
let closedCount = 0;
let bytesIn = 0;
let reads = 0;

const PAT = Buffer.from('data: k=');
const OK = Buffer.from(':ok\n');
const readBuf = Buffer.allocUnsafe(256 * 1024);

function digits(buf, at, len) {
  let v = 0;
  for (let i = at; i < at + len; i++) v = v * 10 + (buf[i] - 48);
  return v;
}

function onData(i, nread) {
  if (nread <= 0) return;
  const nowUs = performance.now() * 1000;
  reads++;
  bytesIn += nread;
  let data = readBuf.subarray(0, nread);
  const prev = carry[i];
  if (prev !== undefined) {
    data = Buffer.concat([prev, data]);
    carry[i] = undefined;
  }
  const lastNl = data.lastIndexOf(10);
  if (lastNl < data.length - 1) carry[i] = Buffer.from(data.subarray(lastNl + 1)); // copy: readBuf is reused
  if (lastNl < 0) return;
  if (ready[i] === 0) {
    const at = data.indexOf(OK);
    if (at >= 0 && at < lastNl) {
      ready[i] = 1;
      readyCount++;
      onReady();
    }
  }
  let p = data.indexOf(PAT);
  while (p !== -1 && p < lastNl) {
    const k = digits(data, p + 8, 7);
    const t = digits(data, p + 18, 12);
    if (k < M) record(i, k, t, nowUs);
    p = data.indexOf(PAT, p + 30);
  }
}

function record(i, k, t, nowUs) {
  const ph = phaseOfK[k];
  const phase = PHASES[ph];
  if (phase.target !== 'common' && (k - phase.k0) % CHANNELS !== i % CHANNELS) {
    unexpected[ph]++;
    return;
  }
  const idx = i * M + k;
  const c = counts[idx];
  if (c < 255) counts[idx] = c + 1;
  if (c > 0) {
    duplicated[ph]++;
    return;
  }
  if (k < lastK[i]) reordered[ph]++;
  else lastK[i] = k;
  const lat = nowUs - t;
  latencies[ph][received[ph]++] = lat;
  if (lat > perMessageMax[k]) perMessageMax[k] = lat;
  lastRecvUs[ph] = nowUs;
}

// ---- connecting, `concurrency` at a time ----
let nextConn = 0;
let inflight = 0;
let onAllReady;
const sockets = [];

function openOne() {
  const i = nextConn++;
  inflight++;
  const s = net.connect({
    host: HOST,
    port: cfg.port,
    noDelay: true,
    onread: { buffer: readBuf, callback: (nread) => onData(i, nread) },
  });
  s.on('connect', () => s.write(`GET /?channels=common&channels=c${i % CHANNELS} HTTP/1.1\r\nHost: ${HOST}:${cfg.port}\r\n\r\n`));
  s.on('error', () => {});
  s.on('close', () => {
    closedCount++;
    if (!ready[i]) {
      // refused before it subscribed: count it as ready-and-failed so the run goes on
      ready[i] = 2;
      readyCount++;
      onReady();
    }
  });
  sockets.push(s);
}

function onReady() {
  inflight--;
  while (inflight < cfg.concurrency && nextConn < N) openOne();
  if (readyCount === N && onAllReady) onAllReady();
}

// ---- publishing ----
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 }); // one socket: publish order = k order
let publishErrors = 0;

function payload(k) {
  const t = Math.round(performance.now() * 1000);
  return `k=${String(k).padStart(7, '0')} t=${String(t).padStart(12, '0')} `.padEnd(PAYLOAD, 'x');
}

function post(body) {
  return new Promise((resolve) => {
    const req = http.request(
      {
        host: HOST,
        port: cfg.pubPort,
        path: '/publish',
        method: 'POST',
        agent,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        if (res.statusCode !== 200) publishErrors++;
        res.resume();
        res.on('end', resolve);
      },
    );
    req.on('error', () => {
      publishErrors++;
      resolve();
    });
    req.end(body);
  });
}

async function metricCounters() {
  if (!cfg.metricsPort) return undefined;
  try {
    const text = await (await fetch(`http://${HOST}:${cfg.metricsPort}/metrics`)).text();
    const get = (name) => {
      const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
      return m ? Number(m[1]) : NaN;
    };
    return {
      writes: get('cyclone_sse_edge_writes_total'),
      coalesced: get('cyclone_sse_edge_coalesced_writes_total'),
      backpressure: get('cyclone_sse_edge_backpressure_total'),
    };
  } catch {
    return undefined;
  }
}

function percentile(sorted, q) {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

async function runPhase(index) {
  const phase = PHASES[index];
  const m0 = await metricCounters();
  const cpu0 = groupCpuNs(cfg.serverPids);
  const aux0 = groupCpuNs(cfg.auxPids);
  const tick0 = groupTicksNs(cfg.serverPids);
  const lg0 = process.cpuUsage();
  const us0 = groupUserSysNs(cfg.serverPids);
  const start = performance.now();
  const sends = [];
  if (phase.rate === Infinity && phase.separate) {
    sends.push(
      (async () => {
        for (let j = 0; j < phase.count; j++) await post(JSON.stringify({ channel: channelOf(phase, j), data: payload(phase.k0 + j) }));
      })(),
    );
  } else if (phase.rate === Infinity) {
    const batch = [];
    for (let j = 0; j < phase.count; j++) batch.push({ channel: channelOf(phase, j), data: payload(phase.k0 + j) });
    sends.push(post(JSON.stringify(batch)));
  } else {
    const interval = 1000 / phase.rate;
    for (let j = 0; j < phase.count; j++) {
      const wait = start + j * interval - performance.now();
      if (wait >= 1) await sleep(wait);
      sends.push(post(JSON.stringify({ channel: channelOf(phase, j), data: payload(phase.k0 + j) })));
    }
  }
  const sentAt = performance.now();
  // Done when every expected delivery arrived, or nothing new came for `stallMs`.
  let last = -1;
  let lastChange = performance.now();
  while (received[index] < phase.expected) {
    await sleep(5);
    if (received[index] !== last) {
      last = received[index];
      lastChange = performance.now();
    } else if (performance.now() - lastChange > cfg.stallMs && performance.now() - sentAt > cfg.stallMs) break;
  }
  const cpu1 = groupCpuNs(cfg.serverPids);
  const aux1 = groupCpuNs(cfg.auxPids);
  const tick1 = groupTicksNs(cfg.serverPids);
  const lg1 = process.cpuUsage(lg0);
  const us1 = groupUserSysNs(cfg.serverPids);
  await Promise.all(sends);
  const m1 = await metricCounters();
  const got = received[index];
  const lat = latencies[index].subarray(0, got).sort();
  const spanMs = lastRecvUs[index] / 1000 - start;
  return {
    deliveries: got,
    expected: phase.expected,
    missing: phase.expected - got,
    duplicated: duplicated[index],
    reordered: reordered[index],
    unexpected: unexpected[index],
    p50: percentile(lat, 0.5) / 1000,
    p99: percentile(lat, 0.99) / 1000,
    max: (lat.length ? lat[lat.length - 1] : NaN) / 1000,
    rate: got / (spanMs / 1000),
    cpuUs: (cpu1 - cpu0) / 1000 / Math.max(1, got),
    cpuTicksUs: (tick1 - tick0) / 1000 / Math.max(1, got),
    sysShare: (us1.sys - us0.sys) / Math.max(1, us1.user - us0.user + us1.sys - us0.sys),
    auxCpuUs: cfg.auxPids.length ? (aux1 - aux0) / 1000 / Math.max(1, got) : undefined,
    loadgenCpuUs: (lg1.user + lg1.system) / Math.max(1, got),
    loadgenBusy: (lg1.user + lg1.system) / 1000 / Math.max(1, lastRecvUs[index] / 1000 - start),
    perMessageMaxMs:
      phase.count <= 50 || cfg.perMessage
        ? Array.from(perMessageMax.subarray(phase.k0, phase.k0 + phase.count), (x) => Math.round(x / 100) / 10)
        : undefined,
    writesPerDelivery: m0 && m1 ? (m1.writes - m0.writes) / Math.max(1, got) : undefined,
    backpressure: m0 && m1 ? m1.backpressure - m0.backpressure : undefined,
  };
}

async function main() {
  await sleep(500);
  const rssIdle = rssBytes(cfg.serverPids[0]);
  const t0 = performance.now();
  const allReady = new Promise((resolve) => (onAllReady = resolve));
  while (inflight < cfg.concurrency && nextConn < N) openOne();
  const timeout = sleep(cfg.connectTimeoutMs).then(() => 'timeout');
  if ((await Promise.race([allReady, timeout])) === 'timeout')
    throw new Error(`only ${readyCount}/${N} subscribers ready after ${cfg.connectTimeoutMs} ms`);
  const connectMs = performance.now() - t0;
  const failed = ready.reduce((a, r) => a + (r === 2 ? 1 : 0), 0);
  await sleep(1000);
  const rssConnected = rssBytes(cfg.serverPids[0]);
  const phases = {};
  for (let i = 0; i < PHASES.length; i++) {
    if (cfg.phases && PHASES[i].report && !cfg.phases.includes(PHASES[i].name)) continue;
    const r = await runPhase(i);
    if (PHASES[i].report) phases[PHASES[i].name] = r;
    await sleep(300);
  }
  const out = {
    n: N,
    connectMs,
    failedSubscribers: failed,
    closedDuringRun: closedCount,
    rssIdle,
    rssConnected,
    memPerConn: (rssConnected - rssIdle) / N,
    publishErrors,
    reads,
    bytesIn,
    loadgenCpuMs: (process.cpuUsage().user + process.cpuUsage().system) / 1000,
    phases,
  };
  process.stdout.write(JSON.stringify(out) + '\n');
  // The orchestrator stops the server first (its side takes TIME_WAIT), then closes stdin.
  process.stdin.resume();
  process.stdin.on('end', () => process.exit(0));
}

main().catch((err) => {
  process.stdout.write(JSON.stringify({ error: String(err.stack ?? err) }) + '\n');
  process.exit(1);
});
