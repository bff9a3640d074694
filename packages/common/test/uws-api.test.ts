// The uWebSockets.js API the hub uses, exercised on whichever build uws-loader.ts picked here: the
// trufflesuite v20.30 build (Node 20, glibc < 2.38) or upstream v20.57 (glibc >= 2.38; CI runs this
// file on Node 20 on Debian 12 and on Node 24 in a Debian 13 root). Bytes on the wire, raw sockets.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { once } from 'node:events';
import { waitFor } from '@cyclone-sse/testkit';
import {
  closeApp,
  isNativeUws,
  libcDescription,
  listen,
  remoteAddress,
  uWS,
  uwsBuild,
  type HttpResponse,
  type TemplatedApp,
} from '@cyclone-sse/common';

const glibc = /^glibc (\d+)\.(\d+)/.exec(libcDescription());
const glibcAtLeast238 = glibc !== null && (Number(glibc[1]) > 2 || Number(glibc[2]) >= 38);

async function serve(t: TestContext, setup: (app: TemplatedApp) => void): Promise<number> {
  const app = uWS.App();
  setup(app);
  const l = await listen(app, '127.0.0.1', 0);
  t.after(() => closeApp(app));
  return l.port;
}

/** Sends a raw request; resolves with the socket and a reader of everything received so far. */
async function raw(port: number, request: string): Promise<{ sock: Socket; text: () => string; until: (re: RegExp) => Promise<string> }> {
  const sock = connect(port, '127.0.0.1');
  await once(sock, 'connect');
  let buf = '';
  const waiters: (() => void)[] = [];
  sock.on('data', (d: Buffer) => {
    buf += d.toString('latin1');
    waiters.splice(0).forEach((w) => w());
  });
  sock.on('end', () => waiters.splice(0).forEach((w) => w()));
  sock.write(request);
  const until = async (re: RegExp) => {
    const deadline = Date.now() + 5000;
    while (!re.test(buf)) {
      if (Date.now() > deadline || sock.readableEnded) throw new Error(`no ${re} in ${JSON.stringify(buf.slice(-500))}`);
      await new Promise<void>((r) => {
        waiters.push(r);
        setTimeout(r, 200).unref();
      });
    }
    return buf;
  };
  return { sock, text: () => buf, until };
}

test('the loader picks upstream v20.57 where it loads, else the trufflesuite Node 20 build', () => {
  assert.ok(isNativeUws());
  const b = uwsBuild();
  assert.ok(b);
  const abi = process.versions.modules;
  if (glibcAtLeast238 && ['115', '127', '137', '141'].includes(abi)) {
    assert.deepEqual([b.package, b.version], ['@btc-vision/uwebsockets.js', '20.57.0']);
    assert.match(b.binary, new RegExp(`uws_linux_x64_${abi}\\.node$`));
  } else {
    assert.equal(abi, '115', 'only Node 20 has a build below glibc 2.38');
    assert.deepEqual([b.package, b.version], ['@trufflesuite/uws-js-unofficial', '20.30.0-unofficial.0']);
    assert.equal(b.skipped.length, 1);
    assert.match(b.skipped[0]!, /^@btc-vision\/uwebsockets\.js@20\.57\.0: .*GLIBC_2\.38/);
  }
});

test('listen(host, port, exclusive): port 0 gives the bound port; a second exclusive listen is refused', async (t) => {
  const port = await serve(t, (app) => app.get('/*', (res) => void res.end('x')));
  assert.ok(port > 0);
  const other = uWS.App();
  t.after(() => closeApp(other));
  await assert.rejects(listen(other, '127.0.0.1', port), /cannot listen on 127\.0\.0\.1:\d+/);
});

test('request: method, url, raw query, lower-case headers via forEach, remote address', async (t) => {
  let seen: Record<string, unknown> = {};
  const port = await serve(t, (app) =>
    app.any('/*', (res, req) => {
      const headers: Record<string, string> = {};
      req.forEach((k, v) => (headers[k] = v));
      seen = {
        method: req.getCaseSensitiveMethod?.() ?? req.getMethod().toUpperCase(),
        url: req.getUrl(),
        query: req.getQuery(),
        missing: req.getQuery('nope') ?? '',
        headers,
        ip: remoteAddress(res),
      };
      res.end('ok');
    }),
  );
  const c = await raw(port, 'PATCH /a/b?channels=x&channels=y%20z HTTP/1.1\r\nHost: h\r\nX-Mixed-Case: V\r\n\r\n');
  await c.until(/\r\n\r\nok$/);
  c.sock.destroy();
  assert.deepEqual(seen, {
    method: 'PATCH',
    url: '/a/b',
    query: 'channels=x&channels=y%20z',
    missing: '',
    headers: { host: 'h', 'x-mixed-case': 'V' },
    ip: '127.0.0.1',
  });
});

test('status, headers, Content-Length on end; 204 via endWithoutBody; POST body via onData', async (t) => {
  const port = await serve(t, (app) => {
    app.get('/json', (res) => void res.writeStatus('404 Not Found').writeHeader('Content-Type', 'application/json').end('{"a":1}'));
    app.options('/*', (res) => void res.writeStatus('204 No Content').writeHeader('Access-Control-Max-Age', '600').endWithoutBody());
    app.post('/echo', (res) => {
      let body = '';
      res.onAborted(() => undefined);
      res.onData((chunk, last) => {
        body += Buffer.from(chunk).toString();
        if (last) res.cork(() => res.end(`got ${body}`));
      });
    });
  });
  const a = await raw(port, 'GET /json HTTP/1.1\r\nHost: h\r\n\r\n');
  const head = (await a.until(/\{"a":1\}$/)).split('\r\n\r\n')[0]!.split('\r\n');
  a.sock.destroy();
  assert.equal(head[0], 'HTTP/1.1 404 Not Found');
  assert.ok(head.includes('Content-Type: application/json'));
  assert.ok(head.includes('Content-Length: 7'), head.join('|'));
  const b = await raw(port, 'OPTIONS /x HTTP/1.1\r\nHost: h\r\n\r\n');
  const opt = await b.until(/\r\n\r\n$/);
  b.sock.destroy();
  assert.match(opt, /^HTTP\/1\.1 204 No Content\r\n/);
  assert.match(opt, /Access-Control-Max-Age: 600\r\n/);
  assert.doesNotMatch(opt, /Content-Length: [1-9]/);
  const body = 'x'.repeat(100_000);
  const c = await raw(port, `POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
  await c.until(new RegExp(`got x{${body.length}}$`));
  c.sock.destroy();
});

test('streaming: corked writes from a timer go out chunked; write() false under backpressure, onWritable after the reader drains; res.close() runs onAborted synchronously', async (t) => {
  const chunk = 'data: ' + 'y'.repeat(64 * 1024 - 8) + '\n\n';
  let stream: HttpResponse | undefined;
  const log: string[] = [];
  const port = await serve(t, (app) =>
    app.get('/sse', (res) => {
      res.onAborted(() => log.push('aborted'));
      res.writeStatus('200 OK').writeHeader('Content-Type', 'text/event-stream').write(':ok\n\n');
      stream = res;
    }),
  );
  const c = await raw(port, 'GET /sse HTTP/1.1\r\nHost: h\r\n\r\n');
  await c.until(/:ok\n\n/);
  assert.match(c.text(), /^HTTP\/1\.1 200 OK\r\n/);
  assert.match(c.text(), /Transfer-Encoding: chunked\r\n/i);
  assert.ok(stream);
  const res = stream;
  // Stop reading: the kernel buffers fill, then uWS reports backpressure.
  c.sock.pause();
  let sent = 0;
  let full = false;
  for (let i = 0; i < 2000 && !full; i++) {
    res.cork(() => {
      full = !res.write(chunk);
    });
    sent += 1;
  }
  assert.ok(full, `write() never returned false after ${sent} chunks of 64 KiB`);
  const writable = new Promise<void>((resolve) =>
    res.onWritable(() => {
      resolve();
      return true;
    }),
  );
  c.sock.resume();
  await writable;
  const count = () => c.text().split('data: ').length - 1;
  await waitFor(() => count() >= sent, 10_000, `${sent} chunks`);
  assert.equal(count(), sent, 'every chunk written once (the one that hit backpressure too)');
  res.close();
  assert.deepEqual(log, ['aborted'], 'onAborted ran inside close()');
  await once(c.sock, 'close');
});

test('app.close() ends open streams and the listen socket', async () => {
  const app = uWS.App();
  app.get('/sse', (res) => {
    res.onAborted(() => undefined);
    res.cork(() => res.writeStatus('200 OK').write(':ok\n\n'));
  });
  const { port } = await listen(app, '127.0.0.1', 0);
  const c = await raw(port, 'GET /sse HTTP/1.1\r\nHost: h\r\n\r\n');
  await c.until(/:ok/);
  closeApp(app);
  await once(c.sock, 'close');
  const refused = connect(port, '127.0.0.1');
  const [err] = (await once(refused, 'error')) as [NodeJS.ErrnoException];
  assert.equal(err.code, 'ECONNREFUSED');
});

test('SSLApp and getParts exist (the native-binary check relies on them)', () => {
  assert.equal(typeof uWS.SSLApp, 'function');
  assert.equal(typeof uWS.getParts, 'function');
});
