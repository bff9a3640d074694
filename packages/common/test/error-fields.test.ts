import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HubError, StartupError, errorFields } from '@cyclone-sse/common';

test('errorFields: message, name, code and stack under err; the cause one level down; JSON keeps them all', () => {
  const cause = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' });
  const wrapped = new HubError('BROKER_UNAVAILABLE', 'the message broker is unavailable', { cause });
  const line = JSON.parse(JSON.stringify({ event: 'x', ...errorFields(wrapped) })) as {
    err: Record<string, unknown> & { cause: Record<string, unknown> };
  };
  assert.equal(line.err.message, 'the message broker is unavailable');
  assert.equal(line.err.name, 'HubError');
  assert.equal(line.err.code, 'BROKER_UNAVAILABLE');
  assert.match(String(line.err.stack), /^HubError: the message broker is unavailable\n\s+at /);
  assert.equal(line.err.cause.code, 'ECONNREFUSED');
  assert.equal(line.err.cause.message, 'connect ECONNREFUSED 127.0.0.1:1');
  assert.equal(errorFields(new StartupError('LISTEN_FAILED', 'cannot listen')).err.code, 'LISTEN_FAILED');
});

test('errorFields: an AggregateError with no message names its inner errors; a thrown non-Error is its string', () => {
  const agg = new AggregateError([new Error('connect ECONNREFUSED ::1:6379'), new Error('connect ECONNREFUSED 127.0.0.1:6379')], '');
  assert.equal(errorFields(agg).err.message, 'connect ECONNREFUSED ::1:6379; connect ECONNREFUSED 127.0.0.1:6379');
  assert.deepEqual(errorFields('boom'), { err: { message: 'boom' } });
  assert.deepEqual(errorFields(undefined), { err: { message: 'undefined' } });
});
