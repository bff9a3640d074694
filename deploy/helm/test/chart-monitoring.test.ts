// The chart's PrometheusRule and Grafana dashboard: valid objects, PromQL that parses (the
// Prometheus project's own grammar, @prometheus-io/lezer-promql), and no series name that the
// hub does not export — the names are scraped from a real edge and a real publisher (Redis, and
// RabbitMQ for the AMQP input) after a publish, not copied from the code.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parser } from '@prometheus-io/lezer-promql';
import {
  createRabbitVhost,
  ensureRabbit,
  httpRequest,
  publishJson,
  spawnNode,
  testRedisUrl,
  waitFor,
  type NodeProcess,
  type RabbitVhost,
} from '@cyclone-sse/testkit';
import { CHART, NAMESPACE, all, ci, find, fullName, render, validateObject, type Obj } from './helm-kit.js';

/**
 * Series the rules may use that the hub does not export: Prometheus' own `up`, and
 * kube-state-metrics' pod readiness (kube-prometheus-stack ships it).
 */
const EXTERNAL_SERIES = new Set(['up', 'kube_pod_status_ready']);

/** Metric names in a PromQL expression; fails on a syntax error. */
function seriesNames(expr: string): string[] {
  const tree = parser.parse(expr);
  const names: string[] = [];
  const errors: number[] = [];
  tree.iterate({
    enter(node) {
      if (node.type.isError) errors.push(node.from);
      if (node.name === 'VectorSelector') {
        const id = node.node.getChild('Identifier');
        if (id) names.push(expr.slice(id.from, id.to));
      }
    },
  });
  assert.deepEqual(errors, [], `PromQL syntax error at ${errors[0]} in: ${expr}`);
  return names;
}

test('the PromQL check itself: names are found, a syntax error fails', () => {
  assert.deepEqual(seriesNames('sum by (le) (rate(a_bucket{x="y"}[5m])) > 0.5 * b or on() up == 0'), ['a_bucket', 'b', 'up']);
  assert.throws(() => seriesNames('sum(rate(a[5m])'), /syntax error/);
});

// ---- the series a running hub exports ---------------------------------------------------------

let exported = new Set<string>();
const procs: NodeProcess[] = [];
let vhost: RabbitVhost | undefined;

function namesOf(exposition: string): string[] {
  return exposition
    .split('\n')
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(l)![0]);
}

before(async () => {
  await ensureRabbit();
  vhost = await createRabbitVhost('chart-monitoring');
  const prefix = `chart-monitoring-${process.pid}-${randomBytes(3).toString('hex')}`;
  const redis = ['--redis-url', testRedisUrl(), '--redis-prefix', prefix];
  const edge = await spawnNode('edge', redis);
  procs.push(edge);
  const publisher = await spawnNode('publisher', [...redis, '--amqp-url', vhost.url]);
  procs.push(publisher);
  const metrics = async (p: NodeProcess) => (await httpRequest(`${p.metricsBase}/metrics`)).text;
  await waitFor(async () => /^cyclone_sse_publisher_amqp_connected 1$/m.test(await metrics(publisher)), 20_000, 'publisher consuming AMQP');
  await waitFor(async () => (await httpRequest(`${edge.metricsBase}/readyz`)).status === 200, 20_000, 'edge ready');
  // one publish, so that the series with labels (publish duration by source) exist
  assert.equal((await publishJson(publisher.base, { channel: 'chart-monitoring', data: 'x' })).status, 200);
  exported = new Set([...namesOf(await metrics(edge)), ...namesOf(await metrics(publisher))]);
});

after(async () => {
  for (const p of procs) await p.stop();
  await vhost?.delete();
});

test('the scrape found the hub: edge, publisher, Redis, AMQP and histogram series', () => {
  for (const n of [
    'cyclone_sse_edge_connections',
    'cyclone_sse_edge_delivery_lag_seconds_bucket',
    'cyclone_sse_edge_redis_connected',
    'cyclone_sse_publisher_publish_duration_seconds_bucket',
    'cyclone_sse_publisher_amqp_dead_letters_total',
    'process_resident_memory_bytes',
  ])
    assert.ok(exported.has(n), `${n} not scraped`);
});

function assertExported(names: string[], where: string): void {
  const unknown = names.filter((n) => !exported.has(n) && !EXTERNAL_SERIES.has(n));
  assert.deepEqual(unknown, [], `${where} uses series no edge or publisher exports`);
}

// ---- PrometheusRule ---------------------------------------------------------------------------

const ruleValues = { metrics: { serviceMonitor: { enabled: true }, prometheusRule: { enabled: true } } };

function rules(objs: Obj[]): any[] {
  const pr = find(objs, 'PrometheusRule', fullName);
  return pr.spec.groups.flatMap((g: any) => g.rules);
}

test('PrometheusRule: off by default; valid; every rule named, with severity, summary, description and a runbook', () => {
  assert.equal(all(render(ci('default')), 'PrometheusRule').length, 0);
  const objs = render(ci('gateway'));
  const pr = find(objs, 'PrometheusRule', fullName);
  validateObject(pr);
  assert.equal(pr.metadata.labels!.release, 'kube-prometheus-stack');
  assert.equal(pr.spec.groups.length, 1);
  const names = new Set<string>();
  for (const r of rules(objs)) {
    assert.match(r.alert, /^CycloneSse[A-Z][A-Za-z]+$/);
    assert.ok(!names.has(r.alert), `duplicate ${r.alert}`);
    names.add(r.alert);
    assert.equal(typeof r.expr, 'string');
    assert.ok(['critical', 'warning', 'info'].includes(r.labels.severity), `${r.alert}: severity ${r.labels.severity}`);
    for (const a of ['summary', 'description', 'runbook_url']) assert.ok(r.annotations[a], `${r.alert}: no ${a}`);
    if (r.for !== undefined) assert.match(r.for, /^[0-9]+[smh]$/);
  }
  for (const required of [
    'CycloneSseEdgeNotReady',
    'CycloneSseDeliveryLagHigh',
    'CycloneSseGapLost',
    'CycloneSseResetsHigh',
    'CycloneSseSlowDisconnects',
    'CycloneSseRedisDisconnected',
    'CycloneSseAmqpDeadLetters',
  ])
    assert.ok(names.has(required), `no ${required}`);
});

test('PrometheusRule: every expression parses and uses only series the hub exports (or up / kube-state-metrics)', () => {
  for (const values of [ci('gateway'), ruleValues]) {
    for (const r of rules(render(values))) assertExported(seriesNames(r.expr), r.alert);
  }
});

test('PrometheusRule: selects this release by namespace and the metrics Services; thresholds and max-connections from the values', () => {
  const objs = render(ruleValues, { metrics: { prometheusRule: { deliveryLagSeconds: 2.5, slowDisconnectRatio: 0.1 } } });
  const byName = Object.fromEntries(rules(objs).map((r) => [r.alert, r]));
  const services = all(objs, 'Service')
    .map((s) => s.metadata.name)
    .filter((n) => n.endsWith('-metrics'));
  assert.equal(services.length, 2);
  const sel = /service=~"([^"]+)"/.exec(byName.CycloneSseTargetDown.expr)![1]!;
  for (const s of services) assert.match(s, new RegExp(`^(?:${sel})$`));
  assert.ok(byName.CycloneSseTargetDown.expr.includes(`namespace="${NAMESPACE}"`));
  assert.match(byName.CycloneSseDeliveryLagHigh.expr, /> 2\.5$/);
  assert.match(byName.CycloneSseSlowDisconnects.expr, /> 0\.1 \* sum/);
  assert.match(byName.CycloneSseEdgeNearConnectionLimit.expr, /> 0\.9 \* 16384$/);
  // edge pods of this release only (Deployment pod names: <deployment>-<hash>-<suffix>)
  assert.match(byName.CycloneSseEdgeNotReady.expr, new RegExp(`pod=~"${fullName}-edge-\\[a-z0-9\\]\\+-\\[a-z0-9\\]\\+"`));
  // no AMQP input configured: no AMQP alerts
  assert.equal(byName.CycloneSseAmqpDeadLetters, undefined);
  // a custom selector replaces the default
  const custom = rules(render(ruleValues, { metrics: { prometheusRule: { selector: 'job="sse"' } } }));
  assert.ok(custom.find((r) => r.alert === 'CycloneSseTargetDown').expr.startsWith('up{job="sse"}'));
  // unlimited max-connections: no near-limit alert
  const unlimited = rules(render(ruleValues, { edge: { resources: { limits: null } } }));
  assert.equal(
    unlimited.find((r) => r.alert === 'CycloneSseEdgeNearConnectionLimit'),
    undefined,
  );
});

// ---- Grafana dashboard ------------------------------------------------------------------------

test('dashboard: off by default; a ConfigMap for the Grafana sidecar carrying files/grafana-dashboard.json', () => {
  assert.equal(all(render(ci('default')), 'ConfigMap').filter((c) => c.metadata.name.endsWith('-dashboard')).length, 0);
  const cm = find(render(ci('gateway')), 'ConfigMap', `${fullName}-dashboard`);
  validateObject(cm);
  assert.equal(cm.metadata.labels!.grafana_dashboard, '1');
  assert.equal(cm.metadata.annotations!.grafana_folder, 'cyclone-sse');
  const file = readFileSync(join(CHART, 'files/grafana-dashboard.json'), 'utf8');
  assert.deepEqual(JSON.parse(cm.data['cyclone-sse.json']), JSON.parse(file));
});

test('dashboard: every panel query parses and uses only series the hub exports; it covers connections, deliveries, lag, resets, Redis, AMQP', () => {
  const dashboard = JSON.parse(readFileSync(join(CHART, 'files/grafana-dashboard.json'), 'utf8'));
  assert.equal(dashboard.uid, 'cyclone-sse');
  const used = new Set<string>();
  const queries: string[] = [
    ...dashboard.panels.flatMap((p: any) => (p.targets ?? []).map((t: any) => t.expr)),
    ...dashboard.templating.list
      .filter((v: any) => v.type === 'query')
      .map((v: any) => v.definition.replace(/^label_values\((\w+).*$/, '$1')),
  ];
  for (const q of queries) {
    // Grafana's variables: a range and a label value, as Grafana substitutes them
    const expr = q.replaceAll('$__rate_interval', '5m');
    const names = seriesNames(expr);
    assertExported(names, `dashboard query ${q}`);
    for (const n of names) used.add(n);
  }
  for (const n of [
    'cyclone_sse_edge_connections',
    'cyclone_sse_edge_deliveries_total',
    'cyclone_sse_edge_delivery_lag_seconds_bucket',
    'cyclone_sse_edge_resets_total',
    'cyclone_sse_edge_redis_connected',
    'cyclone_sse_publisher_amqp_dead_letters_total',
  ])
    assert.ok(used.has(n), `no panel shows ${n}`);
  // panel ids unique, every panel placed on the grid
  const ids = dashboard.panels.map((p: any) => p.id);
  assert.equal(new Set(ids).size, ids.length);
  for (const p of dashboard.panels) assert.ok(p.gridPos && p.gridPos.w > 0 && p.gridPos.h > 0, `${p.title}: gridPos`);
});
