// The Redis connection options (--redis-sentinels, --redis-sentinel-name,
// --redis-sentinel-password, --redis-ca-file, rediss:// URLs): what each binary accepts, the one
// line per problem with exit 2, what reaches ioredis, and that no password is ever logged.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig, redisConnectionConfig, redisConnectionOptions, usesRedis, type Config } from '@cyclone-sse/common';
import { binPath, freePort, makeTlsFiles, waitFor } from '@cyclone-sse/testkit';

async function config(component: 'edge' | 'publisher' | 'all-in-one', args: string[], env: NodeJS.ProcessEnv = {}): Promise<Config> {
  const outcome = await parseConfig(component, args, env);
  assert.equal(outcome.kind, 'config', JSON.stringify(outcome));
  return (outcome as { config: Config }).config;
}

async function errors(component: 'edge' | 'publisher' | 'all-in-one', args: string[]): Promise<string[]> {
  const outcome = await parseConfig(component, args, {});
  assert.equal(outcome.kind, 'errors', JSON.stringify(outcome));
  return (outcome as { errors: string[] }).errors;
}

test('--redis-sentinels from a flag, the environment and an options file; name and password; usesRedis', async () => {
  const c = await config('edge', ['--redis-sentinels', 's1:26379,s2:26380', '[::1]:26381', '--redis-sentinel-password', 'sp']);
  assert.deepEqual(c.redisSentinels, ['s1:26379', 's2:26380', '[::1]:26381']);
  assert.equal(c.redisSentinelName, 'mymaster');
  assert.equal(c.redisUrl, '');
  assert.equal(usesRedis(c), true);
  const conn = redisConnectionConfig(c);
  assert.deepEqual(conn, {
    sentinels: [
      { host: 's1', port: 26379 },
      { host: 's2', port: 26380 },
      { host: '::1', port: 26381 },
    ],
    sentinelName: 'mymaster',
    sentinelPassword: 'sp',
  });

  const env = await config('publisher', [], { CYCLONE_SSE_REDIS_SENTINELS: 'a:1, b:2', CYCLONE_SSE_REDIS_SENTINEL_NAME: 'cache' });
  assert.deepEqual(env.redisSentinels, ['a:1', 'b:2']);
  assert.equal(env.redisSentinelName, 'cache');

  const dir = mkdtempSync(join(tmpdir(), 'cfg-redis-'));
  const file = join(dir, 'cyclone-sse.conf');
  writeFileSync(file, '# sentinel\n--redis-sentinels=10.0.0.1:26379,10.0.0.2:26379\n--redis-sentinel-name=hub\n');
  const fromFile = await config('all-in-one', ['--config-file', file]);
  assert.deepEqual(fromFile.redisSentinels, ['10.0.0.1:26379', '10.0.0.2:26379']);
  assert.equal(fromFile.redisSentinelName, 'hub');

  assert.equal(usesRedis(await config('all-in-one', [])), false, 'neither option: the in-memory all-in-one');
});

test('--redis-wait-replicas on a Redis Cluster: accepted (WAIT per partition), as with one Redis', async () => {
  const c = await config('publisher', [
    '--redis-cluster-nodes',
    'n1:7000,n2:7001',
    '--redis-wait-replicas',
    '1',
    '--redis-wait-timeout',
    '500',
  ]);
  assert.deepEqual(c.redisClusterNodes, ['n1:7000', 'n2:7001']);
  assert.equal(c.redisWaitReplicas, 1);
  assert.equal(c.redisWaitTimeout, 500);
  const all = await config('all-in-one', ['--redis-cluster-nodes', 'n1:7000', '--redis-wait-replicas', '2']);
  assert.equal(all.redisWaitReplicas, 2);
});

test('with sentinels the seed flags make up no URL; the URL gives auth, db and TLS to the data nodes, not the host', async () => {
  const seed = await config('all-in-one', ['--broker', 'redis', '--redis-host', 'old', '--redis-sentinels', 'a:1']);
  assert.equal(seed.redisUrl, '', 'no redis://old:6379 made up');

  const c = await config('edge', ['--redis-sentinels', 'a:1', '--redis-url', 'rediss://app:s%40cret@ignored:1/3']);
  const options = redisConnectionOptions(redisConnectionConfig(c));
  assert.equal(options.host, undefined);
  assert.equal(options.port, undefined);
  assert.equal(options.username, 'app');
  assert.equal(options.password, 's@cret');
  assert.equal(options.db, 3);
  assert.deepEqual(options.tls, {});
  assert.equal(options.enableTLSForSentinelMode, true);
  assert.equal(options.failoverDetector, true);
  assert.equal(options.role, 'master');
  assert.equal(options.name, 'mymaster');
  assert.deepEqual(options.sentinels, [{ host: 'a', port: 1 }]);
  assert.equal(options.reconnectOnError?.(new Error("READONLY You can't write against a read only replica.")), true);
  assert.equal(options.reconnectOnError?.(new Error('ERR wrong number of arguments')), false);

  const plain = redisConnectionOptions(redisConnectionConfig(await config('edge', ['--redis-url', 'redis://h:7000/2'])));
  assert.equal(plain.host, 'h');
  assert.equal(plain.port, 7000);
  assert.equal(plain.db, 2);
  assert.equal(plain.tls, undefined);
  assert.equal(plain.sentinels, undefined);
});

test('--redis-ca-file: read at startup into the TLS options of a rediss:// URL', async (t) => {
  const files = makeTlsFiles();
  t.after(() => files.remove());
  const c = await config('edge', ['--redis-url', 'rediss://127.0.0.1:6380', '--redis-ca-file', files.caFile]);
  const options = redisConnectionOptions(redisConnectionConfig(c));
  assert.match(String((options.tls as { ca: string }).ca), /-----BEGIN CERTIFICATE-----/);
});

test('bad values: one line per bad entry', async () => {
  assert.deepEqual(await errors('edge', ['--redis-sentinels', 'ok:1,nohost,:26379,h:0,h:65536,h:x,::1:26379']), [
    '--redis-sentinels: "nohost" is not host:port (port 1-65535; IPv6 as [addr]:port)',
    '--redis-sentinels: ":26379" is not host:port (port 1-65535; IPv6 as [addr]:port)',
    '--redis-sentinels: "h:0" is not host:port (port 1-65535; IPv6 as [addr]:port)',
    '--redis-sentinels: "h:65536" is not host:port (port 1-65535; IPv6 as [addr]:port)',
    '--redis-sentinels: "h:x" is not host:port (port 1-65535; IPv6 as [addr]:port)',
    '--redis-sentinels: "::1:26379" is not host:port (port 1-65535; IPv6 as [addr]:port)',
  ]);
  assert.deepEqual(await errors('publisher', ['--redis-sentinels', 'a:1', '--redis-sentinel-name', ' ']), [
    '--redis-sentinel-name: empty (the master group name Sentinel monitors, e.g. mymaster)',
  ]);
  assert.deepEqual(await errors('edge', ['--redis-ca-file', '/nonexistent/ca.pem', '--redis-url', 'rediss://h']), [
    '--redis-ca-file: cannot read /nonexistent/ca.pem (ENOENT)',
  ]);
  const dir = mkdtempSync(join(tmpdir(), 'cfg-redis-'));
  writeFileSync(join(dir, 'empty.pem'), 'not a certificate\n');
  assert.deepEqual(await errors('edge', ['--redis-ca-file', join(dir, 'empty.pem'), '--redis-url', 'rediss://h']), [
    `--redis-ca-file: ${join(dir, 'empty.pem')} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`,
  ]);
  const files = makeTlsFiles();
  try {
    assert.deepEqual(await errors('edge', ['--redis-ca-file', files.caFile, '--redis-url', 'redis://h']), [
      '--redis-ca-file: needs TLS to Redis, i.e. a rediss:// --redis-url (with --redis-sentinels too: rediss://[:password@]any/db)',
    ]);
  } finally {
    files.remove();
  }
  // The password of a bad URL is not repeated in the message.
  assert.deepEqual(await errors('edge', ['--redis-url', 'redis://u:hunter2@h/notadb']), [
    '--redis-url: "redis://u:***@h/notadb" is not a Redis URL (database "notadb" is not a number)',
  ]);
});

test('every binary: bad Redis options → one line per problem on stderr, exit 2, nothing listens', () => {
  for (const which of ['edge', 'publisher', 'all-in-one'] as const) {
    const r = spawnSync(
      process.execPath,
      [
        binPath(which),
        '--port',
        '0',
        '--metrics-port',
        '-1',
        '--redis-sentinels',
        'good:1,bad',
        'h:0',
        '--redis-ca-file',
        '/nonexistent.pem',
      ],
      { encoding: 'utf8', timeout: 20_000 },
    );
    assert.equal(r.status, 2, `${which}: ${r.stderr}`);
    const lines = r.stderr.trim().split('\n');
    assert.deepEqual(
      lines,
      [
        'cyclone-sse: invalid configuration: --redis-sentinels: "bad" is not host:port (port 1-65535; IPv6 as [addr]:port)',
        'cyclone-sse: invalid configuration: --redis-sentinels: "h:0" is not host:port (port 1-65535; IPv6 as [addr]:port)',
        'cyclone-sse: invalid configuration: --redis-ca-file: cannot read /nonexistent.pem (ENOENT)',
      ],
      which,
    );
    assert.equal(r.stdout, '');
  }
  for (const which of ['edge', 'publisher'] as const) {
    const r = spawnSync(process.execPath, [binPath(which), '--port', '0', '--metrics-port', '-1'], { encoding: 'utf8', timeout: 20_000 });
    assert.equal(r.status, 2);
    assert.match(
      r.stderr,
      new RegExp(`cyclone-sse-${which}: CONFIG_INVALID: --redis-url, --redis-sentinels or --redis-cluster-nodes is required`),
    );
  }
});

test('passwords are never logged: the edge names its sentinels, master name, TLS and db, and the failures, but not the secrets', async (t) => {
  const dead = await freePort();
  const child = spawn(
    process.execPath,
    [
      binPath('edge'),
      '--port',
      '0',
      '--metrics-port',
      '-1',
      '--redis-sentinels',
      `127.0.0.1:${dead}`,
      '--redis-sentinel-password',
      'sentinel-hunter2',
      '--redis-url',
      'rediss://app:data-hunter2@ignored/4',
      '--log-level',
      'debug',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  t.after(() => child.kill('SIGKILL'));
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  await waitFor(() => out.includes('"event":"redis_error"'), 15_000, `a redis_error line in: ${out}`);
  const configLine = JSON.parse(out.split('\n').find((l) => l.includes('"event":"redis_config"'))!) as Record<string, unknown>;
  assert.deepEqual(
    { mode: configLine.mode, sentinels: configLine.sentinels, name: configLine.name, tls: configLine.tls, db: configLine.db },
    { mode: 'sentinel', sentinels: [`127.0.0.1:${dead}`], name: 'mymaster', tls: true, db: 4 },
  );
  assert.match(out, /All sentinels are unreachable|ECONNREFUSED/);
  assert.doesNotMatch(out, /hunter2/);
  assert.equal(child.exitCode, null, 'the process stays up while Redis is unreachable');
});
