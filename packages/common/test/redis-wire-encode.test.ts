// The pre-encoded script call (redis-wire-script.ts) writes the same RESP bytes as the textbook
// encoding, whatever its arguments: short ASCII (written in JS), non-ASCII and long ones
// (buf.write), numbers and empty strings. Checked against a real Redis by redis-publish-batching.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encode } from '../src/broker/redis-wire-script.js';

function reference(name: string, script: string, args: readonly (string | number)[]): Buffer {
  const parts = [name, script, ...args.map(String)];
  return Buffer.concat([
    Buffer.from(`*${parts.length}\r\n`),
    ...parts.map((p) => Buffer.concat([Buffer.from(`$${Buffer.byteLength(p)}\r\n`), Buffer.from(p, 'utf8'), Buffer.from('\r\n')])),
  ]);
}

test('encode: the same bytes as the reference RESP encoding', () => {
  const cases: (string | number)[][] = [
    [],
    [0],
    [3, 'cyclone-sse:seq', 'cyclone-sse:epoch', '', 1234567890, 'x'.repeat(64), 'x'.repeat(65)],
    ['é', 'ascii then é', 'ü'.repeat(40), '€'.repeat(70), '😀', 'a😀b', '\u0000\u007f\u0080', 'data: ["x", 1]\n\n'],
    ['y'.repeat(10_000), 'z'.repeat(63) + 'é', 'q'.repeat(64) + 'é'],
  ];
  for (const args of cases) {
    assert.deepEqual(encode('EVALSHA', 'a'.repeat(40), args), reference('EVALSHA', 'a'.repeat(40), args), JSON.stringify(args));
  }
  assert.deepEqual(encode('EVAL', 'return ARGV[1] -- é', ['1', 'é']), reference('EVAL', 'return ARGV[1] -- é', ['1', 'é']));
});
