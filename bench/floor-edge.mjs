#!/usr/bin/env node
/**
 * The floor of an edge on this machine, for the `floor-chain` server of `npm run bench` (with
 * bench/floor-publisher.mjs and a private redis-server): uWebSockets.js SSE streams fed by one
 * ioredis PSUBSCRIBE, each message written to each subscriber of its channel with one cork + write
 * of the bytes Redis delivered (the publisher's script already made them an SSE frame). Nothing
 * else: no history, resume, Last-Event-ID, heartbeats, coalescing, backpressure handling, per-IP
 * limits, auth, validation, metrics or logs. The real edge cannot be cheaper per delivery than
 * this; with the floor publisher it is the cheapest chain with the hops of the real architecture.
 *
 *   node bench/floor-edge.mjs --redis-url redis://127.0.0.1:6379
 *
 * Subscribe: GET /?channels=a&channels=b (as bench/naive-server.mjs). Prints the `listening` line.
 */
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const { uWS } = await import(join(ROOT, 'packages', 'common', 'dist', 'http', 'uws.js'));
const { Redis } = await import(join(ROOT, 'node_modules', 'ioredis', 'built', 'index.js'));

const PREFIX = 'floor:ch:'; // bench/floor-publisher.mjs publishes channel `c` on `floor:ch:c`
const argv = process.argv.slice(2);
const sub = new Redis(argv[argv.indexOf('--redis-url') + 1]);

/** @type {Map<string, Set<import('uWebSockets.js').HttpResponse>>} Redis channel → its streams */
const streams = new Map();

// One cork callback for every write (no closure per subscriber per message).
let corkRes;
let corkBytes;
const corkWrite = () => corkRes.write(corkBytes);

sub.on('pmessageBuffer', (_pattern, channel, message) => {
  const set = streams.get(channel.toString());
  if (!set) return;
  corkBytes = message;
  for (const res of set) {
    corkRes = res;
    res.cork(corkWrite);
  }
});
await sub.psubscribe(`${PREFIX}*`);

uWS
  .App()
  .get('/*', (res, req) => {
    const names = [...new Set(new URLSearchParams(req.getQuery() ?? '').getAll('channels'))].map((c) => PREFIX + c);
    if (names.length === 0) {
      res.cork(() => res.writeStatus('400 Bad Request').end('channels required\n'));
      return;
    }
    res.onAborted(() => {
      for (const name of names) {
        const set = streams.get(name);
        if (set && set.delete(res) && set.size === 0) streams.delete(name);
      }
    });
    res.cork(() =>
      res
        .writeStatus('200 OK')
        .writeHeader('Content-Type', 'text/event-stream')
        .writeHeader('Cache-Control', 'no-cache, no-transform')
        .write('retry: 2000\n:ok\n\n'),
    );
    for (const name of names) {
      let set = streams.get(name);
      if (!set) streams.set(name, (set = new Set()));
      set.add(res);
    }
  })
  .listen('127.0.0.1', 0, (listenSocket) => {
    console.log(JSON.stringify({ event: 'listening', port: uWS.us_socket_local_port(listenSocket) }));
  });
