import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ENV_PREFIX, bearerToken, envName, parseConfig } from '@cyclone-sse/common';

test('bearerToken: scheme case-insensitive, spaces or tabs between, surrounding whitespace ignored', () => {
  const cases: [string | undefined, string | undefined][] = [
    ['Bearer x', 'x'],
    ['Bearer  x', 'x'],
    ['bearer x', 'x'],
    ['BEARER x', 'x'],
    ['Bearer\tx', 'x'],
    ['Bearer \t x \t', 'x'],
    ['  Bearer eyJ.a-b_c.d~+/=', 'eyJ.a-b_c.d~+/='],
  ];
  for (const [header, token] of cases) assert.equal(bearerToken(header), token, JSON.stringify(header));
});

test('bearerToken: no token for no header, another scheme, an empty token or one with whitespace inside', () => {
  for (const header of [
    undefined,
    '',
    'Bearer',
    'Bearer ',
    'Bearer \t ',
    'Bearerx',
    'Basic dXNlcjpwYXNz',
    'Token x',
    'Bearer a b',
    'Bearer a\tb',
    'Bearer a\nb',
    'x Bearer y',
  ]) {
    assert.equal(bearerToken(header), undefined, JSON.stringify(header));
  }
});

test('envName: CYCLONE_SSE_ plus the flag in upper case, dashes as underscores', () => {
  assert.equal(ENV_PREFIX, 'CYCLONE_SSE');
  assert.equal(envName('port'), 'CYCLONE_SSE_PORT');
  assert.equal(envName('redis-url'), 'CYCLONE_SSE_REDIS_URL');
  assert.equal(envName('history-max-bytes-per-channel'), 'CYCLONE_SSE_HISTORY_MAX_BYTES_PER_CHANNEL');
});

test('envName is the name the parser reads: a value and a boolean set through it take effect', async () => {
  const outcome = await parseConfig('all-in-one', [], { [envName('redis-prefix')]: 'from-env', [envName('use-ssl')]: 'yes' });
  assert.equal(outcome.kind, 'config');
  if (outcome.kind !== 'config') return;
  assert.equal(outcome.config.redisPrefix, 'from-env');
  assert.equal(outcome.config.useSsl, true);
});
