#!/usr/bin/env node
/**
 * Closed-loop HTTP load generator for bench/publisher-throughput.mjs (wrk-style): `connections`
 * keep-alive raw `net` sockets, each with `pipeline` POST /publish requests in flight; every
 * answer sends the next request on the same socket at once. Started in its own process (pinned
 * to its own core) with one JSON argument:
 *
 *   { port, connections, pipeline, channels, payload }
 *
 * Protocol on stdin/stdout, one line each: `mark` → prints `{"t":<ms>,"ok":<n>,"bad":<n>,
 * "lat":[…]}` (totals so far; `lat` = latency histogram since the previous mark, 0.1 ms buckets);
 * `stop` → closes the sockets and exits. Anything but a 200 counts as bad (and is kept going: a
 * run with bad answers is reported, not hidden).
 */
import net from 'node:net';
import { createInterface } from 'node:readline';

const cfg = JSON.parse(process.argv[2]);
const HOST = '127.0.0.1';
const CONNS = cfg.connections;
const DEPTH = cfg.pipeline ?? 1;
const CHANNELS = cfg.channels ?? 100;
const DATA = 'x'.repeat(cfg.payload ?? 100);

// One ready-made request per channel: {"channel":"c<i>","data":"xxx…"}.
const requests = [];
for (let i = 0; i < CHANNELS; i++) {
  const body = JSON.stringify({ channel: `c${i}`, data: DATA });
  requests.push(
    Buffer.from(
      `POST /publish HTTP/1.1\r\nHost: ${HOST}:${cfg.port}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    ),
  );
}

const BUCKET_US = 100;
const BUCKETS = 10_000; // up to 1 s; the last bucket takes the rest
let lat = new Uint32Array(BUCKETS);
let ok = 0;
let bad = 0;
let next = 0;
let stopping = false;
const sockets = [];

const CRLFCRLF = Buffer.from('\r\n\r\n');
const CL = Buffer.from('content-length:');

function contentLength(buf, start, end) {
  // Header names are matched case-insensitively: lower-case the candidate bytes on the fly.
  outer: for (let i = start; i + CL.length <= end; i++) {
    for (let j = 0; j < CL.length; j++) {
      let c = buf[i + j];
      if (c >= 65 && c <= 90) c += 32;
      if (c !== CL[j]) continue outer;
    }
    let k = i + CL.length;
    while (buf[k] === 32) k++;
    let n = 0;
    while (buf[k] >= 48 && buf[k] <= 57) n = n * 10 + (buf[k++] - 48);
    return n;
  }
  return 0;
}

function open(i) {
  const sent = []; // send times (ns) of the requests in flight, in order
  let carry = null;
  const s = net.connect({ port: cfg.port, host: HOST, noDelay: true });
  const send = (count) => {
    if (stopping || count === 0) return;
    s.cork();
    for (let k = 0; k < count; k++) {
      sent.push(process.hrtime.bigint());
      s.write(requests[next++ % CHANNELS]);
    }
    s.uncork();
  };
  s.on('connect', () => send(DEPTH));
  s.on('data', (chunk) => {
    let buf = carry ? Buffer.concat([carry, chunk]) : chunk;
    carry = null;
    let pos = 0;
    let answered = 0;
    const now = process.hrtime.bigint();
    for (;;) {
      const he = buf.indexOf(CRLFCRLF, pos);
      if (he < 0) break;
      const len = contentLength(buf, pos, he);
      const end = he + 4 + len;
      if (end > buf.length) break;
      // "HTTP/1.1 200"
      const status = (buf[pos + 9] - 48) * 100 + (buf[pos + 10] - 48) * 10 + (buf[pos + 11] - 48);
      if (status === 200) ok++;
      else bad++;
      const us = Number(now - sent.shift()) / 1000;
      lat[Math.min(BUCKETS - 1, Math.floor(us / BUCKET_US))]++;
      answered++;
      pos = end;
    }
    if (pos < buf.length) carry = buf.subarray(pos);
    send(answered);
  });
  s.on('error', (err) => {
    if (!stopping) process.stderr.write(`[publish-loadgen] connection ${i}: ${err.message}\n`);
  });
  s.on('close', () => {
    if (!stopping) {
      bad += sent.length;
      process.stderr.write(`[publish-loadgen] connection ${i} closed by the server; reopening\n`);
      setTimeout(() => open(i), 50);
    }
  });
  sockets[i] = s;
}

for (let i = 0; i < CONNS; i++) open(i);

const rl = createInterface({ input: process.stdin });
rl.on('line', (line) => {
  if (line === 'mark') {
    const hist = [...lat];
    lat = new Uint32Array(BUCKETS);
    process.stdout.write(`${JSON.stringify({ t: performance.now(), ok, bad, lat: hist, bucketUs: BUCKET_US })}\n`);
  } else if (line === 'stop') {
    stopping = true;
    for (const s of sockets) s.destroy();
    process.exit(0);
  }
});
