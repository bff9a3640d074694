import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HubError, encodeFrame, encodeFrameBody, formatId, parseId, validateChannel } from '@cyclone-sse/common';

test('frame: one data line per payload line, CR, LF and CRLF all split', () => {
  assert.equal(encodeFrame('e-1', '[1,2]'), 'id: e-1\ndata: [1,2]\n\n');
  assert.equal(encodeFrame('e-2', 'a\r\nb\rc\nd', 'up'), 'id: e-2\nevent: up\ndata: a\ndata: b\ndata: c\ndata: d\n\n');
  assert.equal(encodeFrameBody(''), 'data: \n\n');
  assert.equal(encodeFrameBody('x\n'), 'data: x\ndata: \n\n');
});

test('frame: event values that could inject fields are rejected', () => {
  for (const bad of ['a\nid: 9', 'a\rb', 'a\0', '', 'x'.repeat(256)]) {
    assert.throws(
      () => encodeFrameBody('d', bad),
      (e: unknown) => e instanceof HubError && e.code === 'INVALID_EVENT',
    );
  }
});

test('ids: format and parse round trip; malformed ids are rejected', () => {
  assert.deepEqual(parseId(formatId('abc123', 42)), { epoch: 'abc123', seq: 42 });
  for (const bad of ['', 'abc', '-1', 'abc-', 'ABC-1', 'a b-1', 'abc-1.5', 'abc-99999999999999999', 'a-b-c']) {
    assert.equal(parseId(bad), undefined, bad);
  }
});

test('channels: 1..255 UTF-8 bytes, no control characters', () => {
  assert.equal(validateChannel('news'), 'news');
  assert.equal(validateChannel('é'.repeat(127)), 'é'.repeat(127));
  for (const bad of ['', 'a\u0001', 'a\nb', 'a\u007f', 'é'.repeat(128), 'x'.repeat(256)]) {
    assert.throws(
      () => validateChannel(bad),
      (e: unknown) => e instanceof HubError && e.code === 'INVALID_CHANNEL',
      JSON.stringify(bad),
    );
  }
});
