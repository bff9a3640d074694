// Checks the Helm chart deploy/helm/cyclone-sse without a cluster: helm lint, helm template for
// every ci/*.yaml value set, schema violations that must fail, every rendered object validated
// against the Kubernetes OpenAPI schemas (kubernetes-models, offline), and assertions over the
// rendered YAML (probes, security context, labels, drain, commands, config, checksums, routing).
// The secure defaults and refusals are in chart-safety.test.ts, Ingress / HTTPRoute in
// chart-routing.test.ts, the PrometheusRule and dashboard in chart-monitoring.test.ts.
//
// Generated parts of the chart (the values table in the chart README and the option sections of
// values.schema.json) are regenerated with:
//   UPDATE_CHART_DOCS=1 node scripts/test.mjs chart
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml, parseAllDocuments } from 'yaml';
import { OPTIONS, V8_FLAGS_BY_COMPONENT, type OptionSpec } from '@cyclone-sse/common';
import {
  CHART,
  CI_DIR,
  NAMESPACE,
  REDIS,
  RELEASE,
  ROOT,
  all,
  ci,
  ciFiles,
  configOf,
  container,
  edgeName,
  envOf,
  find,
  fullName,
  helm,
  publisherName,
  redisName,
  render,
  renderFails,
  renderNotes,
  scratch,
  validateObject,
  type Obj,
} from './helm-kit.js';

const UPDATE = process.env.UPDATE_CHART_DOCS === '1';

// ---- lint -------------------------------------------------------------------------------------

test('helm binary is the pinned v3 build', () => {
  const r = helm(['version', '--short']);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^v3\.\d+\.\d+/);
});

for (const file of ciFiles) {
  const name = file.slice(CI_DIR.length + 1);
  test(`helm lint --strict passes with ci/${name}`, () => {
    for (const strict of [[], ['--strict']]) {
      const r = helm(['lint', CHART, ...strict, '--namespace', NAMESPACE, '-f', file]);
      assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
      assert.match(r.stdout, /1 chart\(s\) linted, 0 chart\(s\) failed/);
    }
  });
}

test('ci/ holds the documented value sets', () => {
  for (const n of ['default', 'external-redis', 'embedded-redis', 'sentinel', 'production', 'gateway', 'amqp', 'existing-secrets']) ci(n);
});

test('without any Redis (embedded switched off, no external one) the chart refuses to render and says what to set', () => {
  const stderr = renderFails({ redis: { embedded: { enabled: false } } });
  assert.match(
    stderr,
    /redis\.url, redis\.existingSecret, config\.redis-sentinels or config\.redis-cluster-nodes, or keep redis\.embedded\.enabled=true/,
  );
});

test('helm lint and helm lint --strict pass on the chart defaults', () => {
  for (const strict of [[], ['--strict']]) {
    const r = helm(['lint', CHART, ...strict]);
    assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, /1 chart\(s\) linted, 0 chart\(s\) failed/);
  }
});

// ---- every value set renders and validates ----------------------------------------------------

const STANDARD_LABELS = [
  'helm.sh/chart',
  'app.kubernetes.io/name',
  'app.kubernetes.io/instance',
  'app.kubernetes.io/component',
  'app.kubernetes.io/version',
  'app.kubernetes.io/managed-by',
];

for (const file of ciFiles) {
  const name = file.slice(CI_DIR.length + 1);
  test(`ci/${name}: renders, every object validates against the Kubernetes schemas, standard labels`, () => {
    const objs = render(file);
    assert.ok(objs.length >= 5, `only ${objs.length} objects`);
    const seen = new Set<string>();
    for (const o of objs) {
      validateObject(o);
      const key = `${o.kind}/${o.metadata.name}`;
      assert.ok(!seen.has(key), `duplicate ${key}`);
      seen.add(key);
      assert.ok(o.metadata.name.length <= 63, `${key}: name longer than 63`);
      if (o.kind !== 'ServiceMonitor') assert.equal(o.metadata.namespace, NAMESPACE, `${key}: namespace`);
      for (const l of STANDARD_LABELS) assert.ok(o.metadata.labels?.[l], `${key}: label ${l} missing`);
      assert.equal(o.metadata.labels!['app.kubernetes.io/instance'], RELEASE);
      assert.equal(o.metadata.labels!['app.kubernetes.io/managed-by'], 'Helm');
      assert.equal(o.metadata.labels!['app.kubernetes.io/name'], 'cyclone-sse');
      const tpl = o.spec?.template;
      if (tpl) {
        for (const l of STANDARD_LABELS) assert.ok(tpl.metadata.labels?.[l], `${key}: pod label ${l} missing`);
        // selectors are immutable: name + instance + component only
        assert.deepEqual(Object.keys(o.spec.selector.matchLabels).sort(), [
          'app.kubernetes.io/component',
          'app.kubernetes.io/instance',
          'app.kubernetes.io/name',
        ]);
        for (const [k, v] of Object.entries(o.spec.selector.matchLabels)) assert.equal(tpl.metadata.labels[k], v);
      }
    }
    // Services select pods that exist in the release
    for (const svc of all(objs, 'Service')) {
      const sel = svc.spec.selector as Record<string, string>;
      const target = objs.find((o) => o.spec?.template && Object.entries(sel).every(([k, v]) => o.spec.template.metadata.labels[k] === v));
      assert.ok(target, `Service ${svc.metadata.name} selects no workload`);
      for (const p of svc.spec.ports) {
        const names = target.spec.template.spec.containers.flatMap((c: any) => c.ports.map((x: any) => x.name));
        assert.ok(names.includes(p.targetPort), `Service ${svc.metadata.name} targets unknown port ${p.targetPort}`);
      }
    }
  });
}

test('one object kind per template file (templates/*.yaml), everything switched on', () => {
  const r = helm([
    'template',
    RELEASE,
    CHART,
    '--namespace',
    NAMESPACE,
    '-f',
    ci('gateway'),
    '--set',
    'ingress.enabled=true,ingress.controller=none,ingress.publish=true',
  ]);
  assert.equal(r.status, 0, r.stderr);
  const kinds = new Map<string, Set<string>>();
  for (const doc of r.stdout.split(/^---$/m)) {
    const source = /^# Source: cyclone-sse\/(templates\/\S+)$/m.exec(doc)?.[1];
    const kind = /^kind: (\S+)$/m.exec(doc)?.[1];
    if (!source || !kind) continue;
    if (!kinds.has(source)) kinds.set(source, new Set());
    kinds.get(source)!.add(kind);
  }
  assert.ok(kinds.size >= 20, `only ${kinds.size} template files rendered`);
  for (const [file, k] of kinds) assert.equal(k.size, 1, `${file} renders ${[...k].join(', ')}`);
});

test('a long release name keeps every name within 63 characters', () => {
  const r = helm(['template', 'a'.repeat(53), CHART, '-f', ci('production'), '-f', ci('embedded-redis'), '--set', 'redis.url=']);
  assert.equal(r.status, 0, r.stderr);
  for (const d of parseAllDocuments(r.stdout)) {
    const o = d.toJS() as Obj | null;
    if (o) assert.ok(o.metadata.name.length <= 63, `${o.kind} ${o.metadata.name}`);
  }
});

// ---- schema -----------------------------------------------------------------------------------

const SCHEMA_VIOLATIONS: [string, object][] = [
  ['unknown top-level key', { replicaCount: 3 }],
  ['unknown nested key (typo)', { edge: { replicas: 3 } }],
  ['unknown key in redis', { redis: { host: 'redis' } }],
  ['unknown key in embedded redis', { redis: { embedded: { persistance: { enabled: true } } } }],
  ['wrong type', { edge: { replicaCount: 'two' } }],
  ['wrong type (boolean)', { ingress: { enabled: 'yes' } }],
  ['negative drain', { edge: { drainSeconds: -1 } }],
  ['bad enum', { amqp: { exchangeType: 'headers' } }],
  ['bad service type', { edge: { service: { type: 'Ingress' } } }],
  ['bad redis URL scheme', { redis: { url: 'http://redis:6379' } }],
  ['unknown application option', { edge: { config: { heartbeet: 10 } } }],
  ['publisher-only option on the edge', { edge: { config: { 'max-body': 1000 } } }],
  ['edge-only option in the shared config', { config: { heartbeat: 10 } }],
  ['chart-managed option in config', { config: { 'redis-url': 'redis://x:6379' } }],
  ['chart-managed option in edge.config', { edge: { config: { port: 9999 } } }],
  ['application option with the wrong type', { edge: { config: { heartbeat: 'often' } } }],
  ['application option out of range', { publisher: { config: { 'max-batch': 0 } } }],
  ['bad PDB value', { edge: { pdb: { maxUnavailable: 'half' } } }],
  ['bad image digest', { image: { digest: 'latest' } }],
];

for (const [what, values] of SCHEMA_VIOLATIONS) {
  test(`schema rejects: ${what}`, () => {
    const stderr = renderFails(REDIS, values);
    assert.match(stderr, /schema/i, stderr);
  });
}

const CROSS_FIELD: [string, object, RegExp][] = [
  [
    'two external Redis sources',
    { redis: { url: 'redis://a:6379', existingSecret: 's' } },
    /redis\.url or redis\.existingSecret, not both/,
  ],
  ['amqp url and existingSecret', { ...REDIS, amqp: { url: 'amqp://a', existingSecret: 's' } }, /amqp\.url or amqp\.existingSecret/],
  ['auth secret twice', { ...REDIS, auth: { httpSecret: 'x', existingSecret: 's' } }, /auth\.httpSecret or auth\.existingSecret/],
  [
    'grace period not above drain + preStop',
    { ...REDIS, edge: { drainSeconds: 30, preStopSleepSeconds: 5, terminationGracePeriodSeconds: 35 } },
    /must be greater than/,
  ],
  [
    'HPA without a metric',
    { ...REDIS, publisher: { autoscaling: { enabled: true, targetCPUUtilizationPercentage: null } } },
    /needs a metric/,
  ],
  ['HPA min above max', { ...REDIS, edge: { autoscaling: { enabled: true, minReplicas: 5, maxReplicas: 2 } } }, /minReplicas/],
  ['same port twice', { ...REDIS, ports: { http: 9090, internal: 9090 } }, /must differ/],
  [
    'edge HTTPS port equal to the HTTP port',
    { ...REDIS, ports: { https: 8888 }, edge: { tls: { enabled: true, existingSecret: 't' } } },
    /must differ/,
  ],
  ['edge TLS without a certificate Secret', { ...REDIS, edge: { tls: { enabled: true } } }, /edge\.tls\.existingSecret/],
  [
    'edge memory limit too small for the memory budget',
    { ...REDIS, edge: { resources: { limits: { memory: '128Mi' } } } },
    /leaves no room for connections/,
  ],
  ['unreadable memory limit', { ...REDIS, edge: { resources: { limits: { memory: 'lots' } } } }, /cannot read the quantity "lots"/],
  [
    'edge HPA on a share of an unlimited max-connections',
    { ...REDIS, edge: { resources: { limits: null }, autoscaling: { enabled: true } } },
    /set edge\.autoscaling\.targetConnectionsPerPod/,
  ],
];
for (const [what, values, message] of CROSS_FIELD) {
  test(`template refuses: ${what}`, () => {
    assert.match(renderFails(values), message);
  });
}

const schema = JSON.parse(readFileSync(join(CHART, 'values.schema.json'), 'utf8'));

test('values.schema.json: every object of the chart itself is closed (additionalProperties: false)', () => {
  const open: string[] = [];
  const walk = (s: any, path: string) => {
    if (s.type === 'object' && s.properties) {
      if (s.additionalProperties !== false) open.push(path || '<root>');
      for (const [k, v] of Object.entries(s.properties)) walk(v, path ? `${path}.${k}` : k);
    }
  };
  walk(schema, '');
  assert.deepEqual(open, []);
});

/** Leaf paths of values.yaml (objects with no keys and arrays are leaves). */
function leaves(v: unknown, path = ''): string[] {
  if (v && typeof v === 'object' && !Array.isArray(v) && Object.keys(v).length > 0) {
    return Object.entries(v).flatMap(([k, x]) => leaves(x, path ? `${path}.${k}` : k));
  }
  return [path];
}
const valuesText = readFileSync(join(CHART, 'values.yaml'), 'utf8');
const values = parseYaml(valuesText);

test('values.schema.json and values.yaml describe the same keys', () => {
  const missing: string[] = [];
  const check = (s: any, v: any, path: string) => {
    if (!s.properties) return;
    for (const k of Object.keys(s.properties)) {
      if (k === 'global' && path === '') continue;
      if (v === null || typeof v !== 'object' || !(k in v)) missing.push(`${path}${k} (in schema, not in values.yaml)`);
      else check(s.properties[k], v[k], `${path}${k}.`);
    }
    if (s.additionalProperties === false && v && typeof v === 'object') {
      for (const k of Object.keys(v)) if (!(k in s.properties)) missing.push(`${path}${k} (in values.yaml, not in schema)`);
    }
  };
  check(schema, values, '');
  // option maps are open-ended in values.yaml ({}), closed in the schema; probe timings may be
  // added (initialDelaySeconds, ...): skip the properties of both
  assert.deepEqual(
    missing.filter((m) => !/(^|\.)(config|probes\.\w+)\./.test(m)),
    [],
  );
});

// ---- option maps in the schema follow the option table ----------------------------------------

/** Options the chart sets from structured values, or secrets (Secret → extraEnv); not accepted in config maps. */
const MANAGED = new Set([
  'redis-sentinel-password', // a secret: CYCLONE_SSE_REDIS_SENTINEL_PASSWORD from a Secret (docs/kubernetes.md#sentinel)
  'port',
  'listen',
  'metrics-port',
  'metrics-listen',
  'drain-seconds',
  'redis-url',
  'redis-prefix',
  'http-secret',
  'amqp-url',
  'amqp-exchange',
  'amqp-exchange-type',
  'amqp-queue',
  'amqp-prefetch',
  'amqp-dead-letter-exchange',
  'config-file', // the chart passes --config itself
  // HTTPS on the edges: edge.tls (a port in the container and the Service, the certificate from a Secret)
  'use-ssl',
  'ssl-port',
  'ssl-listen',
  'ssl-cert',
  'ssl-key',
]);

function optionMapSchema(pred: (f: readonly string[]) => boolean, description: string) {
  const properties: Record<string, unknown> = {};
  for (const [name, s] of Object.entries(OPTIONS as Record<string, OptionSpec>)) {
    if (s.seed || MANAGED.has(name) || !pred(s.for)) continue;
    const o: Record<string, unknown> = { description: s.describe };
    if (s.type === 'number') {
      o.type = 'number';
      if (s.min !== undefined) o.minimum = s.min;
      if (s.max !== undefined) o.maximum = s.max;
    } else if (s.type === 'string') {
      o.type = 'string';
      if (s.choices) o.enum = [...s.choices];
    } else if (s.type === 'boolean') o.type = 'boolean';
    else {
      o.type = 'array';
      o.items = { type: 'string' };
    }
    properties[name] = o;
  }
  return { type: 'object', additionalProperties: false, properties, description };
}
const OPTION_MAPS: [string[], (f: readonly string[]) => boolean, string][] = [
  [['config'], (f) => f.includes('edge') && f.includes('publisher'), 'options shared by edge and publisher'],
  [['edge', 'config'], (f) => f.includes('edge'), 'edge options (names as in --help)'],
  [['publisher', 'config'], (f) => f.includes('publisher'), 'publisher options (names as in --help)'],
];

test('values.schema.json option maps match the option table (UPDATE_CHART_DOCS=1 regenerates)', () => {
  const next = structuredClone(schema);
  for (const [path, pred, description] of OPTION_MAPS) {
    let parent = next;
    for (const p of path.slice(0, -1)) parent = parent.properties[p];
    parent.properties[path.at(-1)!] = optionMapSchema(pred, description);
  }
  if (UPDATE) writeFileSync(join(CHART, 'values.schema.json'), JSON.stringify(next, null, 2) + '\n');
  else assert.deepEqual(schema, next, 'option maps are stale: run UPDATE_CHART_DOCS=1 node scripts/test.mjs chart');
});

// ---- README values table ----------------------------------------------------------------------

function valuesTable(): string {
  const rows: string[] = ['| Name | Description | Default |', '| --- | --- | --- |'];
  const lines = valuesText.split('\n');
  for (const line of lines) {
    const section = /^\s*## @section (.*)$/.exec(line);
    if (section) {
      rows.push(`| **${(section[1] ?? '').trim()}** | | |`);
      continue;
    }
    const m = /^\s*## @param (\S+) (.*)$/.exec(line);
    if (!m) continue;
    const [, key = '', description = ''] = m;
    let v: any = values;
    for (const k of key.split('.')) v = v?.[k];
    const def = JSON.stringify(v) ?? '';
    const cell = (s: string) => s.replace(/\|/g, '\\|');
    rows.push(`| \`${key}\` | ${cell(description.trim())} | \`${cell(def)}\` |`);
  }
  return rows.join('\n');
}

test('every values.yaml key is documented by an @param that exists', () => {
  const params = [...valuesText.matchAll(/## @param (\S+)/g)].map(([, name = '']) => name);
  for (const p of params) {
    let v: any = values;
    for (const k of p.split('.')) {
      assert.ok(v && typeof v === 'object' && k in v, `@param ${p} is not a key of values.yaml`);
      v = v[k];
    }
  }
  const undocumented = leaves(values).filter((l) => !params.some((p) => l === p || l.startsWith(`${p}.`)));
  assert.deepEqual(undocumented, []);
});

test('chart README carries the values table generated from values.yaml (UPDATE_CHART_DOCS=1 regenerates)', () => {
  const file = join(CHART, 'README.md');
  const text = readFileSync(file, 'utf8');
  const start = '<!-- values:start (generated from values.yaml by deploy/helm/test/chart.test.ts) -->';
  const end = '<!-- values:end -->';
  assert.ok(text.includes(start) && text.includes(end), 'README.md lacks the values markers');
  const next = text.slice(0, text.indexOf(start) + start.length) + '\n' + valuesTable() + '\n' + text.slice(text.indexOf(end));
  if (UPDATE) writeFileSync(file, next);
  else assert.equal(text, next, 'values table is stale: run UPDATE_CHART_DOCS=1 node scripts/test.mjs chart');
});

// ---- defaults (no values at all: embedded Redis) -----------------------------------------------

const defaults = render(ci('default'));
const edge = find(defaults, 'Deployment', edgeName);
const publisher = find(defaults, 'Deployment', publisherName);
/** An external Redis URL instead of the embedded one. */
const external = render(ci('external-redis'));

test('defaults: the objects of an install without values', () => {
  const kinds = defaults.map((o) => `${o.kind}/${o.metadata.name}`).sort();
  assert.deepEqual(kinds, [
    `ConfigMap/${fullName}`,
    `Deployment/${edgeName}`,
    `Deployment/${publisherName}`,
    `NetworkPolicy/${edgeName}`,
    `NetworkPolicy/${publisherName}`,
    `NetworkPolicy/${redisName}`,
    `Pod/${fullName}-test-connection`,
    `PodDisruptionBudget/${edgeName}`,
    `PodDisruptionBudget/${publisherName}`,
    `Secret/${redisName}`,
    `Service/${edgeName}`,
    `Service/${publisherName}`,
    `Service/${redisName}`,
    `Service/${redisName}-headless`,
    `ServiceAccount/${fullName}`,
    `StatefulSet/${redisName}`,
  ]);
  // an external Redis replaces the embedded one and its Secret
  assert.deepEqual(
    external.filter((o) => o.metadata.name.startsWith(redisName)).map((o) => o.kind),
    [],
  );
  assert.equal(edge.spec.replicas, 2);
  assert.equal(publisher.spec.replicas, 2);
});

test('probes hit the internal port: liveness /livez, readiness /readyz, startup /livez', () => {
  for (const d of [edge, publisher]) {
    const c = container(d);
    const internal = c.ports.find((p: any) => p.name === 'internal');
    assert.equal(internal.containerPort, 9090);
    assert.equal(c.ports.find((p: any) => p.name === 'http').containerPort, 8888);
    assert.deepEqual(c.livenessProbe.httpGet, { path: '/livez', port: 'internal' });
    assert.deepEqual(c.readinessProbe.httpGet, { path: '/readyz', port: 'internal' });
    assert.deepEqual(c.startupProbe.httpGet, { path: '/livez', port: 'internal' });
    assert.ok(c.startupProbe.failureThreshold * c.startupProbe.periodSeconds >= 30);
  }
  // the public Services never expose the internal port
  for (const n of [edgeName, publisherName]) {
    const svc = find(defaults, 'Service', n);
    assert.deepEqual(
      svc.spec.ports.map((p: any) => p.targetPort),
      ['http'],
    );
  }
});

test('secure defaults: non-root 10001, read-only root, no privilege escalation, drop ALL, seccomp', () => {
  for (const o of [edge, publisher, find(defaults, 'Pod', `${RELEASE}-cyclone-sse-test-connection`)]) {
    const pod = o.kind === 'Pod' ? o.spec : o.spec.template.spec;
    assert.equal(pod.securityContext.runAsNonRoot, true);
    assert.equal(pod.securityContext.runAsUser, 10001);
    assert.deepEqual(pod.securityContext.seccompProfile, { type: 'RuntimeDefault' });
    assert.equal(pod.automountServiceAccountToken, false);
    assert.equal(pod.enableServiceLinks, false);
    for (const c of pod.containers) {
      const sc = c.securityContext;
      assert.equal(sc.runAsNonRoot, true);
      assert.equal(sc.runAsUser, 10001);
      assert.equal(sc.readOnlyRootFilesystem, true);
      assert.equal(sc.allowPrivilegeEscalation, false);
      assert.deepEqual(sc.capabilities.drop, ['ALL']);
      assert.deepEqual(sc.seccompProfile, { type: 'RuntimeDefault' });
      assert.ok(
        c.volumeMounts.some((m: any) => m.mountPath === '/tmp'),
        'writable /tmp',
      );
      assert.ok(c.resources?.requests, 'resource requests');
    }
  }
});

test('SSE-aware rollout: preStop sleep, grace period above drain + preStop, maxUnavailable 0', () => {
  for (const [d, drain] of [
    [edge, 20],
    [publisher, 5],
  ] as const) {
    const c = container(d);
    const sleep = c.lifecycle.preStop.exec.command;
    assert.equal(sleep[0], 'sleep');
    const preStop = Number(sleep[1]);
    assert.ok(preStop >= 1);
    const config = configOf(defaults, c.name);
    assert.equal(config['drain-seconds'], drain);
    assert.ok(d.spec.template.spec.terminationGracePeriodSeconds > drain + preStop);
    assert.equal(d.spec.strategy.type, 'RollingUpdate');
    assert.equal(d.spec.strategy.rollingUpdate.maxUnavailable, 0);
    assert.ok(d.spec.strategy.rollingUpdate.maxSurge >= 1);
  }
  const custom = find(render(REDIS, { edge: { drainSeconds: 60, preStopSleepSeconds: 0 } }), 'Deployment', edgeName);
  assert.equal(container(custom).lifecycle, undefined, 'preStopSleepSeconds 0 removes the hook');
  assert.equal(custom.spec.template.spec.terminationGracePeriodSeconds, 70);
});

test('commands: node runs the edge and publisher binaries from the image, with --config', () => {
  const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
  assert.match(dockerfile, /^WORKDIR \/app$/m);
  for (const [d, pkg, bin] of [
    [edge, 'edge', 'cyclone-sse-edge'],
    [publisher, 'publisher', 'cyclone-sse-publisher'],
  ] as const) {
    const c = container(d);
    assert.equal(c.command, undefined, 'command would replace the tini ENTRYPOINT');
    const manifest = JSON.parse(readFileSync(join(ROOT, 'packages', pkg, 'package.json'), 'utf8'));
    const entry = `/app/packages/${pkg}/${manifest.bin[bin]}`;
    // the component's V8 flags on the command line (the bin shim's shebang is not used by `node x.js`)
    const flags = V8_FLAGS_BY_COMPONENT[pkg];
    assert.deepEqual(c.args.slice(0, 4 + flags.length), ['node', ...flags, entry, '--config', `/etc/cyclone-sse/${pkg}.json`]);
    assert.equal(c.image, 'ghcr.io/cyclone-sse/cyclone-sse:0.1.0');
    // the config file is mounted where --config points
    const mount = c.volumeMounts.find((m: any) => m.name === 'config');
    assert.equal(mount.mountPath, '/etc/cyclone-sse');
    const vol = d.spec.template.spec.volumes.find((v: any) => v.name === 'config');
    assert.equal(vol.configMap.name, `${RELEASE}-cyclone-sse`);
    assert.deepEqual(vol.configMap.items, [{ key: `${pkg}.json`, path: `${pkg}.json` }]);
  }
  const chart = parseYaml(readFileSync(join(CHART, 'Chart.yaml'), 'utf8'));
  const rootManifest = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
  assert.equal(chart.appVersion, rootManifest.version, 'Chart appVersion follows the package version (image tag)');
});

test('config: the ConfigMap JSON carries listen addresses, ports, Redis URL and prefix', () => {
  for (const comp of ['edge', 'publisher']) {
    for (const config of [configOf(defaults, comp), configOf(render(ci('sentinel')), comp)]) {
      // every key is an option of that binary (the binaries are strict about unknown keys)
      for (const k of Object.keys(config)) {
        const spec = (OPTIONS as Record<string, OptionSpec>)[k];
        assert.ok(spec && spec.for.includes(comp as 'edge'), `${comp}.json: ${k} is not a ${comp} option`);
      }
    }
    const config = configOf(external, comp);
    assert.equal(config['redis-url'], 'redis://redis.example.svc:6379/0');
    assert.equal(configOf(defaults, comp)['redis-url'], undefined, 'the embedded Redis URL carries a password: env from the Secret');
    assert.equal(config['redis-prefix'], 'cyclone-sse');
    assert.equal(config.listen, '0.0.0.0');
    assert.equal(config['metrics-listen'], '0.0.0.0', 'kubelet probes reach the internal port');
    assert.equal(config.port, 8888);
    assert.equal(config['metrics-port'], 9090);
    // every key is an option of that binary (the binaries are strict about unknown keys)
    for (const k of Object.keys(config)) {
      const spec = (OPTIONS as Record<string, OptionSpec>)[k];
      assert.ok(spec && spec.for.includes(comp as 'edge'), `${comp}.json: ${k} is not a ${comp} option`);
    }
  }
  const tuned = render(ci('production'));
  const e = configOf(tuned, 'edge');
  const p = configOf(tuned, 'publisher');
  assert.equal(e.heartbeat, 20);
  assert.equal(e['history-size'], 5000);
  assert.deepEqual(e['cors-origins'], ['https://app.example.com']);
  assert.equal(e['redis-prefix'], 'sse-prod');
  assert.equal(p['max-body'], 65536);
  assert.equal(p.heartbeat, undefined);
  assert.equal(e['max-body'], undefined);
  // a key file named by an option arrives through extraVolumes / extraVolumeMounts
  const d = find(tuned, 'Deployment', edgeName);
  assert.ok(d.spec.template.spec.volumes.some((v: any) => v.name === 'jwt-keys' && v.secret.secretName === 'sse-jwt-public-keys'));
  assert.ok(e['subscriber-jwt-key'].startsWith(container(d).volumeMounts.find((m: any) => m.name === 'jwt-keys').mountPath + '/'));
});

test('the all-in-one CLI accepts the rendered config files', async () => {
  const { parseConfig } = await import('@cyclone-sse/common');
  const dir = mkdtempSync(join(scratch, 'cfg-'));
  for (const file of ciFiles) {
    for (const comp of ['edge', 'publisher'] as const) {
      const cm = render(file).find((o) => o.kind === 'ConfigMap');
      const text = cm?.data?.[`${comp}.json`];
      if (!text) continue;
      const path = join(dir, `${comp}.json`);
      writeFileSync(path, text);
      const out = await parseConfig(comp, ['--config', path], {});
      assert.equal(out.kind, 'config', `${file} ${comp}: ${JSON.stringify(out)}`);
    }
  }
});

test('secrets reach the pods only as env secretKeyRefs', () => {
  const objs = render(ci('existing-secrets'));
  assert.equal(all(objs, 'Secret').length, 0, 'the chart creates no Secret here');
  const e = find(objs, 'Deployment', edgeName);
  const p = find(objs, 'Deployment', publisherName);
  const ref = (name: string, key: string) => ({ secretKeyRef: { name, key } });
  assert.deepEqual(envOf(e).CYCLONE_SSE_REDIS_URL.valueFrom, ref('cyclone-sse-redis', 'url'));
  assert.deepEqual(envOf(p).CYCLONE_SSE_REDIS_URL.valueFrom, ref('cyclone-sse-redis', 'url'));
  assert.deepEqual(envOf(p).CYCLONE_SSE_HTTP_SECRET.valueFrom, ref('cyclone-sse-publish', 'token'));
  assert.deepEqual(envOf(p).CYCLONE_SSE_AMQP_URL.valueFrom, ref('cyclone-sse-amqp', 'amqp-url'));
  assert.equal(envOf(e).CYCLONE_SSE_HTTP_SECRET, undefined, 'edges do not get the publish secret');
  assert.equal(configOf(objs, 'edge')['redis-url'], undefined, 'URL from the Secret, not the ConfigMap');
  assert.equal(e.spec.template.spec.serviceAccountName, 'cyclone-sse');
  assert.equal(all(objs, 'ServiceAccount').length, 0);
  assert.match(container(e).image, /^ghcr\.io\/cyclone-sse\/cyclone-sse@sha256:[0-9a-f]{64}$/);
  const testPod = find(objs, 'Pod', `${RELEASE}-cyclone-sse-test-connection`);
  assert.deepEqual(testPod.spec.containers[0].env[0].valueFrom, ref('cyclone-sse-publish', 'token'));

  const amqp = render(ci('amqp'));
  const secret = find(amqp, 'Secret', `${RELEASE}-cyclone-sse`);
  assert.equal(Buffer.from(secret.data['amqp-url'], 'base64').toString(), 'amqp://cyclone:secret@rabbitmq.example.svc:5672/%2F');
  const ap = find(amqp, 'Deployment', publisherName);
  assert.deepEqual(envOf(ap).CYCLONE_SSE_AMQP_URL.valueFrom, ref(`${RELEASE}-cyclone-sse`, 'amqp-url'));
  assert.equal(envOf(ap).CYCLONE_SSE_HTTP_SECRET, undefined, 'no secret configured: publishing is open');
  const pc = configOf(amqp, 'publisher');
  assert.equal(pc['amqp-exchange'], 'sse-cyclone-server');
  assert.equal(pc['amqp-exchange-type'], 'direct');
  assert.equal(pc['amqp-prefetch'], 200);
  assert.equal(pc['redis-ingest-pattern'], '*');
  assert.equal(pc['amqp-url'], undefined, 'the AMQP URL never lands in the ConfigMap');
  assert.ok(!JSON.stringify(amqp.filter((o) => o.kind !== 'Secret')).includes('cyclone:secret'), 'credentials only in the Secret');

  const prod = render(ci('production'));
  const pp = find(prod, 'Deployment', publisherName);
  assert.deepEqual(envOf(pp).CYCLONE_SSE_HTTP_SECRET.valueFrom, ref(`${RELEASE}-cyclone-sse`, 'http-secret'));
  assert.ok(pp.spec.template.metadata.annotations['checksum/secret']);
});

test('checksum/config changes with the component config and only then', () => {
  const sum = (objs: Obj[], n: string) => find(objs, 'Deployment', n).spec.template.metadata.annotations['checksum/config'];
  const base = render(REDIS);
  const again = render(REDIS);
  assert.match(sum(base, edgeName), /^[0-9a-f]{64}$/);
  assert.equal(sum(base, edgeName), sum(again, edgeName), 'stable across renders');
  const edgeTuned = render(REDIS, { edge: { config: { heartbeat: 5 } } });
  assert.notEqual(sum(edgeTuned, edgeName), sum(base, edgeName));
  assert.equal(sum(edgeTuned, publisherName), sum(base, publisherName), 'publisher config unchanged');
  const prefixed = render(REDIS, { redis: { prefix: 'other' } });
  assert.notEqual(sum(prefixed, edgeName), sum(base, edgeName));
  assert.notEqual(sum(prefixed, publisherName), sum(base, publisherName));
  const url = render({ redis: { url: 'redis://elsewhere:6379/1' } });
  assert.notEqual(sum(url, publisherName), sum(base, publisherName));
  const secretSum = (objs: Obj[]) => find(objs, 'Deployment', publisherName).spec.template.metadata.annotations['checksum/secret'];
  assert.notEqual(secretSum(render(REDIS, { auth: { httpSecret: 'a' } })), secretSum(render(REDIS, { auth: { httpSecret: 'b' } })));
});

test('PDB on by default for both components, maxUnavailable 1; can be switched off or set to minAvailable', () => {
  for (const n of [edgeName, publisherName]) {
    const pdb = find(defaults, 'PodDisruptionBudget', n);
    assert.equal(pdb.spec.maxUnavailable, 1);
    assert.deepEqual(pdb.spec.selector.matchLabels, find(defaults, 'Deployment', n).spec.selector.matchLabels);
  }
  const off = render(REDIS, { edge: { pdb: { enabled: false } } });
  assert.equal(all(off, 'PodDisruptionBudget').length, 1);
  const min = find(render(REDIS, { edge: { pdb: { minAvailable: '50%' } } }), 'PodDisruptionBudget', edgeName);
  assert.deepEqual(min.spec, { minAvailable: '50%', selector: min.spec.selector });
});

test('HPA per component: CPU plus connections per pod on the edge; replicas start at minReplicas', () => {
  const objs = render(ci('production'));
  const hpa = find(objs, 'HorizontalPodAutoscaler', edgeName);
  assert.deepEqual(hpa.spec.scaleTargetRef, { apiVersion: 'apps/v1', kind: 'Deployment', name: edgeName });
  assert.equal(hpa.spec.minReplicas, 3);
  assert.equal(hpa.spec.maxReplicas, 30);
  const cpu = hpa.spec.metrics.find((m: any) => m.type === 'Resource');
  assert.deepEqual(cpu.resource, { name: 'cpu', target: { type: 'Utilization', averageUtilization: 60 } });
  const conns = hpa.spec.metrics.find((m: any) => m.type === 'Pods');
  assert.equal(conns.pods.metric.name, 'cyclone_sse_edge_connections');
  assert.deepEqual(conns.pods.target, { type: 'AverageValue', averageValue: '20000' });
  assert.ok(hpa.spec.behavior.scaleDown.stabilizationWindowSeconds >= 300, 'scale edges down slowly');
  // Without a cluster to look up (helm template) the count is minReplicas; on a helm upgrade the
  // live Deployment's count is kept (kube-install.test.ts), never dropped to the default 1.
  assert.equal(find(objs, 'Deployment', edgeName).spec.replicas, 3);
  assert.equal(find(objs, 'Deployment', publisherName).spec.replicas, 2);
  assert.ok(find(objs, 'HorizontalPodAutoscaler', publisherName));
  assert.equal(all(defaults, 'HorizontalPodAutoscaler').length, 0);
});

test('ServiceMonitor scrapes the internal port through a metrics-only Service', () => {
  const objs = render(ci('production'));
  for (const n of [edgeName, publisherName]) {
    const sm = find(objs, 'ServiceMonitor', n);
    assert.equal(sm.apiVersion, 'monitoring.coreos.com/v1');
    assert.equal(sm.metadata.labels!.release, 'kube-prometheus-stack');
    assert.deepEqual(sm.spec.namespaceSelector.matchNames, [NAMESPACE]);
    assert.equal(sm.spec.endpoints[0].port, 'metrics');
    assert.equal(sm.spec.endpoints[0].path, '/metrics');
    const selected = all(objs, 'Service').filter((s) =>
      Object.entries(sm.spec.selector.matchLabels).every(([k, v]) => s.metadata.labels![k] === v),
    );
    assert.equal(selected.length, 1, `${n}: ServiceMonitor selects ${selected.length} Services`);
    const [service] = selected;
    assert.ok(service);
    assert.equal(service.metadata.name, `${n}-metrics`);
    assert.deepEqual(
      service.spec.ports.map((p: any) => [p.name, p.targetPort]),
      [['metrics', 'internal']],
    );
  }
});

test('NetworkPolicy: public port, publish peers, metrics peers, restricted egress', () => {
  const objs = render(ci('production'));
  const e = find(objs, 'NetworkPolicy', edgeName);
  const p = find(objs, 'NetworkPolicy', publisherName);
  assert.deepEqual(e.spec.podSelector.matchLabels, find(objs, 'Deployment', edgeName).spec.selector.matchLabels);
  assert.deepEqual(e.spec.policyTypes, ['Ingress', 'Egress']);
  assert.equal(e.spec.ingress[0].from, undefined, 'subscribers from anywhere');
  assert.equal(p.spec.ingress[0].from.length, 3, 'publish peers + the helm test pod');
  assert.equal(p.spec.ingress[1].ports[0].port, 'internal');
  assert.ok(p.spec.ingress[1].from[0].namespaceSelector);
  assert.ok(
    e.spec.egress.some((r: any) => r.ports?.some((x: any) => x.port === 53)),
    'DNS allowed',
  );
  assert.ok(
    e.spec.egress.some((r: any) => r.ports?.some((x: any) => x.port === 6379)),
    'Redis allowed',
  );

  const embedded = render(ci('embedded-redis'), { networkPolicy: { enabled: true } });
  const r = find(embedded, 'NetworkPolicy', `${RELEASE}-cyclone-sse-redis`);
  const exprs = r.spec.ingress[0].from[0].podSelector.matchExpressions;
  assert.deepEqual(exprs.find((x: any) => x.key === 'app.kubernetes.io/component').values, ['edge', 'publisher']);
  assert.equal(all(defaults, 'NetworkPolicy').length, 3, 'on by default: edge, publisher, embedded Redis');
  assert.equal(all(render({ networkPolicy: { enabled: false } }), 'NetworkPolicy').length, 0);
  assert.equal(all(external, 'NetworkPolicy').length, 2, 'no Redis policy without the embedded Redis');
});

test('embedded Redis: one StatefulSet with noeviction, persistence choices, wired into the config', () => {
  const objs = render(ci('embedded-redis'));
  const sts = find(objs, 'StatefulSet', `${RELEASE}-cyclone-sse-redis`);
  assert.equal(sts.spec.replicas, 1);
  const c = container(sts);
  assert.match(c.image, /^docker\.io\/library\/redis:7/);
  const args: string[] = c.args;
  const arg = (flag: string) => args[args.indexOf(flag) + 1];
  assert.equal(arg('--maxmemory-policy'), 'noeviction');
  assert.equal(arg('--maxmemory'), '128mb');
  assert.equal(arg('--appendonly'), 'yes');
  assert.equal(arg('--save'), '');
  assert.equal(sts.spec.volumeClaimTemplates[0].spec.resources.requests.storage, '2Gi');
  assert.equal(c.securityContext.runAsNonRoot, true);
  assert.equal(c.securityContext.readOnlyRootFilesystem, true);
  const svc = find(objs, 'Service', `${RELEASE}-cyclone-sse-redis`);
  for (const d of [edgeName, publisherName]) {
    const env = envOf(find(objs, 'Deployment', d));
    assert.equal(env.CYCLONE_SSE_REDIS_URL.value, `redis://:$(REDIS_PASSWORD)@${svc.metadata.name}:6379/0`);
  }
  assert.equal(find(objs, 'Service', `${RELEASE}-cyclone-sse-redis-headless`).spec.clusterIP, 'None');

  const ephemeral = render({});
  const e = container(find(ephemeral, 'StatefulSet', `${RELEASE}-cyclone-sse-redis`));
  assert.equal(e.args[e.args.indexOf('--appendonly') + 1], 'no');
  assert.equal(find(ephemeral, 'StatefulSet', `${RELEASE}-cyclone-sse-redis`).spec.volumeClaimTemplates, undefined);
  assert.equal(all(external, 'StatefulSet').length, 0);
});

test('helm test pod: hardened, subscribes on the edge expecting text/event-stream, publishes', () => {
  const pod = find(render(ci('production')), 'Pod', `${RELEASE}-cyclone-sse-test-connection`);
  assert.equal(pod.metadata.annotations!['helm.sh/hook'], 'test');
  assert.equal(pod.spec.restartPolicy, 'Never');
  assert.ok(pod.spec.activeDeadlineSeconds > 0);
  const c = pod.spec.containers[0];
  const script: string = c.args.join('\n');
  assert.ok(script.includes(`http://${edgeName}:80`));
  assert.ok(script.includes('/?channels='));
  assert.match(script, /curl [^\n]*-N/);
  assert.ok(script.includes("'^content-type: text/event-stream'"));
  assert.ok(script.includes(`http://${publisherName}:80`));
  assert.ok(script.includes('/publish'));
  assert.ok(script.includes('Authorization: Bearer'));
  assert.ok(c.volumeMounts.some((m: any) => m.mountPath === '/tmp'));
  const noPublisher = render(REDIS, { publisher: { enabled: false } });
  const sub = find(noPublisher, 'Pod', `${RELEASE}-cyclone-sse-test-connection`).spec.containers[0].args.join('\n');
  assert.ok(!sub.includes('/publish'));
  assert.ok(!noPublisher.some((o) => o.metadata.name === publisherName));
  assert.equal(all(render(REDIS, { tests: { enabled: false } }), 'Pod').length, 0);
});

test('helm test script runs against a local all-in-one (sh + curl, as in the test image)', { timeout: 60_000 }, async (t) => {
  const curl = spawnSync('curl', ['--version']);
  if (curl.status !== 0) return t.skip('curl not installed');
  const { spawn } = await import('node:child_process');
  const proc = spawn(
    process.execPath,
    [join(ROOT, 'packages/all-in-one/dist/main.js'), '--port', '0', '--metrics-port', '-1', '--http-secret', 's3cret'],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  try {
    const port = await new Promise<number>((resolve, reject) => {
      let buf = '';
      proc.stdout.on('data', (d) => {
        buf += d;
        const m = /running on http:\/\/127\.0\.0\.1:(\d+)/.exec(buf);
        if (m) resolve(Number(m[1]));
      });
      proc.on('exit', (code) => reject(new Error(`all-in-one exited ${code}`)));
      setTimeout(() => reject(new Error(`no port in ${buf}`)), 15_000).unref();
    });
    const pod = find(render(REDIS, { auth: { httpSecret: 's3cret' } }), 'Pod', `${RELEASE}-cyclone-sse-test-connection`);
    const tmp = mkdtempSync(join(scratch, 'pod-'));
    const script = (pod.spec.containers[0].args[0] as string)
      .replaceAll(`http://${edgeName}:80`, `http://127.0.0.1:${port}`)
      .replaceAll(`http://${publisherName}:80`, `http://127.0.0.1:${port}`)
      .replaceAll('/tmp/', `${tmp}/`)
      .replace('--max-time 15', '--max-time 5');
    const r = spawnSync('sh', ['-ec', script], {
      encoding: 'utf8',
      env: { ...process.env, CYCLONE_SSE_HTTP_SECRET: 's3cret' },
      timeout: 30_000,
    });
    assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, /^OK$/m);
    // and with the wrong secret the publish fails, so the test fails
    const bad = spawnSync('sh', ['-ec', script], {
      encoding: 'utf8',
      env: { ...process.env, CYCLONE_SSE_HTTP_SECRET: 'wrong' },
      timeout: 30_000,
    });
    assert.notEqual(bad.status, 0);
  } finally {
    proc.kill('SIGTERM');
  }
});

// ---- NOTES.txt --------------------------------------------------------------------------------

test('NOTES.txt: port-forward, curl -N subscribe and publish commands', () => {
  const notes = renderNotes(ci('production'));
  assert.ok(notes.includes(`kubectl -n ${NAMESPACE} port-forward svc/${edgeName} 8888:80`));
  assert.ok(notes.includes("curl -N 'http://127.0.0.1:8888/?channels=base'"));
  assert.ok(notes.includes(`kubectl -n ${NAMESPACE} port-forward svc/${publisherName} 8889:80`));
  assert.ok(notes.includes('http://127.0.0.1:8889/publish'));
  assert.ok(notes.includes('Authorization: Bearer $SECRET'));
  assert.ok(notes.includes('https://sse.example.com/?channels=base'));
  assert.ok(notes.includes(`helm test ${RELEASE}`));
  const open = renderNotes(ci('default'));
  assert.match(open, /publishing needs no credential, so the chart keeps it inside the cluster/);
  assert.ok(open.includes(`http://${publisherName}.${NAMESPACE}.svc/publish`));
});
