// Routing into the cluster: the edges' Ingress and the publishers' Ingress carry the SSE settings
// of the controller `ingress.controller` names (the ingress-nginx ones are the directives of
// docs/nginx.md, which the nginx system tests run), and the Gateway API HTTPRoute sends `/` to
// the edges with no request timeout and the publish path to the publishers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { OPTIONS } from '@cyclone-sse/common';
import {
  PUBLISH_SECRET,
  ROOT,
  all,
  ci,
  edgeName,
  find,
  fullName,
  publisherName,
  render,
  renderFails,
  validateObject,
  type Obj,
} from './helm-kit.js';

const ingressValues = (controller: string, extra: object = {}) => ({
  ...PUBLISH_SECRET,
  ingress: { enabled: true, controller, className: 'sse', publish: true, hosts: [{ host: 'sse.example.com' }], ...extra },
});

/** Both Ingress objects of a render: [edges, publish]. */
function ingresses(objs: Obj[]): [Obj, Obj | undefined] {
  return [find(objs, 'Ingress', fullName), objs.find((o) => o.kind === 'Ingress' && o.metadata.name === `${fullName}-publish`)];
}

/** The annotations each controller gets, for the edges and for the publish route (default values). */
const EXPECTED: Record<string, [Record<string, string>, Record<string, string>]> = {
  'ingress-nginx': [
    {
      'nginx.ingress.kubernetes.io/proxy-buffering': 'off',
      'nginx.ingress.kubernetes.io/proxy-read-timeout': '3600',
      'nginx.ingress.kubernetes.io/proxy-send-timeout': '3600',
      'nginx.ingress.kubernetes.io/proxy-http-version': '1.1',
      'nginx.ingress.kubernetes.io/proxy-connect-timeout': '2',
      'nginx.ingress.kubernetes.io/proxy-next-upstream': 'error timeout http_502 http_503',
    },
    {
      'nginx.ingress.kubernetes.io/proxy-body-size': '2m',
      'nginx.ingress.kubernetes.io/proxy-http-version': '1.1',
      'nginx.ingress.kubernetes.io/proxy-next-upstream': 'error timeout',
    },
  ],
  'f5-nginx': [
    { 'nginx.org/proxy-buffering': 'False', 'nginx.org/proxy-read-timeout': '3600s', 'nginx.org/proxy-send-timeout': '3600s' },
    { 'nginx.org/client-max-body-size': '2m' },
  ],
  haproxy: [{ 'haproxy.org/timeout-server': '3600s' }, {}],
  contour: [{ 'projectcontour.io/response-timeout': 'infinity' }, {}],
  traefik: [{}, {}],
  none: [{}, {}],
};

for (const [controller, [edgeAnnotations, publishAnnotations]] of Object.entries(EXPECTED)) {
  test(`ingress.controller=${controller}: the edges' and the publish Ingress carry its SSE annotations`, () => {
    const objs = render(ingressValues(controller));
    const [edge, publish] = ingresses(objs);
    assert.ok(publish);
    for (const i of [edge, publish]) validateObject(i);
    assert.deepEqual(edge.metadata.annotations ?? {}, edgeAnnotations);
    assert.deepEqual(publish.metadata.annotations ?? {}, publishAnnotations);
  });
}

test('ingress: edges on /, publishers on publishPath, same hosts, class and TLS; backends are the release Services', () => {
  const objs = render(ci('production'));
  const [edge, publish] = ingresses(objs);
  assert.ok(publish);
  for (const [ing, path, service] of [
    [edge, '/', edgeName],
    [publish, '/publish', publisherName],
  ] as const) {
    assert.equal(ing.spec.ingressClassName, 'nginx');
    assert.deepEqual(ing.spec.tls, [{ secretName: 'sse-example-com-tls', hosts: ['sse.example.com'] }]);
    assert.equal(ing.spec.rules.length, 1);
    const rule = ing.spec.rules[0];
    assert.equal(rule.host, 'sse.example.com');
    assert.deepEqual(rule.http.paths, [{ path, pathType: 'Prefix', backend: { service: { name: service, port: { name: 'http' } } } }]);
    const svc = find(objs, 'Service', service);
    assert.ok(svc.spec.ports.some((p: any) => p.name === 'http'));
  }
  // publish off: only the edges' Ingress
  const closed = render(ci('production'), { ingress: { publish: false } });
  assert.deepEqual(
    all(closed, 'Ingress').map((i) => i.metadata.name),
    [fullName],
  );
});

test('ingress: extra annotations override the controller ones; publishAnnotations only on the publish route; body size follows max-body', () => {
  const objs = render(
    ingressValues('ingress-nginx', {
      readTimeoutSeconds: 7200,
      annotations: { 'nginx.ingress.kubernetes.io/proxy-connect-timeout': '5', 'example.com/team': 'sse' },
      publishAnnotations: { 'nginx.ingress.kubernetes.io/limit-rps': '100' },
    }),
    { publisher: { config: { 'max-body': 5 * 1024 * 1024 } } },
  );
  const [edge, publish] = ingresses(objs);
  assert.ok(publish);
  const e = edge.metadata.annotations!;
  assert.equal(e['nginx.ingress.kubernetes.io/proxy-read-timeout'], '7200');
  assert.equal(e['nginx.ingress.kubernetes.io/proxy-connect-timeout'], '5');
  assert.equal(e['example.com/team'], 'sse');
  assert.equal(e['nginx.ingress.kubernetes.io/limit-rps'], undefined);
  const p = publish.metadata.annotations!;
  assert.equal(p['nginx.ingress.kubernetes.io/limit-rps'], '100');
  assert.equal(p['example.com/team'], 'sse');
  assert.equal(p['nginx.ingress.kubernetes.io/proxy-body-size'], '6m', 'above a 5 MiB max-body');
  // the chart's idea of the default max-body is the option's
  assert.equal(OPTIONS['max-body'].default, 1024 * 1024);
});

test('ingress-nginx annotations are the directives of docs/nginx.md (the tested reference configuration)', () => {
  const doc = readFileSync(join(ROOT, 'docs/nginx.md'), 'utf8');
  const location = (name: string) => {
    const start = doc.indexOf(`location ${name} {`);
    assert.ok(start >= 0, `docs/nginx.md has no location ${name}`);
    return doc.slice(start, doc.indexOf('\n  }', start));
  };
  const directive = (block: string, name: string) => new RegExp(`^\\s*${name} ([^;]+);`, 'm').exec(block)?.[1];
  const [edge, publish] = EXPECTED['ingress-nginx']!;
  const edges = location('/');
  assert.equal(directive(edges, 'proxy_buffering'), edge['nginx.ingress.kubernetes.io/proxy-buffering']);
  assert.equal(directive(edges, 'proxy_http_version'), edge['nginx.ingress.kubernetes.io/proxy-http-version']);
  assert.equal(directive(edges, 'proxy_next_upstream'), edge['nginx.ingress.kubernetes.io/proxy-next-upstream']);
  assert.equal(directive(edges, 'proxy_connect_timeout'), `${edge['nginx.ingress.kubernetes.io/proxy-connect-timeout']}s`);
  assert.equal(directive(edges, 'proxy_read_timeout'), '1h');
  const pub = location('= /publish');
  assert.equal(directive(pub, 'proxy_next_upstream'), publish['nginx.ingress.kubernetes.io/proxy-next-upstream']);
  assert.equal(directive(doc, 'client_max_body_size'), publish['nginx.ingress.kubernetes.io/proxy-body-size']);
});

test('ingress.enabled without a controller is refused with the list of choices', () => {
  assert.match(
    renderFails({ ingress: { enabled: true } }),
    /ingress\.enabled needs ingress\.controller \(ingress-nginx, f5-nginx, traefik, haproxy, contour or none\)/,
  );
  assert.match(renderFails({ ingress: { enabled: true, controller: 'nginx' } }), /schema/i);
});

test('HTTPRoute: publish path to the publishers, / to the edges with timeouts.request 0s', () => {
  const objs = render(ci('gateway'));
  const route = find(objs, 'HTTPRoute', fullName);
  validateObject(route);
  assert.equal(route.apiVersion, 'gateway.networking.k8s.io/v1');
  assert.deepEqual(route.spec.parentRefs, [{ name: 'public', namespace: 'gateways', sectionName: 'https' }]);
  assert.deepEqual(route.spec.hostnames, ['sse.example.com']);
  assert.deepEqual(route.spec.rules, [
    {
      matches: [{ path: { type: 'PathPrefix', value: '/publish' } }],
      backendRefs: [{ name: publisherName, port: 80 }],
    },
    {
      matches: [{ path: { type: 'PathPrefix', value: '/' } }],
      backendRefs: [{ name: edgeName, port: 80 }],
      timeouts: { request: '0s' },
    },
  ]);
  // backendRefs name Services of the release on one of their ports
  for (const rule of route.spec.rules) {
    const [ref] = rule.backendRefs;
    assert.ok(find(objs, 'Service', ref.name).spec.ports.some((p: any) => p.port === ref.port));
  }
  // publish off (the default): only the edges' rule
  const edgesOnly = find(render({ httpRoute: { enabled: true, parentRefs: [{ name: 'gw' }] } }), 'HTTPRoute', fullName);
  assert.equal(edgesOnly.spec.rules.length, 1);
  assert.deepEqual(edgesOnly.spec.rules[0].timeouts, { request: '0s' });
  assert.equal(edgesOnly.spec.hostnames, undefined);
  assert.match(renderFails({ httpRoute: { enabled: true } }), /httpRoute\.enabled needs httpRoute\.parentRefs/);
  assert.equal(all(render(ci('default')), 'HTTPRoute').length, 0);
});
