/**
 * Refused publishes (docs/protocol.md#publishing): every bad body, bad key and wrong method on /publish gets its exact
 * 4xx answer, delivers nothing, and the hub still serves afterwards (packages/testkit/src/refusal.ts).
 */
import assert from 'node:assert/strict';
import { formRequest, getPath, jsonRequest, RawHttpClient, refusalTests, sendRequest } from '@cyclone-sse/testkit';

const SECRET = 's3cret';

refusalTests([
  // ---- publish body (docs/protocol.md#publishing)
  {
    name: 'publish malformed JSON',
    send: sendRequest((ch) => jsonRequest(`{"channel":"${ch}","data":"x"`)),
    status: 400,
    code: 'INVALID_BODY',
  },
  { name: 'publish an empty JSON body', send: sendRequest(() => jsonRequest('')), status: 400, code: 'INVALID_BODY' },
  {
    name: 'publish a JSON string instead of an object',
    send: sendRequest(() => jsonRequest('"hello"')),
    status: 400,
    code: 'INVALID_BODY',
  },
  { name: 'publish an empty JSON batch', send: sendRequest(() => jsonRequest([])), status: 400, code: 'INVALID_BODY' },
  {
    name: 'publish a 2 MiB body with Content-Length (default --max-body 1 MiB)',
    send: sendRequest((ch) => jsonRequest({ channel: ch, data: 'x'.repeat(2 * 1024 * 1024) })),
    status: 413,
    code: 'PAYLOAD_TOO_LARGE',
  },
  {
    name: 'publish a chunked body without Content-Length that exceeds --max-body',
    args: ['--max-body', '1024'],
    send: async (t, hub, ch) => {
      const c = await RawHttpClient.request(hub.port, '/publish', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked' },
      });
      t.after(() => c.close());
      // A valid publish if it were accepted, 4 KiB in 512-byte chunks, never a declared length.
      const body = Buffer.from(JSON.stringify({ channel: ch, data: 'y'.repeat(4096) }));
      for (let i = 0; i < body.length; i += 512) {
        const part = body.subarray(i, i + 512);
        c.socket.write(`${part.length.toString(16)}\r\n`);
        c.socket.write(part);
        c.socket.write('\r\n');
      }
      c.socket.write('0\r\n\r\n');
      await c.until((x) => x.head !== '' && Buffer.byteLength(x.body) >= Number(x.header('content-length')), 10_000, '413 answer');
      c.close();
      assert.equal(c.header('transfer-encoding'), undefined);
      return c;
    },
    status: 413,
    code: 'PAYLOAD_TOO_LARGE',
  },
  {
    name: 'publish a 2 MiB chunked body (default --max-body)',
    send: async (t, hub, ch) => {
      const c = await RawHttpClient.request(hub.port, '/publish', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked' },
      });
      t.after(() => c.close());
      const body = Buffer.from(JSON.stringify({ channel: ch, data: 'z'.repeat(2 * 1024 * 1024) }));
      const CHUNK = 64 * 1024;
      for (let i = 0; i < body.length && c.head === '' && !c.ended; i += CHUNK) {
        const part = body.subarray(i, i + CHUNK);
        const ok = c.socket.write(Buffer.concat([Buffer.from(`${part.length.toString(16)}\r\n`), part, Buffer.from('\r\n')]));
        if (!ok)
          await new Promise<void>((resolve) => {
            const done = () => {
              c.socket.off('drain', done);
              c.socket.off('close', done);
              c.socket.off('data', done);
              resolve();
            };
            c.socket.on('drain', done);
            c.socket.on('close', done);
            c.socket.on('data', done);
          });
      }
      if (c.head === '' && !c.ended) c.socket.write('0\r\n\r\n');
      await c.until((x) => x.head !== '' && Buffer.byteLength(x.body) >= Number(x.header('content-length')), 15_000, '413 answer');
      c.close();
      return c;
    },
    status: 413,
    code: 'PAYLOAD_TOO_LARGE',
  },
  {
    name: 'publish JSON with CRLF in event',
    send: sendRequest((ch) => jsonRequest({ channel: ch, data: 'x', event: 'a\r\nid: 1' })),
    status: 400,
    code: 'INVALID_EVENT',
  },
  {
    name: 'publish JSON with LF in event',
    send: sendRequest((ch) => jsonRequest({ channel: ch, data: 'x', event: 'a\nb' })),
    status: 400,
    code: 'INVALID_EVENT',
  },
  {
    name: 'publish JSON with CR in event',
    send: sendRequest((ch) => jsonRequest({ channel: ch, data: 'x', event: 'a\rb' })),
    status: 400,
    code: 'INVALID_EVENT',
  },
  {
    name: 'publish JSON with a non-string event',
    send: sendRequest((ch) => jsonRequest({ channel: ch, data: 'x', event: 5 })),
    status: 400,
    code: 'INVALID_EVENT',
  },
  {
    name: 'publish form with CRLF in event',
    send: sendRequest((ch) => formRequest(`channel=${ch}&message=x&event=a%0D%0Adata%3A%20evil`)),
    status: 400,
    code: 'INVALID_EVENT',
  },
  {
    name: 'publish JSON with LF in id',
    send: sendRequest((ch) => jsonRequest({ channel: ch, data: 'x', id: 'k\n1' })),
    status: 400,
    code: 'INVALID_ID',
  },
  {
    name: 'publish form with LF in id',
    send: sendRequest((ch) => formRequest(`channel=${ch}&message=x&id=k%0A1`)),
    status: 400,
    code: 'INVALID_ID',
  },
  { name: 'publish JSON without data', send: sendRequest((ch) => jsonRequest({ channel: ch })), status: 400, code: 'MISSING_MESSAGE' },
  {
    name: 'publish JSON with data null',
    send: sendRequest((ch) => jsonRequest({ channel: ch, data: null })),
    status: 400,
    code: 'MISSING_MESSAGE',
  },
  { name: 'publish JSON without channel', send: sendRequest(() => jsonRequest({ data: 'x' })), status: 400, code: 'MISSING_CHANNEL' },
  {
    name: 'publish JSON with channels: []',
    send: sendRequest(() => jsonRequest({ channels: [], data: 'x' })),
    status: 400,
    code: 'MISSING_CHANNEL',
  },
  {
    name: 'publish JSON with channels as a string',
    send: sendRequest((ch) => jsonRequest({ channels: ch, data: 'x' })),
    status: 400,
    code: 'INVALID_CHANNEL',
  },
  {
    name: 'publish JSON with channels containing a number',
    send: sendRequest((ch) => jsonRequest({ channels: [ch, 1], data: 'x' })),
    status: 400,
    code: 'INVALID_CHANNEL',
  },
  {
    name: 'publish JSON with channels containing null',
    send: sendRequest((ch) => jsonRequest({ channels: [ch, null], data: 'x' })),
    status: 400,
    code: 'INVALID_CHANNEL',
  },
  {
    name: 'publish JSON with channel as an object',
    send: sendRequest(() => jsonRequest({ channel: { name: 'a' }, data: 'x' })),
    status: 400,
    code: 'INVALID_CHANNEL',
  },
  {
    name: 'publish JSON with a control character in channel',
    send: sendRequest((ch) => jsonRequest({ channels: [ch, 'a\u0001b'], data: 'x' })),
    status: 400,
    code: 'INVALID_CHANNEL',
  },
  {
    name: 'publish JSON with a 300-byte channel',
    send: sendRequest((ch) => jsonRequest({ channels: [ch, 'c'.repeat(300)], data: 'x' })),
    status: 400,
    code: 'INVALID_CHANNEL',
  },
  {
    name: 'publish a batch whose second item is invalid (nothing half-applied)',
    send: sendRequest((ch) => jsonRequest([{ channel: ch, data: 'first' }, { channel: ch }])),
    status: 400,
    code: 'MISSING_MESSAGE',
  },
  { name: 'publish form without message', send: sendRequest((ch) => formRequest(`channel=${ch}`)), status: 400, code: 'MISSING_MESSAGE' },
  {
    name: 'publish form with a blank message',
    send: sendRequest((ch) => formRequest(`channel=${ch}&message=%20%20`)),
    status: 400,
    code: 'MISSING_MESSAGE',
  },
  { name: 'publish form without channel', send: sendRequest(() => formRequest('message=hello')), status: 400, code: 'MISSING_CHANNEL' },
  {
    name: 'publish form with an empty channel',
    send: sendRequest(() => formRequest('channel=&message=hello')),
    status: 400,
    code: 'MISSING_CHANNEL',
  },
  {
    name: 'publish form with %0A in channel',
    send: sendRequest((ch) => formRequest(`channel=${ch}&channel=a%0Ab&message=hello`)),
    status: 400,
    code: 'INVALID_CHANNEL',
  },

  // ---- auth: checked first (docs/protocol.md#publishing)
  {
    name: 'publish with a wrong bearer key',
    secret: SECRET,
    send: sendRequest((ch) => jsonRequest({ channel: ch, data: 'x' }, { Authorization: 'Bearer wrong' })),
    status: 401,
    code: 'UNAUTHORIZED',
  },
  {
    name: 'publish form with a wrong key field',
    secret: SECRET,
    send: sendRequest((ch) => formRequest(`channel=${ch}&message=x&key=wrong`)),
    status: 401,
    code: 'UNAUTHORIZED',
  },
  {
    name: 'publish form with a wrong key in the query string',
    secret: SECRET,
    send: sendRequest((ch) => formRequest(`channel=${ch}&message=x`), '/publish?key=wrong'),
    status: 401,
    code: 'UNAUTHORIZED',
  },
  {
    name: 'publish without any key',
    secret: SECRET,
    send: sendRequest((ch) => jsonRequest({ channel: ch, data: 'x' })),
    status: 401,
    code: 'UNAUTHORIZED',
  },
  {
    name: 'publish with a key that is a prefix of the secret',
    secret: SECRET,
    send: sendRequest((ch) => jsonRequest({ channel: ch, data: 'x' }, { Authorization: `Bearer ${SECRET.slice(0, -1)}` })),
    status: 401,
    code: 'UNAUTHORIZED',
  },
  {
    name: 'wrong key + missing message → 401 before validation (form)',
    secret: SECRET,
    send: sendRequest((ch) => formRequest(`channel=${ch}&key=wrong`)),
    status: 401,
    code: 'UNAUTHORIZED',
  },
  {
    name: 'wrong key + missing data → 401 before validation (JSON)',
    secret: SECRET,
    send: sendRequest((ch) => jsonRequest({ channel: ch }, { Authorization: 'Bearer wrong' })),
    status: 401,
    code: 'UNAUTHORIZED',
  },
  {
    name: 'wrong key + malformed JSON → 401 before validation',
    secret: SECRET,
    send: sendRequest(() => jsonRequest('{not json', { Authorization: 'Bearer wrong' })),
    status: 401,
    code: 'UNAUTHORIZED',
  },

  // ---- methods and paths
  { name: 'GET /publish', send: getPath('/publish?channel=a&message=x'), status: 405, code: 'METHOD_NOT_ALLOWED' },
  {
    name: 'PUT /publish',
    send: sendRequest((ch) => ({ ...jsonRequest({ channel: ch, data: 'x' }), method: 'PUT' })),
    status: 405,
    code: 'METHOD_NOT_ALLOWED',
  },
  {
    name: 'POST an unknown path',
    send: sendRequest((ch) => formRequest(`channel=${ch}&message=x`), '/publish/extra'),
    status: 404,
    code: 'NOT_FOUND',
  },
]);
