#!/usr/bin/env node
/**
 * The floor of a publisher on this machine, for `bench/publisher-throughput.mjs --compare
 * ours,floor=@floor`: uWebSockets.js `POST /publish` → JSON.parse → one EVALSHA (INCR + PUBLISH)
 * through ioredis with auto-pipelining → a JSON answer. Nothing else: no framing or size checks,
 * no validation, auth, idempotency, history, metrics or logs. The real publisher cannot be
 * cheaper per request than this; the ratio to it says what the hub's features cost.
 * It publishes channel `c` on `floor:ch:c` as a whole SSE frame (`id: <seq>`, `data:` lines), which
 * bench/floor-edge.mjs writes as is: the two make the `floor-chain` server of `npm run bench`.
 * A batch (a JSON array, as the bench's `burst` phase posts) is one EVALSHA per message.
 * Takes the publisher's command line (only --redis-url is read); prints the `listening` line.
 */
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const { uWS } = await import(join(ROOT, 'packages', 'common', 'dist', 'http', 'uws.js'));
const { Redis } = await import(join(ROOT, 'node_modules', 'ioredis', 'built', 'index.js'));

const argv = process.argv.slice(2);
const redis = new Redis(argv[argv.indexOf('--redis-url') + 1], { enableAutoPipelining: true });
redis.defineCommand('floorPublish', {
  numberOfKeys: 1,
  lua: "local s = redis.call('INCR', KEYS[1]) redis.call('PUBLISH', 'floor:ch:' .. ARGV[1], 'id: ' .. s .. '\\n' .. ARGV[2] .. '\\n\\n') return s",
});

/** Publishes one `{ channel, data }`; resolves with its sequence number. */
function publish(msg) {
  const raw = typeof msg.data === 'string' ? msg.data : JSON.stringify(msg.data);
  const data = /[\r\n]/.test(raw) ? raw.replace(/\r\n|\r|\n/g, '\ndata: ') : raw;
  return redis.floorPublish('floor:seq', msg.channel, `data: ${data}`);
}

uWS
  .App()
  .post('/publish', (res) => {
    let aborted = false;
    let body;
    res.onAborted(() => (aborted = true));
    res.onData((chunk, last) => {
      const b = Buffer.from(chunk);
      body = body ? Buffer.concat([body, b]) : b;
      if (!last) return;
      let msg;
      try {
        msg = JSON.parse(body.toString());
      } catch {
        res.cork(() => res.writeStatus('400 Bad Request').end('{}'));
        return;
      }
      const answer = Array.isArray(msg)
        ? Promise.all(msg.map(publish)).then((seqs) => JSON.stringify(seqs.map((s) => ({ status: 'ok', ids: [`f-${s}`] }))))
        : publish(msg).then((seq) => `{"status":"ok","ids":["f-${seq}"]}`);
      answer.then(
        (body) => !aborted && res.cork(() => res.writeHeader('Content-Type', 'application/json').end(body)),
        () => !aborted && res.cork(() => res.writeStatus('503 Service Unavailable').end('{}')),
      );
    });
  })
  .listen('127.0.0.1', 0, (listenSocket) => {
    console.log(JSON.stringify({ event: 'listening', port: uWS.us_socket_local_port(listenSocket) }));
  });
