import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PartitionCodec } from '../src/index.js';

test('epochs name their partition; one partition keeps plain epochs', () => {
  const codec = new PartitionCodec(16);
  assert.equal(codec.width, 1);
  for (let k = 0; k < 16; k++) {
    const e = codec.epochFor(k);
    assert.match(e, /^[0-9a-z]{2,32}$/);
    assert.equal(codec.partitionOfEpoch(e), k);
  }
  assert.equal(new PartitionCodec(1000).epochFor(999).slice(0, 2), 'rr');
  assert.equal(new PartitionCodec(1).width, 0);
  assert.equal(new PartitionCodec(1).partitionOfEpoch('abc'), 0);
  assert.equal(codec.partitionOfEpoch('g123'), undefined, 'a code beyond P names no partition');
});

test('cursors: one position per partition, in partition order; malformed ones are refused', () => {
  const codec = new PartitionCodec(16);
  const a = { epoch: `3${'x'.repeat(6)}`, seq: 41, partition: 3 };
  const b = { epoch: `b${'y'.repeat(6)}`, seq: 7, partition: 11 };
  const text = codec.format([b, a]);
  assert.equal(text, '3xxxxxx-41.byyyyyy-7');
  assert.deepEqual(
    [...codec.parse(text)!.entries()],
    [
      [3, a],
      [11, b],
    ],
  );
  assert.equal(codec.format([a]), '3xxxxxx-41');
  for (const bad of ['', '.', '3xxxxxx-41.', '3xxxxxx-41.3zzzz-2', '3xxxxxx-4x', 'g1-1', `${'3a-1.'.repeat(1025)}`])
    assert.equal(codec.parse(bad), undefined, JSON.stringify(bad.slice(0, 40)));
});
