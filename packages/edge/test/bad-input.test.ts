/**
 * Refused subscribes and requests to the stream paths: the exact 4xx answer, nothing delivered,
 * the hub still serves afterwards (packages/testkit/src/refusal.ts); the channel limits accepted
 * at their edge. The /publish cases are in packages/publisher/test/bad-publish.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { channelsPath, formRequest, getPath, openStream, publishJson, refusalTests, sendRequest, startTestHub } from '@cyclone-sse/testkit';

refusalTests([
  // ---- subscribe (docs/protocol.md#subscribing)
  { name: 'subscribe without any channels parameter', send: getPath('/'), status: 400, code: 'INVALID_CHANNEL' },
  { name: 'subscribe with only unknown parameters', send: getPath('/?uuid=abc&_=123'), status: 400, code: 'INVALID_CHANNEL' },
  { name: 'subscribe with an empty channels=', send: getPath('/?channels='), status: 400, code: 'INVALID_CHANNEL' },
  { name: 'subscribe with a blank channel (trimmed to empty)', send: getPath('/?channels=%20%20'), status: 400, code: 'INVALID_CHANNEL' },
  {
    name: 'subscribe with one good and one empty channel',
    send: getPath('/sse?channels=ok&channels='),
    status: 400,
    code: 'INVALID_CHANNEL',
  },
  { name: 'subscribe with %01 in a channel', send: getPath('/?channels=a%01b'), status: 400, code: 'INVALID_CHANNEL', message: /control/ },
  { name: 'subscribe with %0A in a channel', send: getPath('/?channels=a%0Ab'), status: 400, code: 'INVALID_CHANNEL', message: /control/ },
  { name: 'subscribe with DEL (%7F) in a channel', send: getPath('/?channels=a%7Fb'), status: 400, code: 'INVALID_CHANNEL' },
  { name: 'subscribe with invalid UTF-8 (%FF) in a channel', send: getPath('/?channels=a%FFb'), status: 400, code: 'INVALID_CHANNEL' },
  {
    name: 'subscribe with a 300-byte channel name',
    send: getPath(`/?channels=${'c'.repeat(300)}`),
    status: 400,
    code: 'INVALID_CHANNEL',
    message: /300/,
  },
  {
    name: 'subscribe with a 256-byte channel of 2-byte characters (bytes, not characters, count)',
    send: getPath(`/?channels=${encodeURIComponent('é'.repeat(128))}`),
    status: 400,
    code: 'INVALID_CHANNEL',
    message: /256/,
  },
  {
    name: 'subscribe with 65 channels (default limit 64)',
    send: getPath(`/?${Array.from({ length: 65 }, (_, i) => `channels=ch${i}`).join('&')}`),
    status: 400,
    code: 'INVALID_CHANNEL',
    message: /65/,
  },
  {
    name: 'subscribe with a query longer than --max-query-length',
    args: ['--max-query-length', '256'],
    send: getPath(`/?channels=a&uuid=${'x'.repeat(300)}`),
    status: 414,
    code: 'URI_TOO_LONG',
  },
  {
    name: 'subscribe with a query longer than the default --max-query-length (16384)',
    send: getPath(`/?channels=a&uuid=${'x'.repeat(17_000)}`),
    status: 414,
    code: 'URI_TOO_LONG',
  },

  // ---- methods and paths
  {
    name: 'POST / (the stream path)',
    send: sendRequest((ch) => formRequest(`channel=${ch}&message=x`), '/'),
    status: 405,
    code: 'METHOD_NOT_ALLOWED',
  },
  {
    name: 'POST /sse',
    send: sendRequest((ch) => formRequest(`channel=${ch}&message=x`), '/sse?channels=a'),
    status: 405,
    code: 'METHOD_NOT_ALLOWED',
  },
  { name: 'GET an unknown path', send: getPath('/no/such/path?channels=a'), status: 404, code: 'NOT_FOUND' },
]);

test('64 channels (the default limit) are accepted and each is live', { timeout: 20_000 }, async (t) => {
  const hub = await startTestHub(t);
  const channels = Array.from({ length: 64 }, (_, i) => `ch${i}`);
  const s = await openStream(hub.port, channelsPath(channels), { t });
  const r = await publishJson(hub.base, { channels: ['ch0', 'ch63'], data: 'edge' });
  assert.equal(r.status, 200, r.text);
  const ids = (r.json as { ids: string[] }).ids;
  await s.untilEvents(2);
  assert.deepEqual(s.events, [
    { id: ids[0], data: 'edge' },
    { id: ids[1], data: 'edge' },
  ]);
});

test('a 255-byte channel name (the limit) is accepted on both sides', { timeout: 20_000 }, async (t) => {
  const hub = await startTestHub(t);
  const ch = 'é'.repeat(127) + 'x'; // 255 bytes
  assert.equal(Buffer.byteLength(ch), 255);
  const s = await openStream(hub.port, channelsPath([ch]), { t });
  const r = await publishJson(hub.base, { channel: ch, data: 'long' });
  assert.equal(r.status, 200, r.text);
  await s.untilEvents(1);
  assert.deepEqual(s.events, [{ id: (r.json as { ids: string[] }).ids[0], data: 'long' }]);
});
