// The chart's defaults are the safe ones, and it refuses what would expose more than it should:
// `helm install` with no values (embedded Redis with a password, protected mode, NetworkPolicies),
// no public publish route without a credential, the edge defaults (/demo off, /stats internal,
// a maximum stream lifetime, max-connections from the memory limit) — checked on the rendered
// objects and on real edge and publisher processes started from the rendered config files.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { OPTIONS, type OptionSpec } from '@cyclone-sse/common';
import { freePort, httpRequest, publishJson, spawnNode, testRedisUrl, waitFor } from '@cyclone-sse/testkit';
import {
  PUBLISH_SECRET,
  REDIS,
  all,
  ci,
  configOf,
  container,
  edgeName,
  envOf,
  find,
  fullName,
  publisherName,
  redisName,
  render,
  renderFails,
  renderNotes,
  scratch,
  type Obj,
} from './helm-kit.js';

const defaults = render(ci('default'));
const MiB = 1024 * 1024;
const KiB = 1024;

// ---- helm install with no values --------------------------------------------------------------

test('no values: an embedded Redis with a generated password in a Secret, protected mode on', () => {
  const secret = find(defaults, 'Secret', redisName);
  const password = Buffer.from(secret.data['redis-password'], 'base64').toString();
  assert.match(password, /^[A-Za-z0-9]{32}$/);
  const sts = find(defaults, 'StatefulSet', redisName);
  const c = container(sts);
  const args: string[] = c.args;
  assert.equal(args[args.indexOf('--protected-mode') + 1], 'yes');
  // redis-server gets --requirepass from the environment, which comes from the Secret
  assert.deepEqual(c.command.slice(0, 2), ['sh', '-c']);
  assert.match(c.command[2], /exec redis-server "\$@" --requirepass "\$REDIS_PASSWORD"/);
  const ref = { secretKeyRef: { name: redisName, key: 'redis-password' } };
  assert.deepEqual(envOf(sts).REDIS_PASSWORD.valueFrom, ref);
  assert.deepEqual(envOf(sts).REDISCLI_AUTH.valueFrom, ref, 'the readiness probe authenticates');
  assert.match(c.readinessProbe.exec.command.join(' '), /redis-cli -p 6379 ping\)" = PONG/);
  // edges and publishers build the URL from the same Secret; the password is nowhere else
  for (const n of [edgeName, publisherName]) {
    const env = envOf(find(defaults, 'Deployment', n));
    assert.deepEqual(env.REDIS_PASSWORD.valueFrom, ref);
    assert.equal(env.CYCLONE_SSE_REDIS_URL.value, `redis://:$(REDIS_PASSWORD)@${redisName}:6379/0`);
  }
  for (const o of defaults.filter((x) => x.kind !== 'Secret'))
    assert.ok(!JSON.stringify(o).includes(password), `${o.kind} carries the password`);
  // helm template cannot look up the installed Secret: each render generates a new password (on
  // `helm upgrade` the lookup keeps the installed one)
  const again = Buffer.from(find(render(ci('default')), 'Secret', redisName).data['redis-password'], 'base64').toString();
  assert.notEqual(again, password);
  // the only Redis peers are this release's edges and publishers
  const np = find(defaults, 'NetworkPolicy', redisName);
  assert.deepEqual(np.spec.podSelector.matchLabels, sts.spec.selector.matchLabels);
  assert.deepEqual(np.spec.ingress[0].ports, [{ port: 6379, protocol: 'TCP' }]);
});

test(
  'the embedded Redis command line, run: a password is required, protected mode and noeviction on, the readiness probe passes only with the password',
  { timeout: 30_000 },
  async (t) => {
    const c = container(find(defaults, 'StatefulSet', redisName));
    const port = await freePort();
    const dir = mkdtempSync(join(scratch, 'redis-'));
    // the pod's command and args, on a free port and a writable directory instead of 6379 and /data
    const args = (c.args as string[]).map((a, i, all) => (all[i - 1] === '--port' ? String(port) : all[i - 1] === '--dir' ? dir : a));
    const password = 'chart-test-password';
    const redis = spawn(c.command[0], [...c.command.slice(1), ...args], {
      env: { ...process.env, REDIS_PASSWORD: password },
      stdio: 'ignore',
    });
    const exited = once(redis, 'exit');
    t.after(async () => {
      if (redis.exitCode === null) {
        redis.kill('SIGTERM');
        await exited;
      }
    });
    const cli = (env: NodeJS.ProcessEnv, ...cmd: string[]) =>
      spawnSync('redis-cli', ['-p', String(port), ...cmd], { encoding: 'utf8', env: { ...process.env, ...env } }).stdout.trim();
    await waitFor(() => cli({}, 'ping') !== '', 10_000, 'redis-server listening');
    assert.match(cli({}, 'ping'), /NOAUTH/);
    const auth = { REDISCLI_AUTH: password };
    assert.equal(cli(auth, 'ping'), 'PONG');
    assert.deepEqual(cli(auth, 'config', 'get', 'protected-mode').split('\n'), ['protected-mode', 'yes']);
    assert.deepEqual(cli(auth, 'config', 'get', 'maxmemory-policy').split('\n'), ['maxmemory-policy', 'noeviction']);
    const probe = (c.readinessProbe.exec.command as string[]).map((a) => a.replace('-p 6379', `-p ${port}`));
    const run = (env: NodeJS.ProcessEnv) => spawnSync(probe[0]!, probe.slice(1), { env: { ...process.env, ...env } }).status;
    assert.equal(run(auth), 0);
    assert.notEqual(run({ REDISCLI_AUTH: 'wrong' }), 0);
    assert.notEqual(run({}), 0);
  },
);

test('embedded Redis with redis.embedded.auth.existingSecret: no generated Secret, the password from that one', () => {
  const objs = render({ redis: { embedded: { auth: { existingSecret: 'my-redis', existingSecretKey: 'pw' } } } });
  assert.equal(all(objs, 'Secret').length, 0);
  const ref = { secretKeyRef: { name: 'my-redis', key: 'pw' } };
  assert.deepEqual(envOf(find(objs, 'StatefulSet', redisName)).REDIS_PASSWORD.valueFrom, ref);
  assert.deepEqual(envOf(find(objs, 'Deployment', edgeName)).REDIS_PASSWORD.valueFrom, ref);
});

test('an external Redis (URL, Secret or Sentinel) replaces the embedded one', () => {
  for (const objs of [
    render(REDIS),
    render({ redis: { existingSecret: 'r' } }),
    render(ci('sentinel')),
    render({ config: { 'redis-sentinels': ['s:26379'], 'redis-sentinel-name': 'm' } }),
    render(ci('cluster')),
  ]) {
    assert.deepEqual(
      objs.filter((o) => o.metadata.name.startsWith(redisName)).map((o) => `${o.kind}/${o.metadata.name}`),
      [],
    );
    assert.equal(envOf(find(objs, 'Deployment', edgeName)).REDIS_PASSWORD, undefined);
  }
  const sentinel = render(ci('sentinel'));
  for (const comp of ['edge', 'publisher']) {
    assert.deepEqual(configOf(sentinel, comp)['redis-sentinels'].length, 3);
    const d = find(sentinel, 'Deployment', comp === 'edge' ? edgeName : publisherName);
    assert.deepEqual(envOf(d).CYCLONE_SSE_REDIS_SENTINEL_PASSWORD.valueFrom, {
      secretKeyRef: { name: 'sse-redis', key: 'sentinel-password' },
    });
    assert.deepEqual(envOf(d).CYCLONE_SSE_REDIS_URL.valueFrom, { secretKeyRef: { name: 'sse-redis', key: 'redis-url' } });
  }
  assert.equal(configOf(sentinel, 'publisher')['redis-wait-replicas'], 1);
  const cluster = render(ci('cluster'));
  for (const comp of ['edge', 'publisher']) {
    assert.deepEqual(configOf(cluster, comp)['redis-cluster-nodes'].length, 3);
    assert.equal(configOf(cluster, comp)['redis-partitions'], 16);
    const d = find(cluster, 'Deployment', comp === 'edge' ? edgeName : publisherName);
    assert.deepEqual(envOf(d).CYCLONE_SSE_REDIS_URL.valueFrom, { secretKeyRef: { name: 'sse-redis', key: 'redis-url' } });
  }
});

test('Sentinel and a Redis Cluster together are refused', () => {
  const stderr = renderFails({ config: { 'redis-sentinels': ['s:26379'], 'redis-cluster-nodes': ['c:6379'] } });
  assert.match(stderr, /set config\.redis-sentinels or config\.redis-cluster-nodes, not both/);
});

test('NOTES: what Redis runs, and how to switch to an external, Sentinel or Cluster Redis', () => {
  const notes = renderNotes(ci('default'));
  assert.ok(notes.includes(`Embedded single Redis ${redisName} (password in Secret ${redisName}, key redis-password`));
  assert.ok(notes.includes('--set redis.existingSecret=sse-redis'));
  assert.match(notes, /redis-sentinels: \[/);
  assert.match(notes, /redis-sentinel-name: mymaster/);
  assert.match(notes, /CYCLONE_SSE_REDIS_SENTINEL_PASSWORD/);
  assert.match(notes, /redis-cluster-nodes: \[/);
  assert.match(notes, /redis-partitions: 16/);
  const cluster = renderNotes(ci('cluster'));
  assert.match(cluster, /Redis Cluster \(config\.redis-cluster-nodes\), password from Secret sse-redis, 16 partitions/);
  assert.ok(!cluster.includes('To use your own Redis instead'));
  const sentinel = renderNotes(ci('sentinel'));
  assert.match(sentinel, /Sentinel \(config\.redis-sentinels\), password and db from Secret sse-redis/);
  assert.ok(!sentinel.includes('To use your own Redis instead'));
});

// ---- nothing public that should not be --------------------------------------------------------

const PUBLIC_PUBLISH: [string, object][] = [
  ['an Ingress publish route', { ingress: { enabled: true, controller: 'ingress-nginx', publish: true } }],
  ['an HTTPRoute publish rule', { httpRoute: { enabled: true, parentRefs: [{ name: 'gw' }], publish: true } }],
  ['a LoadBalancer publisher Service', { publisher: { service: { type: 'LoadBalancer' } } }],
  ['a NodePort publisher Service', { publisher: { service: { type: 'NodePort' } } }],
];

for (const [what, values] of PUBLIC_PUBLISH) {
  test(`refuses ${what} without a publish credential, and renders it with one`, () => {
    const stderr = renderFails(values);
    assert.match(stderr, /refusing to expose POST \/publish without a credential/);
    assert.match(stderr, /set auth\.existingSecret \(or auth\.httpSecret\), or a publisher-jwt-key in publisher\.config/);
    for (const credential of [
      PUBLISH_SECRET,
      { auth: { httpSecret: 'x' } },
      { publisher: { config: { 'publisher-jwt-key': '/keys/publisher.pem' } } },
      { publisher: { extraEnv: [{ name: 'CYCLONE_SSE_HTTP_SECRET', valueFrom: { secretKeyRef: { name: 's', key: 'k' } } }] } },
    ]) {
      const merged = structuredClone(values) as any;
      for (const [k, v] of Object.entries(credential)) merged[k] = { ...(merged[k] ?? {}), ...v };
      assert.ok(render(merged).length > 0);
    }
  });
}

test('defaults: the publisher stays cluster-internal, and no publish route exists', () => {
  assert.equal(find(defaults, 'Service', publisherName).spec.type, 'ClusterIP');
  assert.equal(all(defaults, 'Ingress').length, 0);
  assert.equal(all(defaults, 'HTTPRoute').length, 0);
  const edgesOnly = render({ ingress: { enabled: true, controller: 'none' } });
  assert.deepEqual(
    all(edgesOnly, 'Ingress').map((i) => i.metadata.name),
    [fullName],
    'ingress.publish is off by default',
  );
});

test('edge defaults: /demo off, /stats on the internal port only, streams end after 48–60 min', () => {
  const e = configOf(defaults, 'edge');
  assert.equal(e.demo, false);
  assert.equal(e.stats, 'internal');
  assert.equal(e['max-stream-seconds'], 3600);
  const spec = OPTIONS['max-stream-seconds'] as OptionSpec;
  assert.match(spec.describe, /jittered down to 80 %/, 'the lifetime is jittered by the edge itself');
  // still the user's choice
  const opened = configOf(render({ edge: { config: { demo: true, stats: 'public', 'max-stream-seconds': 0 } } }), 'edge');
  assert.deepEqual([opened.demo, opened.stats, opened['max-stream-seconds']], [true, 'public', 0]);
});

// ---- memory: max-connections from the memory limit --------------------------------------------

function expectedMaxConnections(limitBytes: number, baseMiB = 128, perConnectionKiB = 16, queuedPercent = 25): number {
  const queued = Math.trunc((limitBytes * queuedPercent) / 100);
  return Math.trunc((limitBytes - baseMiB * MiB - queued) / (perConnectionKiB * KiB));
}

test('max-connections = (memory limit - base - queued share) / per-connection bytes, unless set', () => {
  assert.equal(configOf(defaults, 'edge')['max-connections'], 16384);
  assert.equal(expectedMaxConnections(512 * MiB), 16384);
  const cases: [string | number, number][] = [
    ['2Gi', 2048 * MiB],
    ['1G', 1e9],
    ['1.5Gi', 1536 * MiB],
    ['786432Ki', 768 * MiB],
    [1073741824, 1024 * MiB],
  ];
  for (const [limit, bytes] of cases) {
    const e = configOf(render({ edge: { resources: { limits: { memory: limit } } } }), 'edge');
    assert.equal(e['max-connections'], expectedMaxConnections(bytes), `limit ${limit}`);
  }
  const tuned = render({
    edge: { resources: { limits: { memory: '1Gi' } }, memoryBudget: { baseMiB: 64, perConnectionKiB: 8, queuedPercent: 50 } },
  });
  assert.equal(configOf(tuned, 'edge')['max-connections'], expectedMaxConnections(1024 * MiB, 64, 8, 50));
  // the queued share is the edge's budget for bytes waiting for slow readers
  assert.equal(configOf(defaults, 'edge')['max-queued-bytes-total'], 128 * MiB);
  assert.equal(configOf(tuned, 'edge')['max-queued-bytes-total'], 512 * MiB);
  assert.equal(configOf(render({ edge: { config: { 'max-queued-bytes-total': 1000000 } } }), 'edge')['max-queued-bytes-total'], 1000000);
  assert.equal(configOf(render({ edge: { config: { 'max-connections': 500 } } }), 'edge')['max-connections'], 500);
  // no memory limit: no derived cap, and the NOTES say so
  const unlimited = { edge: { resources: { limits: null } } };
  assert.equal(configOf(render(unlimited), 'edge')['max-connections'], undefined);
  assert.equal(configOf(render(unlimited), 'edge')['max-queued-bytes-total'], undefined);
  assert.match(renderNotes(unlimited), /WARNING: no edge memory limit and no max-connections/);
  assert.match(renderNotes(ci('default')), /max-connections 16384 per edge \(from limits\.memory 512Mi/);
});

test('HPA: edges scale on connections per pod (70 % of max-connections), publishers on CPU, customMetrics on both', () => {
  const custom = { type: 'External', external: { metric: { name: 'queue_depth' }, target: { type: 'AverageValue', averageValue: '10' } } };
  const objs = render({
    edge: { autoscaling: { enabled: true, customMetrics: [custom] } },
    publisher: { autoscaling: { enabled: true, customMetrics: [custom] } },
  });
  const edge = find(objs, 'HorizontalPodAutoscaler', edgeName);
  assert.deepEqual(edge.spec.metrics, [
    { type: 'Pods', pods: { metric: { name: 'cyclone_sse_edge_connections' }, target: { type: 'AverageValue', averageValue: '11468' } } },
    custom,
  ]);
  assert.equal(Math.trunc(16384 * 0.7), 11468);
  const pub = find(objs, 'HorizontalPodAutoscaler', publisherName);
  assert.deepEqual(pub.spec.metrics, [
    { type: 'Resource', resource: { name: 'cpu', target: { type: 'Utilization', averageUtilization: 70 } } },
    custom,
  ]);
  const explicit = find(
    render({ edge: { autoscaling: { enabled: true, targetConnectionsPerPod: 5000 } } }),
    'HorizontalPodAutoscaler',
    edgeName,
  );
  assert.equal(explicit.spec.metrics[0].pods.target.averageValue, '5000');
  const onlyCustom = render({ edge: { autoscaling: { enabled: true, targetConnectionsPercent: null, customMetrics: [custom] } } });
  assert.deepEqual(find(onlyCustom, 'HorizontalPodAutoscaler', edgeName).spec.metrics, [custom]);
  assert.match(
    renderFails({ edge: { autoscaling: { enabled: true, targetConnectionsPercent: null } } }),
    /edge\.autoscaling\.enabled needs a metric/,
  );
});

test('refused: what the API server would reject (an Ingress without hosts, a selector label in podLabels or commonLabels)', () => {
  const ingress = { ingress: { enabled: true, controller: 'none', hosts: [] } };
  assert.match(renderFails(ingress), /ingress\.enabled needs at least one entry in ingress\.hosts/);
  // one host entry without a name serves every host
  const anyHost = find(render({ ingress: { ...ingress.ingress, hosts: [{ host: '' }] } }), 'Ingress', fullName);
  assert.equal(anyHost.spec.rules.length, 1);
  assert.equal(anyHost.spec.rules[0].host, undefined);
  // hosts: [] is fine while the Ingress is off
  assert.equal(all(render({ ingress: { hosts: [] } }), 'Ingress').length, 0);

  for (const key of ['app.kubernetes.io/name', 'app.kubernetes.io/instance', 'app.kubernetes.io/component']) {
    for (const [where, values] of [
      ['edge.podLabels', { edge: { podLabels: { [key]: 'x' } } }],
      ['publisher.podLabels', { publisher: { podLabels: { [key]: 'x' } } }],
      ['commonLabels', { commonLabels: { [key]: 'x' } }],
    ] as const) {
      assert.match(
        renderFails(values),
        new RegExp(`${where.replace('.', '\\.')} must not set ${key.replace(/\./g, '\\.')}: .*selector`),
        `${where} ${key}`,
      );
    }
  }
  // other labels are welcome on the pods
  const labelled = find(render({ edge: { podLabels: { team: 'sse' } } }), 'Deployment', edgeName);
  assert.equal(labelled.spec.template.metadata.labels.team, 'sse');
  assert.equal(labelled.spec.template.metadata.labels['app.kubernetes.io/component'], 'edge');
});

test('edges and publishers prefer distinct nodes (soft topology spread)', () => {
  for (const n of [edgeName, publisherName]) {
    const d = find(defaults, 'Deployment', n);
    assert.deepEqual(d.spec.template.spec.topologySpreadConstraints, [
      {
        maxSkew: 1,
        topologyKey: 'kubernetes.io/hostname',
        whenUnsatisfiable: 'ScheduleAnyway',
        labelSelector: { matchLabels: d.spec.selector.matchLabels },
      },
    ]);
  }
  const none = find(render({ edge: { topologySpreadConstraints: [] } }), 'Deployment', edgeName);
  assert.equal(none.spec.template.spec.topologySpreadConstraints, undefined);
});

test('rollout: an old edge is replaced only after the previous one had time to drain (minReadySeconds = preStop + drain)', () => {
  const d = find(defaults, 'Deployment', edgeName);
  assert.equal(d.spec.minReadySeconds, 5 + 20);
  assert.equal(find(render({ edge: { drainSeconds: 40, preStopSleepSeconds: 10 } }), 'Deployment', edgeName).spec.minReadySeconds, 50);
  assert.equal(find(render({ edge: { minReadySeconds: 3 } }), 'Deployment', edgeName).spec.minReadySeconds, 3);
  assert.equal(find(defaults, 'Deployment', publisherName).spec.minReadySeconds, 0);
});

test('edge TLS: an https port in the container, the Service and the NetworkPolicy, the certificate from the Secret', () => {
  const objs = render({
    edge: { tls: { enabled: true, existingSecret: 'edge-tls' }, service: { type: 'LoadBalancer', httpsNodePort: 30443 } },
  });
  const d = find(objs, 'Deployment', edgeName);
  const c = container(d);
  assert.deepEqual(
    c.ports.map((p: any) => [p.name, p.containerPort]),
    [
      ['http', 8888],
      ['https', 8443],
      ['internal', 9090],
    ],
  );
  assert.deepEqual(
    c.volumeMounts.find((m: any) => m.name === 'tls'),
    { name: 'tls', mountPath: '/etc/cyclone-sse-tls', readOnly: true },
  );
  assert.deepEqual(d.spec.template.spec.volumes.find((v: any) => v.name === 'tls').secret, { secretName: 'edge-tls' });
  const e = configOf(objs, 'edge');
  assert.deepEqual(
    [e['use-ssl'], e['ssl-port'], e['ssl-listen'], e['ssl-cert'], e['ssl-key']],
    [true, 8443, '0.0.0.0', '/etc/cyclone-sse-tls/tls.crt', '/etc/cyclone-sse-tls/tls.key'],
  );
  const svc = find(objs, 'Service', edgeName);
  assert.deepEqual(svc.spec.ports[1], {
    name: 'https',
    port: 443,
    targetPort: 'https',
    protocol: 'TCP',
    appProtocol: 'https',
    nodePort: 30443,
  });
  assert.ok(find(objs, 'NetworkPolicy', edgeName).spec.ingress.some((r: any) => r.ports[0].port === 'https'));
  // the raw options are the chart's: a use-ssl without a port is refused by the schema
  assert.match(renderFails({ edge: { config: { 'use-ssl': true } } }), /schema/i);
  // no TLS: no https port anywhere
  assert.ok(!JSON.stringify(find(defaults, 'Service', edgeName)).includes('https'));
  assert.ok(!configOf(defaults, 'publisher')['use-ssl']);
});

test('NOTES warn when a proxy in front would make the per-IP cap count the whole site as one client', () => {
  const warn = /per-IP cap \(max-connections-per-ip, 1000 per edge\) counts the whole site as one client/;
  const ingress = { ingress: { enabled: true, controller: 'traefik' } };
  assert.match(renderNotes(ingress), warn);
  assert.doesNotMatch(renderNotes({ ...ingress, config: { 'trusted-proxies': ['10.0.0.0/8'] } }), warn);
  assert.doesNotMatch(renderNotes({ ...ingress, edge: { config: { 'max-connections-per-ip': 0 } } }), warn);
  assert.doesNotMatch(renderNotes(ci('default')), warn);
});

// ---- the rendered config files, run ----------------------------------------------------------

/** Writes a component's rendered JSON to a file and returns its path. */
function configFile(objs: Obj[], component: string): string {
  const dir = mkdtempSync(join(scratch, 'run-'));
  const path = join(dir, `${component}.json`);
  writeFileSync(path, JSON.stringify(configOf(objs, component)));
  return path;
}

test(
  'an edge and a publisher started from the rendered files: no /demo, /stats only internally, publish needs the secret',
  { timeout: 60_000 },
  async (t) => {
    const prefix = `chart-safety-${process.pid}-${randomBytes(3).toString('hex')}`;
    const objs = render({ redis: { url: testRedisUrl(), prefix }, auth: { httpSecret: 's3cret' } });
    const edge = await spawnNode('edge', ['--config', configFile(objs, 'edge')]);
    t.after(() => edge.stop());
    const publisher = await spawnNode('publisher', ['--config', configFile(objs, 'publisher')], { CYCLONE_SSE_HTTP_SECRET: 's3cret' });
    t.after(() => publisher.stop());
    await waitFor(async () => (await httpRequest(`${edge.metricsBase}/readyz`)).status === 200, 15_000, 'edge ready');

    assert.equal((await httpRequest(`${edge.base}/demo`)).status, 404);
    assert.equal((await httpRequest(`${edge.base}/stats`)).status, 404);
    assert.equal((await httpRequest(`${edge.base}/stats?scope=cluster`)).status, 404);
    const internal = await httpRequest(`${edge.metricsBase}/stats?scope=cluster`);
    assert.equal(internal.status, 200);
    assert.ok(Array.isArray(internal.json));
    // the client library is still served (the demo page is the only thing switched off)
    assert.equal((await httpRequest(`${edge.base}/client.js`)).status, 200);

    assert.equal((await publishJson(publisher.base, { channel: 'c', data: 'x' })).status, 401);
    assert.equal((await publishJson(publisher.base, { channel: 'c', data: 'x' }, { Authorization: 'Bearer s3cret' })).status, 200);
    const metrics = await httpRequest(`${edge.metricsBase}/metrics`);
    assert.match(metrics.text, /^cyclone_sse_edge_connections 0$/m);
  },
);
