import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { OPTIONS, parseConfig, type OptionSpec } from '@cyclone-sse/common';

const BIN = fileURLToPath(new URL('../../all-in-one/dist/main.js', import.meta.url));

test('--help lists every option with its default', () => {
  const r = spawnSync(process.execPath, [BIN, '--help'], { encoding: 'utf8' });
  assert.equal(r.status, 0);
  const names = Object.keys(OPTIONS).sort((a, b) => b.length - a.length);
  for (const [name, spec] of Object.entries(OPTIONS as Record<string, OptionSpec>)) {
    if (!spec.for.includes('all-in-one')) continue;
    assert.ok(r.stdout.includes(`--${name}`), `--${name} listed`);
    if (spec.default !== undefined && spec.default !== '') {
      const shown = Array.isArray(spec.default) ? spec.default.map((d) => `"${d}"`).join(',') : String(spec.default);
      const expected = `[default: ${Array.isArray(spec.default) ? `[${shown}]` : typeof spec.default === 'string' ? `"${shown}"` : shown}]`;
      // The option's entry runs until the next line that starts another option.
      const starts = new RegExp(`\\n\\s*(?:-\\w, )?--(?:${names.join('|')})\\s`);
      const from = r.stdout.search(new RegExp(`\\n\\s*(?:-\\w, )?--${name}\\s`));
      const rest = r.stdout.slice(from + 1);
      const end = rest.search(starts);
      const line = rest.slice(0, end >= 0 ? end : rest.length);
      assert.ok(line.includes(expected), `default of --${name} shown as ${expected} in: ${line}`);
    }
  }
});

test('invalid configuration: one line per problem, exit 2, nothing listens', () => {
  const r = spawnSync(process.execPath, [BIN, '--port', 'abc', '--heartbeat', '-5', '--log-level', 'loud'], { encoding: 'utf8' });
  assert.equal(r.status, 2);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 3, r.stderr);
  assert.match(lines.join('\n'), /--port: expected a number/);
  assert.match(lines.join('\n'), /--heartbeat: -5 is below the minimum/);
  assert.match(lines.join('\n'), /--log-level: "loud" is not one of/);
  assert.equal(r.stdout, '');
});

test('unknown flags are rejected with exit 2', () => {
  const r = spawnSync(process.execPath, [BIN, '--no-such-flag', '1'], { encoding: 'utf8' });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /Unknown argument/i);
});

test('seed flags, environment variables and a config file', async () => {
  const seed = await parseConfig('all-in-one', ['-p', '9000', '-l', '0.0.0.0', '--broker', 'http', '--http-secret', 's'], {});
  assert.equal(seed.kind, 'config');
  if (seed.kind !== 'config') return;
  assert.equal(seed.config.port, 9000);
  assert.equal(seed.config.listen, '0.0.0.0');
  assert.equal(seed.config.httpSecret, 's');
  assert.equal(seed.config.redisUrl, '');

  const redis = await parseConfig('all-in-one', ['--broker', 'redis', '--redis-port', '6380'], {});
  assert.equal(redis.kind === 'config' && redis.config.redisUrl, 'redis://127.0.0.1:6380');

  const env = await parseConfig('all-in-one', [], { CYCLONE_SSE_PORT: '7001', CYCLONE_SSE_HEARTBEAT: '3' });
  assert.equal(env.kind === 'config' && env.config.port, 7001);
  assert.equal(env.kind === 'config' && env.config.heartbeat, 3);

  const dir = mkdtempSync(join(tmpdir(), 'cfg-'));
  const file = join(dir, 'c.json');
  writeFileSync(file, JSON.stringify({ port: 7002, 'cors-origins': ['https://a.example'] }));
  const fromFile = await parseConfig('all-in-one', ['--config', file], {});
  assert.equal(fromFile.kind === 'config' && fromFile.config.port, 7002);
  assert.deepEqual(fromFile.kind === 'config' && fromFile.config.corsOrigins, ['https://a.example']);

  // Flags win over the environment.
  const both = await parseConfig('all-in-one', ['--port', '7003'], { CYCLONE_SSE_PORT: '7001' });
  assert.equal(both.kind === 'config' && both.config.port, 7003);
});
