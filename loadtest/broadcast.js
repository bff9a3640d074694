// cyclone-sse broadcast load test (k6 + the k6/x/sse extension in loadtest/xk6-sse).
//
// Two actors, one scenario each:
//   subscribers  one SSE stream per VU (constant-vus), held for the whole test. The extension
//                checks every stream itself: per (channel, publisher) message counters carried in
//                the payload (gaps, duplicates), ids strictly increasing, and publish → receive
//                latency from the send time in the payload. A stream that fails is closed and
//                reopened with Last-Event-ID (the server must replay what was missed; the
//                extension keeps checking continuity across the reconnect).
//   publishers   POST /publish at a constant arrival rate, starting CONNECT after the
//                subscribers so every stream is open before the first message. Each publisher VU
//                numbers its messages per channel: data = {"c":channel,"p":vu,"n":counter,"t":ms}.
//
// Knobs (k6 -e NAME=value or environment variables), with defaults:
//   BASE_URL          http://127.0.0.1:8080  hub URL; subscribers GET <BASE_URL>/?channels=…
//   PUBLISH_URL       <BASE_URL>/publish     publish endpoint (JSON {"channel","data"})
//   PUBLISH_AUTH      (none)                 Authorization header for publishes, e.g. "Bearer s3cret"
//   SUBSCRIBE_AUTH    (none)                 Authorization header for the streams
//   SUBSCRIBERS       200                    concurrent streams (one VU each; mind `ulimit -n`)
//   CHANNELS          10                     channels in the run
//   CHANNELS_PER_SUB  2                      channels per stream (consecutive, so audiences are equal)
//   RATE              100                    publishes per second, whole test
//   PUBLISHERS        8                      publisher VUs pre-allocated (k6 may add up to 4×)
//   CONNECT           5s                     subscribers' head start before the first publish
//   DURATION          45s                    publishing time
//   DRAIN             5s                     streams stay open after the last publish
//   PAYLOAD_BYTES     0                      padding added to every message
//   P99_MS            500                    threshold: publish → receive latency p99 (ms)
//   PUBLISH_P99_MS    1000                   threshold: POST /publish duration p99 (ms)
//   MAX_STREAM_ERRORS 0                      threshold: streams that failed (connect, status, drop)
//   CHANNEL_PREFIX    lt-<random>-           channel names are <prefix><i>
//   SUMMARY_JSON      loadtest/results/summary.json   handleSummary outputs (directories must exist)
//   SUMMARY_TXT       loadtest/results/summary.txt
// Total run time ≈ CONNECT + DURATION + DRAIN (about a minute by default).
import http from 'k6/http';
import exec from 'k6/execution';
import { check, sleep } from 'k6';
import { Counter, Rate } from 'k6/metrics';
import sse from 'k6/x/sse';

const env = (name, def) => (__ENV[name] !== undefined && __ENV[name] !== '' ? __ENV[name] : def);
const seconds = (s) => {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(String(s).trim());
  if (!m) throw new Error(`bad duration ${s}`);
  const n = Number(m[1]);
  return m[2] === 'ms' ? n / 1000 : m[2] === 'm' ? n * 60 : n;
};

const BASE_URL = env('BASE_URL', 'http://127.0.0.1:8080').replace(/\/+$/, '');
const PUBLISH_URL = env('PUBLISH_URL', `${BASE_URL}/publish`);
const PUBLISH_AUTH = env('PUBLISH_AUTH', '');
const SUBSCRIBE_AUTH = env('SUBSCRIBE_AUTH', '');
const SUBSCRIBERS = Number(env('SUBSCRIBERS', 200));
const CHANNELS = Number(env('CHANNELS', 10));
const CHANNELS_PER_SUB = Math.min(Number(env('CHANNELS_PER_SUB', 2)), CHANNELS);
const RATE = Number(env('RATE', 100));
const PUBLISHERS = Number(env('PUBLISHERS', 8));
const CONNECT = seconds(env('CONNECT', '5s'));
const DURATION = seconds(env('DURATION', '45s'));
const DRAIN = seconds(env('DRAIN', '5s'));
const PAYLOAD_BYTES = Number(env('PAYLOAD_BYTES', 0));
const P99_MS = Number(env('P99_MS', 500));
const PUBLISH_P99_MS = Number(env('PUBLISH_P99_MS', 1000));
const MAX_STREAM_ERRORS = Number(env('MAX_STREAM_ERRORS', 0));
const SUMMARY_JSON = env('SUMMARY_JSON', 'loadtest/results/summary.json');
const SUMMARY_TXT = env('SUMMARY_TXT', 'loadtest/results/summary.txt');

const publishes = new Counter('publishes');
const publishErrors = new Rate('publish_errors');
// Per successful publish: how many streams subscribe to its channel. Compared with sse_messages
// in the summary (delivered / expected), it also catches losses at the very end of the run,
// which no later message can reveal as a gap.
const deliveriesExpected = new Counter('deliveries_expected');

export const options = {
  scenarios: {
    subscribers: {
      executor: 'constant-vus',
      exec: 'subscribe',
      vus: SUBSCRIBERS,
      duration: `${CONNECT + DURATION + DRAIN}s`,
      gracefulStop: '5s',
      tags: { actor: 'subscriber' },
    },
    publishers: {
      executor: 'constant-arrival-rate',
      exec: 'publish',
      startTime: `${CONNECT}s`,
      rate: RATE,
      timeUnit: '1s',
      duration: `${DURATION}s`,
      preAllocatedVUs: PUBLISHERS,
      maxVUs: PUBLISHERS * 4,
      gracefulStop: '5s',
      tags: { actor: 'publisher' },
    },
  },
  thresholds: {
    sse_latency: [`p(99)<${P99_MS}`],
    sse_gaps: ['count==0'],
    sse_duplicates: ['count==0'],
    sse_reorders: ['count==0'],
    sse_messages: ['count>0'],
    sse_streams: [`count>=${SUBSCRIBERS}`],
    sse_errors: [`count<=${MAX_STREAM_ERRORS}`],
    publish_errors: ['rate==0'],
    'http_req_duration{name:publish}': [`p(99)<${PUBLISH_P99_MS}`],
  },
  summaryTrendStats: ['avg', 'min', 'med', 'p(90)', 'p(95)', 'p(99)', 'max'],
  setupTimeout: '30s',
  teardownTimeout: '10s',
};

// The channel names must be the same in every VU: setup() runs once and hands them out.
export function setup() {
  const prefix = env('CHANNEL_PREFIX', `lt-${Math.random().toString(36).slice(2, 8)}-`);
  return { channels: Array.from({ length: CHANNELS }, (_, i) => `${prefix}${i}`) };
}

// Stream s subscribes channels s, s+1, … (mod CHANNELS): every channel has the same audience.
function channelsOf(slot, channels) {
  return Array.from({ length: CHANNELS_PER_SUB }, (_, k) => channels[(slot + k) % CHANNELS]);
}
const audiences = [];
function audience(channelIndex) {
  if (audiences[channelIndex] !== undefined) return audiences[channelIndex];
  let n = 0;
  for (let s = 0; s < SUBSCRIBERS; s++) {
    for (let k = 0; k < CHANNELS_PER_SUB; k++) if ((s + k) % CHANNELS === channelIndex) n++;
  }
  audiences[channelIndex] = n;
  return n;
}

// ---- subscribers (per-VU state survives iterations) ----
let slot = -1;
let lastEventId = '';

export function subscribe(data) {
  if (slot < 0) slot = exec.scenario.iterationInTest % SUBSCRIBERS;
  const started = exec.scenario.startTime;
  const publishFrom = started + CONNECT * 1000;
  const endAt = started + (CONNECT + DURATION + DRAIN) * 1000;
  const remaining = endAt - Date.now() - 250;
  if (remaining < 500) {
    sleep(Math.max(0, (endAt - Date.now()) / 1000));
    return;
  }
  const query = channelsOf(slot, data.channels)
    .map((c) => `channels=${encodeURIComponent(c)}`)
    .join('&');
  const headers = {};
  if (SUBSCRIBE_AUTH) headers.Authorization = SUBSCRIBE_AUTH;
  if (lastEventId) headers['Last-Event-ID'] = lastEventId;
  const res = sse.open(
    `${BASE_URL}/?${query}`,
    {
      headers,
      timeout: remaining,
      // Opened before the first publish, and not resuming: every counter must start at 1.
      strict: !lastEventId && Date.now() < publishFrom - 1000,
      tags: { name: 'subscribe' },
    },
    (client) => {
      client.on('error', (e) => {
        console.warn(`stream ${slot}: ${e.kind}: ${e.error()}`);
        client.close();
      });
    },
  );
  check(res, { 'subscribe status 200': (r) => r.status === 200 });
  if (res.lastEventId) lastEventId = res.lastEventId;
  if (!res.timedOut) sleep(1); // back off, then resume with Last-Event-ID
}

// ---- publishers ----
const counters = {};
const failedBefore = {};
let next = -1;

export function publish(data) {
  if (next < 0) next = exec.vu.idInTest % CHANNELS; // spread the VUs over the channels
  const ci = next;
  next = (next + 1) % CHANNELS;
  const c = data.channels[ci];
  const n = (counters[c] || 0) + 1;
  counters[c] = n;
  const msg = { c, p: String(exec.vu.idInTest), n, t: Date.now() };
  if (failedBefore[c]) msg.r = 1; // the previous one may not have been published: not a gap
  if (PAYLOAD_BYTES > 0) msg.pad = 'x'.repeat(PAYLOAD_BYTES);
  const headers = { 'Content-Type': 'application/json' };
  if (PUBLISH_AUTH) headers.Authorization = PUBLISH_AUTH;
  const res = http.post(PUBLISH_URL, JSON.stringify({ channel: c, data: JSON.stringify(msg) }), {
    headers,
    tags: { name: 'publish' },
    timeout: '10s',
  });
  const ok = check(res, {
    'publish status 200': (r) => r.status === 200,
    'publish answered ok': (r) => r.status === 200 && r.json('status') === 'ok',
  });
  failedBefore[c] = !ok;
  publishes.add(1);
  publishErrors.add(!ok);
  if (ok) deliveriesExpected.add(audience(ci));
}

// ---- summary ----
function metric(data, name) {
  const m = data.metrics[name];
  return m ? m.values : {};
}

export function handleSummary(data) {
  const v = (name, key) => metric(data, name)[key] ?? 0;
  const thresholds = {};
  let ok = true;
  for (const [name, m] of Object.entries(data.metrics)) {
    for (const [expr, t] of Object.entries(m.thresholds || {})) {
      thresholds[`${name}: ${expr}`] = t.ok;
      ok = ok && t.ok;
    }
  }
  const messages = v('sse_messages', 'count');
  const expected = v('deliveries_expected', 'count');
  const summary = {
    ok,
    config: {
      baseUrl: BASE_URL,
      subscribers: SUBSCRIBERS,
      channels: CHANNELS,
      channelsPerSubscriber: CHANNELS_PER_SUB,
      rate: RATE,
      connectS: CONNECT,
      durationS: DURATION,
      drainS: DRAIN,
      payloadBytes: PAYLOAD_BYTES,
    },
    durationMs: data.state.testRunDurationMs,
    streams: v('sse_streams', 'count'),
    streamErrors: v('sse_errors', 'count'),
    events: v('sse_event', 'count'),
    messages,
    messagesPerSecond: v('sse_messages', 'rate'),
    deliveriesExpected: expected,
    deliveryRatio: expected > 0 ? messages / expected : null,
    gaps: v('sse_gaps', 'count'),
    duplicates: v('sse_duplicates', 'count'),
    reorders: v('sse_reorders', 'count'),
    latencyMs: pick(metric(data, 'sse_latency')),
    connectMs: pick(metric(data, 'sse_connect_time')),
    publishes: v('publishes', 'count'),
    publishErrorRate: v('publish_errors', 'rate'),
    publishMs: pick(metric(data, 'http_req_duration{name:publish}')),
    droppedIterations: v('dropped_iterations', 'count'),
    thresholds,
  };
  const text = table(summary);
  return { stdout: text, [SUMMARY_JSON]: JSON.stringify(summary, null, 2) + '\n', [SUMMARY_TXT]: text };
}

function pick(values) {
  const out = {};
  for (const k of ['avg', 'med', 'p(95)', 'p(99)', 'max']) if (values[k] !== undefined) out[k] = Math.round(values[k] * 100) / 100;
  return out;
}

function table(s) {
  const fmt = (n) => (n === null || n === undefined ? '-' : Number.isInteger(n) ? String(n) : n.toFixed(2));
  const lat = (m) => `${fmt(m.med)} / ${fmt(m['p(95)'])} / ${fmt(m['p(99)'])} / ${fmt(m.max)} ms`;
  const th = (name) =>
    Object.entries(s.thresholds)
      .filter(([k]) => k.startsWith(`${name}: `))
      .map(([k, ok]) => `${k.slice(name.length + 2)} ${ok ? 'ok' : 'FAILED'}`)
      .join(', ');
  const rows = [
    [
      'streams opened / failed',
      `${fmt(s.streams)} / ${fmt(s.streamErrors)}`,
      [th('sse_streams'), th('sse_errors')].filter(Boolean).join(', '),
    ],
    ['publishes (error rate)', `${fmt(s.publishes)} (${fmt(s.publishErrorRate)})`, th('publish_errors')],
    ['messages received', `${fmt(s.messages)} (${fmt(s.messagesPerSecond)}/s)`, th('sse_messages')],
    [
      'delivered / expected',
      `${fmt(s.messages)} / ${fmt(s.deliveriesExpected)} (${s.deliveryRatio === null ? '-' : (s.deliveryRatio * 100).toFixed(2) + ' %'})`,
      '',
    ],
    ['gaps', fmt(s.gaps), th('sse_gaps')],
    ['duplicates', fmt(s.duplicates), th('sse_duplicates')],
    ['id reorders', fmt(s.reorders), th('sse_reorders')],
    ['latency med/p95/p99/max', lat(s.latencyMs), th('sse_latency')],
    ['publish med/p95/p99/max', lat(s.publishMs), th('http_req_duration{name:publish}')],
    ['connect med/p95/p99/max', lat(s.connectMs), ''],
    ['dropped publish iterations', fmt(s.droppedIterations), ''],
  ];
  const w0 = Math.max(...rows.map((r) => r[0].length));
  const w1 = Math.max(...rows.map((r) => r[1].length));
  const c = s.config;
  return [
    '',
    `cyclone-sse broadcast: ${c.subscribers} streams x ${c.channelsPerSubscriber} of ${c.channels} channels, ${c.rate} publishes/s for ${c.durationS}s (${c.baseUrl})`,
    ...rows.map((r) => `  ${r[0].padEnd(w0)}  ${r[1].padEnd(w1)}  ${r[2]}`.trimEnd()),
    `  result: ${s.ok ? 'PASS' : 'FAIL'} (${(s.durationMs / 1000).toFixed(1)}s)`,
    '',
  ].join('\n');
}
