#!/usr/bin/env node
/**
 * The naive baseline for `npm run bench`: what an SSE hub looks like when written the obvious way
 * on Node's `http` module. A `Set` of responses per channel, one `res.write` per message per
 * subscriber (no coalescing), a global sequence for `id:`. The frame is built once per message
 * (so the comparison is about the write path, not about re-serialising per socket).
 *
 *   node bench/naive-server.mjs --port 0
 *
 * Prints one JSON line `{"event":"listening","port":…}` once it listens on 127.0.0.1.
 * Subscribe: GET /?channels=a&channels=b. Publish: POST /publish with the cyclone-sse JSON
 * contract (one object or an array; `channel` or `channels`; `data` string or JSON value).
 */
import http from 'node:http';

const argPort = process.argv.indexOf('--port');
const port = argPort > 0 ? Number(process.argv[argPort + 1]) : 0;

/** @type {Map<string, Set<http.ServerResponse>>} */
const channels = new Map();
let seq = 0;

function subscribe(req, res) {
  const url = new URL(req.url, 'http://x');
  const names = [...new Set(url.searchParams.getAll('channels'))];
  if (names.length === 0) {
    res.writeHead(400, { 'content-type': 'text/plain' }).end('channels required\n');
    return;
  }
  res.writeHead(200, {
    'Content-Type': 'text/event-stream',
    'Cache-Control': 'no-cache, no-transform',
    'X-Accel-Buffering': 'no',
  });
  res.write('retry: 2000\n:ok\n\n');
  for (const ch of names) {
    let set = channels.get(ch);
    if (!set) channels.set(ch, (set = new Set()));
    set.add(res);
  }
  res.on('close', () => {
    for (const ch of names) {
      const set = channels.get(ch);
      if (set && set.delete(res) && set.size === 0) channels.delete(ch);
    }
  });
}

function deliver(item) {
  const names = Array.isArray(item.channels) ? item.channels : [item.channel];
  const raw = item.data !== undefined ? item.data : item.message;
  const data = typeof raw === 'string' ? raw : JSON.stringify(raw);
  let body = '';
  for (const line of data.split(/\r\n|\r|\n/)) body += `data: ${line}\n`;
  const ids = [];
  for (const ch of names) {
    const id = ++seq;
    ids.push(String(id));
    const frame = Buffer.from(`id: ${id}\n${body}\n`);
    const subs = channels.get(ch);
    if (subs) for (const res of subs) res.write(frame);
  }
  return { status: 'ok', ids };
}

function publish(req, res) {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    let doc;
    try {
      doc = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch (err) {
      res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ error: String(err) }));
      return;
    }
    const out = Array.isArray(doc) ? doc.map(deliver) : deliver(doc);
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(out));
  });
}

const server = http.createServer({ noDelay: true, keepAliveTimeout: 60_000 }, (req, res) => {
  if (req.method === 'POST' && req.url.startsWith('/publish')) publish(req, res);
  else if (req.method === 'GET' && (req.url.startsWith('/?') || req.url.startsWith('/sse?'))) subscribe(req, res);
  else res.writeHead(404).end();
});
server.requestTimeout = 0;
server.headersTimeout = 60_000;
server.listen(port, '127.0.0.1', 4096, () => {
  process.stdout.write(JSON.stringify({ event: 'listening', port: server.address().port }) + '\n');
});
process.on('SIGTERM', () => process.exit(0));
