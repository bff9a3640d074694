// Shared by the chart tests (chart*.test.ts): the pinned helm binary, rendering the chart with
// value files or inline values, finding objects, and validating each against the Kubernetes
// OpenAPI schemas offline (kubernetes-models, @kubernetes-models/*).
//
// helm comes from scripts/ensure-helm.sh (built once from the Go module proxy, then cached).
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml, parseAllDocuments } from 'yaml';
import { ConfigMap, Pod, Secret, Service, ServiceAccount } from 'kubernetes-models/v1';
import { Deployment, StatefulSet } from 'kubernetes-models/apps/v1';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { Ingress, NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1';
import { PrometheusRule, ServiceMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1';
import { HTTPRoute } from '@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1';

export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const CHART = join(ROOT, 'deploy/helm/cyclone-sse');
export const CI_DIR = join(CHART, 'ci');
export const RELEASE = 'rel';
export const NAMESPACE = 'sse';

/** Built once per machine (minutes the first time); its last stdout line is the binary. */
export const HELM = execFileSync('bash', [join(ROOT, 'scripts/ensure-helm.sh')], {
  cwd: ROOT,
  encoding: 'utf8',
  stdio: ['ignore', 'pipe', 'inherit'],
  timeout: 20 * 60_000,
})
  .trim()
  .split('\n')
  .pop()!;

export const scratch = mkdtempSync(join(tmpdir(), 'cyclone-sse-chart-'));
process.on('exit', () => rmSync(scratch, { recursive: true, force: true }));
const helmEnv = {
  ...process.env,
  HELM_CACHE_HOME: join(scratch, 'helm-cache'),
  HELM_CONFIG_HOME: join(scratch, 'helm-config'),
  HELM_DATA_HOME: join(scratch, 'helm-data'),
  KUBECONFIG: join(scratch, 'no-kubeconfig'),
};

export function helm(args: string[]) {
  const r = spawnSync(HELM, args, { encoding: 'utf8', env: helmEnv, timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

let valuesCounter = 0;
function valuesFile(values: unknown): string {
  const file = join(scratch, `values-${++valuesCounter}.json`);
  writeFileSync(file, JSON.stringify(values));
  return file;
}

export type Obj = {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [k: string]: any;
};

function templateArgs(chart: string, sources: (string | object)[]): string[] {
  const args = ['template', RELEASE, chart, '--namespace', NAMESPACE];
  for (const s of sources) args.push('-f', typeof s === 'string' ? s : valuesFile(s));
  return args;
}

/** helm template with ci value files and/or inline values objects; throws with helm's stderr. */
export function render(...sources: (string | object)[]): Obj[] {
  const r = helm(templateArgs(CHART, sources));
  if (r.status !== 0) throw new Error(`helm template failed:\n${r.stderr}`);
  return parseAllDocuments(r.stdout)
    .map((d) => d.toJS() as Obj | null)
    .filter((o): o is Obj => o !== null);
}

/** helm template must fail; returns its stderr. */
export function renderFails(...sources: (string | object)[]): string {
  const r = helm(templateArgs(CHART, sources));
  assert.notEqual(r.status, 0, `helm template should have failed for ${JSON.stringify(sources)}`);
  return r.stderr;
}

export const ciFiles = readdirSync(CI_DIR)
  .filter((f) => f.endsWith('.yaml'))
  .sort()
  .map((f) => join(CI_DIR, f));

export function ci(name: string): string {
  const f = join(CI_DIR, `${name}-values.yaml`);
  assert.ok(existsSync(f), `missing ${f}`);
  return f;
}

/** An external Redis by URL (the embedded one is then not deployed). */
export const REDIS = { redis: { url: 'redis://redis.test.svc:6379/0' } };
/** A publish credential from a Secret. */
export const PUBLISH_SECRET = { auth: { existingSecret: 'sse-publish' } };

export function find(objs: Obj[], kind: string, name: string): Obj {
  const o = objs.find((x) => x.kind === kind && x.metadata.name === name);
  assert.ok(o, `no ${kind} ${name} in ${objs.map((x) => `${x.kind}/${x.metadata.name}`).join(', ')}`);
  return o;
}
export const all = (objs: Obj[], kind: string) => objs.filter((x) => x.kind === kind);
export const fullName = `${RELEASE}-cyclone-sse`;
export const edgeName = `${fullName}-edge`;
export const publisherName = `${fullName}-publisher`;
export const redisName = `${fullName}-redis`;
export const container = (d: Obj) => d.spec.template.spec.containers[0];
export const configOf = (objs: Obj[], component: string) => JSON.parse(find(objs, 'ConfigMap', fullName).data[`${component}.json`]);
export const envOf = (d: Obj) => Object.fromEntries((container(d).env ?? []).map((e: any) => [e.name, e]));

const MODELS: Record<string, new (data: any) => { validate(): void }> = {
  'v1/ConfigMap': ConfigMap,
  'v1/Secret': Secret,
  'v1/Service': Service,
  'v1/ServiceAccount': ServiceAccount,
  'v1/Pod': Pod,
  'apps/v1/Deployment': Deployment,
  'apps/v1/StatefulSet': StatefulSet,
  'autoscaling/v2/HorizontalPodAutoscaler': HorizontalPodAutoscaler,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
  'networking.k8s.io/v1/Ingress': Ingress,
  'networking.k8s.io/v1/NetworkPolicy': NetworkPolicy,
  'monitoring.coreos.com/v1/ServiceMonitor': ServiceMonitor,
  'monitoring.coreos.com/v1/PrometheusRule': PrometheusRule,
  'gateway.networking.k8s.io/v1/HTTPRoute': HTTPRoute,
};

/** Validates one rendered object against the schema of its kind (every kind the chart renders has one). */
export function validateObject(o: Obj): void {
  const Model = MODELS[`${o.apiVersion}/${o.kind}`];
  assert.ok(Model, `no validator for ${o.apiVersion}/${o.kind} (add it to MODELS)`);
  try {
    new Model(o).validate();
  } catch (err) {
    throw new Error(`${o.kind}/${o.metadata.name} does not validate: ${(err as Error).message}`, { cause: err });
  }
}

/** helm template does not render NOTES.txt: render it through a ConfigMap in a copy of the chart. */
export function renderNotes(...sources: (string | object)[]): string {
  const copy = mkdtempSync(join(scratch, 'notes-'));
  cpSync(CHART, copy, { recursive: true });
  const notes = readFileSync(join(copy, 'templates/NOTES.txt'), 'utf8');
  rmSync(join(copy, 'templates/NOTES.txt'));
  writeFileSync(join(copy, 'templates/_zz_notes.tpl'), `{{- define "zz.notes" -}}\n${notes}\n{{- end }}\n`);
  writeFileSync(
    join(copy, 'templates/zz-notes.yaml'),
    'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: zz-notes\ndata:\n  notes: {{ include "zz.notes" . | quote }}\n',
  );
  const r = helm([...templateArgs(copy, sources), '--show-only', 'templates/zz-notes.yaml']);
  assert.equal(r.status, 0, r.stderr);
  return (parseYaml(r.stdout) as Obj).data.notes;
}
