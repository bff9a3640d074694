/**
 * docs/migrating.md, checked: the original's stock options file (via --config-file and via
 * `$(cat …)`), every original flag mapped to the option it means, the nginx `/sse/` block of the
 * doc in a real nginx, and the original README's three publish paths — its curl command, its
 * `redis-cli publish base '[1, 2, 3]'` (legacy Redis input) and an extras/pub.py-style AMQP
 * publish (direct exchange sse-cyclone-server) — each reaching a subscriber.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import amqp from 'amqplib';
import { parseConfig, type Component } from '@cyclone-sse/common';
import {
  binPath,
  createRabbitVhost,
  ensureRabbit,
  freePort,
  httpRequest,
  NGINX_BIN,
  rabbitmqctl,
  RecordingSubscriber,
  scrapeMetric,
  spawnNode,
  startCluster,
  startRedis,
  startTestHub,
  testRedisUrl,
  waitFor,
} from '@cyclone-sse/testkit';

const run = promisify(execFile);
const REDIS = testRedisUrl();

/** The original extras/cyclone-sse.conf: every option with its default, port 9000, a few left empty. */
const STOCK_CONF = `--port=9000
--listen=127.0.0.1
--app=
--use-ssl=0
--ssl-port=8443
--ssl-listen=127.0.0.1
--ssl-cert=server.crt
--ssl-key=server.key
--broker=http
--http-secret=
--redis-host=127.0.0.1
--redis-port=6379
--amqp-host=127.0.0.1
--amqp-port=5672
--amqp-vhost=/
--amqp-spec=rabbit.xml
--amqp-username=guest
--amqp-password=guest
--amqp-exchange-name=sse-cyclone-server
--amqp-exchange-type=direct
--amqp-channel=1
--export=
--export-host=127.0.0.1
--export-port=0
--export-interval=60
--export-path=cyclone-sse
`;

/** The original README's curl publish, verbatim except the port. */
async function readmeCurl(port: number): Promise<string> {
  const { stdout } = await run(
    'curl',
    ['--dump-header', '-', '-X', 'POST', '-d', 'message=%5B123%2C+124%5D&channel=base', `http://localhost:${port}/publish`],
    { timeout: 10_000 },
  );
  return stdout;
}

/** Runs a shell command line that starts a binary; resolves with its port once it logged `listening`. */
async function spawnShell(t: TestContext, command: string): Promise<{ port: number; broker: string; output: () => string }> {
  const child = spawn('bash', ['-c', command], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const exited = once(child, 'exit');
  t.after(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await exited;
    }
  });
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const line = await new Promise<{ port: number; broker: string }>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const found = out.split('\n').find((l) => l.includes('"event":"listening"'));
      if (found) resolve(JSON.parse(found) as { port: number; broker: string });
    });
    void exited.then(() => reject(new Error(`exited before listening:\n${out}`)));
  });
  return { ...line, output: () => out };
}

test(
  "the original cyclone-sse.conf: via --config-file (with comments) and via $(cat …); obsolete flags warn; the README's curl publish arrives",
  { timeout: 60_000 },
  async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'seed-conf-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const plain = join(dir, 'cyclone-sse.conf');
    const commented = join(dir, 'commented.conf');
    writeFileSync(plain, STOCK_CONF);
    writeFileSync(commented, `# cyclone-sse options\n\n${STOCK_CONF.replace('--broker=http\n', '# the HTTP broker\n--broker=http\n\n')}`);

    // --port/--metrics-port after the file win (free ports for the test).
    const viaFile = await spawnNode('all-in-one', ['--config-file', commented]);
    t.after(() => viaFile.stop());
    const viaShell = await spawnShell(
      t,
      `exec "${process.execPath}" "${binPath('all-in-one')}" $(cat "${plain}") --port 0 --metrics-port 0`,
    );

    for (const [name, output] of [
      ['--config-file', viaFile.output()],
      ['$(cat …)', viaShell.output()],
    ] as const) {
      assert.match(output, /"broker":"memory"/, `${name}: --broker=http is the in-memory broker, despite --redis-host`);
      assert.match(output, /warning: --app is obsolete and ignored: .*--subscriber-auth/, name);
      assert.match(output, /warning: --amqp-spec is obsolete and ignored: no AMQP spec file is needed/, name);
      assert.match(output, /warning: --amqp-channel is obsolete and ignored: .*AMQP channels/, name);
    }
    for (const port of [viaFile.port, viaShell.port]) {
      const sub = new RecordingSubscriber(`http://127.0.0.1:${port}/?channels=base`);
      t.after(() => sub.close());
      await sub.opened();
      const stdout = await readmeCurl(port);
      assert.match(stdout, /^HTTP\/1\.1 200 /m, stdout);
      assert.ok(stdout.endsWith('{"status": "ok"}'), stdout);
      await waitFor(() => sub.received.length >= 1, 5000, 'the curl message');
      assert.deepEqual(
        sub.received.map((r) => r.data),
        ['[123, 124]'],
      );
    }
  },
);

test('every original flag maps to the option it means; every binary accepts all of them', async () => {
  const cases: [Component, string[], Record<string, unknown>][] = [
    ['all-in-one', ['-p', '9000', '-l', '0.0.0.0'], { port: 9000, listen: '0.0.0.0' }],
    ['all-in-one', ['--port=9000', '--listen=0.0.0.0', '--http-secret=s'], { port: 9000, listen: '0.0.0.0', httpSecret: 's' }],
    ['all-in-one', ['--broker=redis', '--redis-host=10.0.0.5', '--redis-port=6380'], { redisUrl: 'redis://10.0.0.5:6380' }],
    ['all-in-one', ['--broker=http', '--redis-host=10.0.0.5', '--redis-port=6380'], { redisUrl: '' }],
    ['edge', ['--broker=http', '--redis-host=10.0.0.5'], { redisUrl: 'redis://10.0.0.5:6379' }],
    [
      'publisher',
      [
        '--broker=amqp',
        '--redis-port=6380',
        '--amqp-host=mq',
        '--amqp-port=5673',
        '--amqp-vhost=/v',
        '--amqp-username=u',
        '--amqp-password=p@ss',
      ],
      {
        redisUrl: 'redis://127.0.0.1:6380',
        amqpUrl: 'amqp://u:p%40ss@mq:5673/%2Fv',
        amqpExchange: 'sse-cyclone-server',
        amqpExchangeType: 'direct',
      },
    ],
    [
      'publisher',
      ['--redis-url=redis://r', '--amqp-host=mq', '--amqp-exchange-name=x', '--amqp-exchange-type=fanout'],
      { amqpUrl: 'amqp://guest:guest@mq:5672/%2F', amqpExchange: 'x', amqpExchangeType: 'fanout' },
    ],
    [
      'all-in-one',
      ['--use-ssl=1', '--ssl-port=9443', '--ssl-listen=0.0.0.0', '--ssl-cert=a.crt', '--ssl-key=a.key'],
      { useSsl: true, sslPort: 9443, sslListen: '0.0.0.0', sslCert: 'a.crt', sslKey: 'a.key' },
    ],
    ['edge', ['--redis-url=redis://r', '--use-ssl', '1'], { useSsl: true }],
    [
      'edge',
      ['--redis-url=redis://r', '--use-ssl=0'],
      { useSsl: false, sslCert: 'server.crt', sslKey: 'server.key', sslPort: 8443, sslListen: '127.0.0.1' },
    ],
    [
      'all-in-one',
      [
        '--export=graphite',
        '--export-host=127.0.0.1',
        '--export-port=33333',
        '--export-interval=10',
        '--export-path=graphite.prefix.for.stats',
      ],
      { export: 'graphite', exportHost: '127.0.0.1', exportPort: 33333, exportInterval: 10, exportPath: 'graphite.prefix.for.stats' },
    ],
    // Flags a binary has no use for are accepted (one options file for every process).
    ['publisher', ['--redis-url=redis://r', '--export=graphite', '--use-ssl=1', '--http-secret=s'], { httpSecret: 's' }],
    ['edge', ['--redis-url=redis://r', '--http-secret=s', '--amqp-host=mq', '--amqp-exchange-name=x', '--amqp-exchange-type=direct'], {}],
    ['all-in-one', ['--amqp-host=mq', '--amqp-username=u', '--amqp-exchange-type=direct'], { amqpUrl: '' }],
  ];
  for (const [component, argv, expected] of cases) {
    const outcome = await parseConfig(component, argv, {});
    assert.equal(outcome.kind, 'config', `${component} ${argv.join(' ')}: ${JSON.stringify(outcome)}`);
    if (outcome.kind !== 'config') continue;
    const got = Object.fromEntries(Object.keys(expected).map((k) => [k, (outcome.config as unknown as Record<string, unknown>)[k]]));
    assert.deepEqual(got, expected, `${component} ${argv.join(' ')}`);
    assert.deepEqual(outcome.warnings, []);
  }

  const obsolete = await parseConfig(
    'all-in-one',
    ['--app=custom.App', '-r', 'other.App', '--amqp-spec', 'extras/rabbitmq-specification.xml', '--amqp-channel=1', '--port=1'],
    {},
  );
  assert.equal(obsolete.kind, 'config');
  if (obsolete.kind === 'config') {
    assert.equal(obsolete.config.port, 1, 'the values of obsolete flags are consumed, nothing else');
    assert.equal(obsolete.warnings.length, 4);
    assert.match(obsolete.warnings[0]!, /^--app is obsolete and ignored: .*docs\/migrating\.md/);
    assert.match(obsolete.warnings[1]!, /^--app is obsolete/);
    assert.match(obsolete.warnings[2]!, /^--amqp-spec is obsolete and ignored: no AMQP spec file/);
    assert.match(obsolete.warnings[3]!, /^--amqp-channel is obsolete and ignored: the publisher opens its own AMQP channels/);
  }
  const amqpAllInOne = await parseConfig('all-in-one', ['--broker=amqp'], {});
  assert.match(amqpAllInOne.kind === 'errors' ? amqpAllInOne.errors.join('\n') : '', /cyclone-sse-publisher .*docs\/migrating\.md/);
  const missing = await parseConfig('all-in-one', ['--config-file', '/nonexistent/cyclone-sse.conf'], {});
  assert.deepEqual(missing.kind === 'errors' && missing.errors, ['--config-file: cannot read /nonexistent/cyclone-sse.conf (ENOENT)']);
});

test(
  "docs/migrating.md's nginx /sse/ location in a real nginx: streams and /client.js through /sse/, publishing only on the hub's port",
  { timeout: 60_000 },
  async (t) => {
    const doc = readFileSync(new URL('../../docs/migrating.md', import.meta.url), 'utf8');
    const at = doc.indexOf('<!-- seed-compat.test.ts runs the next block');
    assert.ok(at > 0, 'marker in docs/migrating.md');
    const block = /```nginx\n([\s\S]*?)```/.exec(doc.slice(at))![1]!;
    const hub = await startTestHub(t);
    const locations = block.replaceAll('127.0.0.1:8888', `127.0.0.1:${hub.port}`);
    assert.notEqual(locations, block);

    const dir = mkdtempSync(join(tmpdir(), 'seed-nginx-'));
    mkdirSync(join(dir, 'tmp'));
    const port = await freePort();
    const temp = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((k) => `  ${k}_temp_path ${dir}/tmp/${k};`).join('\n');
    writeFileSync(
      join(dir, 'nginx.conf'),
      `worker_processes 1;\nerror_log ${dir}/error.log warn;\npid ${dir}/nginx.pid;\nevents {}\nhttp {\n  access_log off;\n${temp}\n  server {\n    listen 127.0.0.1:${port};\n${locations}\n  }\n}\n`,
    );
    const nginx = spawn(NGINX_BIN, ['-p', dir, '-c', join(dir, 'nginx.conf'), '-g', 'daemon off;'], { stdio: 'ignore' });
    const exited = once(nginx, 'exit');
    t.after(async () => {
      nginx.kill('SIGQUIT');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    });
    await waitFor(
      () =>
        new Promise<boolean>((resolve) => {
          const s = connect(port, '127.0.0.1');
          s.once('connect', () => (s.destroy(), resolve(true)));
          s.once('error', () => resolve(false));
        }),
      10_000,
      'nginx to listen',
    );
    const site = `http://127.0.0.1:${port}`;

    const sub = new RecordingSubscriber(`${site}/sse/?channels=base`);
    t.after(() => sub.close());
    await sub.opened();
    const stdout = await readmeCurl(hub.port);
    assert.match(stdout, /^HTTP\/1\.1 200 /m);
    await waitFor(() => sub.received.length >= 1, 5000, 'the message through nginx');
    assert.deepEqual(
      sub.received.map((r) => r.data),
      ['[123, 124]'],
    );

    const client = await httpRequest(`${site}/sse/client.js`);
    assert.equal(client.status, 200);
    assert.equal(client.headers.get('content-type'), 'text/javascript; charset=utf-8');
    assert.deepEqual((await httpRequest(`${site}/sse/stats`)).json, [['base', 1]]);
    const denied = await httpRequest(`${site}/sse/publish`, {
      method: 'POST',
      body: 'message=x&channel=base',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    });
    assert.equal(denied.status, 403);
    assert.equal(sub.received.length, 1);
  },
);

test(
  "the README's redis-cli publish base '[1, 2, 3]' reaches a subscriber through the legacy Redis input",
  { timeout: 60_000 },
  async (t) => {
    const redis = await startRedis();
    t.after(() => redis.stop());
    const c = await startCluster(t, { redisUrl: redis.url, edges: 1, publishers: 1, publisherArgs: ['--redis-ingest-pattern', '*'] });
    const sub = new RecordingSubscriber(`${c.base}/?channels=base`);
    t.after(() => sub.close());
    await sub.opened();
    await waitFor(
      async () => (await scrapeMetric(c.publishers[0]!.metricsBase, 'cyclone_sse_publisher_redis_ingest_leader')) === 1,
      15_000,
      'the ingest lease',
    );

    const { stdout } = await run('redis-cli', ['-p', String(redis.port), 'publish', 'base', '[1, 2, 3]'], { timeout: 10_000 });
    assert.equal(stdout.trim(), '1', 'one Redis subscriber: the publisher');
    await waitFor(() => sub.received.length >= 1, 10_000, 'the raw Redis message');
    assert.deepEqual(
      sub.received.map((r) => [r.type, r.data]),
      [['message', '[1, 2, 3]']],
    );
    assert.match(sub.received[0]!.id, /^[0-9a-z]+-1$/);
  },
);

test(
  'an extras/pub.py-style AMQP publish (non-durable direct exchange sse-cyclone-server, routing key base) reaches a subscriber',
  { timeout: 90_000 },
  async (t) => {
    await ensureRabbit();
    const vhost = await createRabbitVhost('seed-compat');
    t.after(() => vhost.delete());
    const c = await startCluster(t, {
      redisUrl: REDIS,
      edges: 1,
      publishers: 1,
      edgeArgs: ['--cluster-report-interval', '0.5'],
      publisherArgs: [
        '--amqp-url',
        vhost.url,
        '--amqp-exchange',
        'sse-cyclone-server',
        '--amqp-exchange-type',
        'direct',
        '--cluster-report-interval',
        '0.5',
      ],
    });
    const sub = new RecordingSubscriber(`${c.base}/?channels=base`);
    t.after(() => sub.close());
    await sub.opened();
    // A direct exchange is bound per channel with subscribers: wait for "base" to be bound.
    await waitFor(
      async () =>
        (await rabbitmqctl('--no-table-headers', 'list_bindings', '-p', vhost.name, 'source_name', 'routing_key'))
          .split('\n')
          .includes('sse-cyclone-server\tbase'),
      20_000,
      'the binding for base',
    );

    // pub.py: declare the exchange as pika does (direct, not durable), publish ["comment", "123"].
    const conn = await amqp.connect(vhost.url);
    t.after(() => conn.close().catch(() => undefined));
    const ch = await conn.createChannel();
    await ch.assertExchange('sse-cyclone-server', 'direct', { durable: false, autoDelete: false });
    ch.publish('sse-cyclone-server', 'base', Buffer.from('["comment", "123"]'));
    await waitFor(() => sub.received.length >= 1, 15_000, 'the AMQP message');
    assert.deepEqual(
      sub.received.map((r) => [r.type, r.data]),
      [['message', '["comment", "123"]']],
    );
    assert.deepEqual(JSON.parse(sub.received[0]!.data), ['comment', '123']);
  },
);
