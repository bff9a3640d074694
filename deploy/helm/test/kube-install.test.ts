// The chart against a real Kubernetes API server (deploy/helm/test/kube-harness.ts: etcd,
// kube-apiserver, kube-controller-manager, kube-scheduler and kwok fake nodes on loopback), in
// namespaces that enforce the `restricted` Pod Security Standard:
//   - every ci/*.yaml value set, rendered by helm, is accepted by the API server (server-side dry
//     run: validation, defaulting and admission, nothing stored), with no warning;
//   - `helm install --wait` with no values at all (embedded Redis with a generated password,
//     NetworkPolicies, PodDisruptionBudgets) brings the Deployments and the Redis StatefulSet to
//     their replica counts with every pod Running and Ready (as kwok reports them) and the
//     Services get ready endpoints;
//   - a `helm upgrade` that changes the edge config rolls the edges one surge pod at a time,
//     never below two available edges, the next old edge removed only minReadySeconds after its
//     replacement became ready (the timeline is printed as diagnostics; docs/kubernetes.md#rollouts-and-drain);
//     the generated Redis password stays the same across upgrades;
//   - `helm upgrade --set edge.autoscaling.enabled=true` never leaves fewer ready edges than before;
//   - `helm uninstall` removes every object again;
//   - ci/production-values.yaml (HPA, ServiceMonitor and PrometheusRule with the
//     prometheus-operator CRDs, NetworkPolicy, Ingress) installs, upgrades and uninstalls, and the
//     edges stay at the HPA's minReplicas.
// kwok plays the kubelet: probes and images never run, and a terminating pod is deleted at once
// (no preStop sleep, no drain), so what a drain takes in time is not observed here.
//
// Opt-in (CYCLONE_KUBE_TESTS=1): the first run builds Kubernetes from the Go module proxy
// (scripts/kube-tools.sh, cached afterwards), and the cluster test takes minutes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { eventually, startKubeCluster, type KubeCluster } from './kube-harness.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const CHART = join(ROOT, 'deploy/helm/cyclone-sse');
const CI_DIR = join(CHART, 'ci');
const ENABLED = process.env.CYCLONE_KUBE_TESTS === '1';
const RELEASE = 'rel';
const FULL = `${RELEASE}-cyclone-sse`;
const EDGE = `${FULL}-edge`;
const PUBLISHER = `${FULL}-publisher`;
const REDIS = `${FULL}-redis`;
const EDGE_SELECTOR = 'app.kubernetes.io%2Fcomponent%3Dedge';

function helmBinary(): string {
  return execFileSync('bash', [join(ROOT, 'scripts/ensure-helm.sh')], {
    cwd: ROOT,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    timeout: 20 * 60_000,
  })
    .trim()
    .split('\n')
    .pop()!;
}

/** The Gateway API standard CRDs (HTTPRoute for ci/gateway-values.yaml), from the Go module cache. */
function gatewayApiCrds(): string {
  return execFileSync('bash', [join(ROOT, 'scripts/kube-tools.sh'), '--gateway-api-crds'], {
    cwd: ROOT,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    timeout: 10 * 60_000,
  })
    .trim()
    .split('\n')
    .pop()!;
}

function makeHelm(cluster: KubeCluster, scratch: string) {
  const bin = helmBinary();
  const env = {
    ...process.env,
    HELM_CACHE_HOME: join(scratch, 'helm-cache'),
    HELM_CONFIG_HOME: join(scratch, 'helm-config'),
    HELM_DATA_HOME: join(scratch, 'helm-data'),
    KUBECONFIG: cluster.kubeconfig,
  };
  // Asynchronous, so the test can watch the cluster while helm waits.
  return (args: string[], timeoutMs = 60_000) =>
    new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
      execFile(bin, args, { encoding: 'utf8', env, timeout: timeoutMs, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
        const status = err ? (typeof err.code === 'number' ? err.code : null) : 0;
        resolve({ status, stdout, stderr: err && status === null ? `${stderr}\n${err.message}` : stderr });
      });
    });
}

async function createNamespace(cluster: KubeCluster, name: string): Promise<void> {
  const r = await cluster.api('POST', '/api/v1/namespaces', {
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: {
      name,
      labels: {
        'pod-security.kubernetes.io/enforce': 'restricted',
        'pod-security.kubernetes.io/warn': 'restricted',
        'pod-security.kubernetes.io/audit': 'restricted',
      },
    },
  });
  assert.equal(r.status, 201, JSON.stringify(r.body));
}

const list = async (cluster: KubeCluster, path: string): Promise<any[]> => {
  const r = await cluster.api('GET', path);
  assert.equal(r.status, 200, `GET ${path}: ${JSON.stringify(r.body)}`);
  return r.body.items as any[];
};

const isReady = (p: any): boolean => p.status?.conditions?.some((c: any) => c.type === 'Ready' && c.status === 'True') ?? false;

/**
 * Polls the edge pods and the edge Deployment's status every 100 ms while `during` runs and
 * returns what changed, with times in ms since the start.
 */
async function recordEdges(
  cluster: KubeCluster,
  ns: string,
  during: () => Promise<void>,
): Promise<{
  events: { ms: number; what: string; pod?: string }[];
  minAvailable: number;
  minReady: number;
  minSpecReplicas: number;
  maxPods: number;
}> {
  const t0 = Date.now();
  const events: { ms: number; what: string; pod?: string }[] = [];
  const seen = new Map<string, { ready: boolean; terminating: boolean }>();
  let lastStatus = '';
  let minAvailable = Infinity;
  let minReady = Infinity;
  let minSpecReplicas = Infinity;
  let maxPods = 0;
  let watching = true;
  const poll = async (): Promise<void> => {
    const [pods, dep] = await Promise.all([
      list(cluster, `/api/v1/namespaces/${ns}/pods?labelSelector=${EDGE_SELECTOR}`),
      cluster.api('GET', `/apis/apps/v1/namespaces/${ns}/deployments/${EDGE}`),
    ]);
    const ms = Date.now() - t0;
    const st = dep.body.status ?? {};
    minAvailable = Math.min(minAvailable, st.availableReplicas ?? 0);
    minReady = Math.min(minReady, st.readyReplicas ?? 0);
    minSpecReplicas = Math.min(minSpecReplicas, dep.body.spec?.replicas ?? 0);
    maxPods = Math.max(maxPods, pods.length);
    const status = `deployment replicas=${st.replicas ?? 0} updated=${st.updatedReplicas ?? 0} ready=${st.readyReplicas ?? 0} available=${st.availableReplicas ?? 0}`;
    if (status !== lastStatus) events.push({ ms, what: status });
    lastStatus = status;
    const names = new Set<string>();
    for (const p of pods) {
      const name = p.metadata.name as string;
      names.add(name);
      const before = seen.get(name);
      const now = { ready: isReady(p), terminating: Boolean(p.metadata.deletionTimestamp) };
      if (!before) events.push({ ms, what: `created (rs ${p.metadata.labels['pod-template-hash']})`, pod: name });
      if (now.ready && !before?.ready) events.push({ ms, what: 'ready', pod: name });
      if (now.terminating && !before?.terminating) events.push({ ms, what: 'terminating', pod: name });
      seen.set(name, now);
    }
    for (const name of [...seen.keys()])
      if (!names.has(name)) {
        events.push({ ms, what: 'gone', pod: name });
        seen.delete(name);
      }
  };
  await poll();
  const watcher = (async () => {
    while (watching) {
      await poll();
      await sleep(100);
    }
  })();
  try {
    await during();
  } finally {
    watching = false;
    await watcher;
  }
  return { events, minAvailable, minReady, minSpecReplicas, maxPods };
}

const redisPassword = async (cluster: KubeCluster, ns: string): Promise<string> => {
  const r = await cluster.api('GET', `/api/v1/namespaces/${ns}/secrets/${REDIS}`);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return Buffer.from(r.body.data['redis-password'], 'base64').toString();
};

test(
  'the chart on a real Kubernetes API server (etcd, kube-apiserver, controllers, scheduler, kwok nodes)',
  {
    skip: ENABLED ? false : 'set CYCLONE_KUBE_TESTS=1 (builds Kubernetes from the Go module proxy once; see scripts/kube-tools.sh)',
    timeout: 20 * 60_000,
  },
  async (t) => {
    const scratch = mkdtempSync(join(tmpdir(), 'cyclone-sse-kube-test-'));
    t.after(() => rmSync(scratch, { recursive: true, force: true }));
    const cluster = await startKubeCluster({ keepDir: process.env.CYCLONE_SSE_KUBE_KEEP === '1' });
    t.after(() => cluster.stop());
    t.diagnostic(`cluster ready in ${cluster.startupMs} ms (${cluster.server}, logs in ${cluster.dir})`);
    const helm = makeHelm(cluster, scratch);

    const version = await cluster.api('GET', '/version');
    assert.equal(version.status, 200);
    t.diagnostic(`kube-apiserver ${version.body.gitVersion}`);

    // The prometheus-operator CRDs (ServiceMonitor, PrometheusRule) and the Gateway API HTTPRoute,
    // both from Go modules (see kube-tools.sh).
    for (const f of [join(cluster.bin, 'crds'), join(gatewayApiCrds(), 'gateway.networking.k8s.io_httproutes.yaml')]) {
      const crds = cluster.kubectl(['apply', '--server-side', '-f', f]);
      assert.equal(crds.status, 0, crds.stderr);
    }
    for (const crd of [
      'servicemonitors.monitoring.coreos.com',
      'prometheusrules.monitoring.coreos.com',
      'httproutes.gateway.networking.k8s.io',
    ])
      await eventually(
        `the CRD ${crd} to be established`,
        async () => (await cluster.api('GET', `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${crd}`)).body,
        (c: any) => c?.status?.conditions?.some((x: any) => x.type === 'Established' && x.status === 'True'),
        30_000,
      );

    await t.test('every ci/*.yaml value set passes the API server (server-side dry run, restricted namespace), no warnings', async () => {
      await createNamespace(cluster, 'dry-run');
      const files = readdirSync(CI_DIR)
        .filter((f) => f.endsWith('.yaml'))
        .sort();
      assert.ok(files.length >= 5);
      const problems: string[] = [];
      for (const f of files) {
        const rendered = await helm(['template', RELEASE, CHART, '--namespace', 'dry-run', '-f', join(CI_DIR, f)]);
        assert.equal(rendered.status, 0, rendered.stderr);
        const manifest = join(scratch, `${f}.rendered.yaml`);
        writeFileSync(manifest, rendered.stdout);
        const r = cluster.kubectl(['apply', '--dry-run=server', '--namespace', 'dry-run', '-f', manifest]);
        if (r.status !== 0) problems.push(`ci/${f}: rejected:\n${r.stderr}`);
        else if (/warning/i.test(r.stderr)) problems.push(`ci/${f}: warnings:\n${r.stderr}`);
      }
      assert.deepEqual(problems, []);
    });

    await t.test(
      'no values: helm install --wait, a rolling update of the edges, autoscaling turned on, the Redis password kept, helm uninstall',
      async () => {
        const ns = 'sse';
        await createNamespace(cluster, ns);
        const installStart = Date.now();
        const install = await helm(['install', RELEASE, CHART, '--namespace', ns, '--wait', '--timeout', '3m'], 4 * 60_000);
        assert.equal(
          install.status,
          0,
          `${install.stdout}\n${install.stderr}\n--- kube-controller-manager ---\n${cluster.logTail('kube-controller-manager')}`,
        );
        t.diagnostic(`helm install --wait (no values) took ${Date.now() - installStart} ms`);

        const base = `/apis/apps/v1/namespaces/${ns}`;
        const deployments = await list(cluster, `${base}/deployments`);
        assert.deepEqual(deployments.map((d) => d.metadata.name).sort(), [EDGE, PUBLISHER]);
        // helm's --wait looks at the new ReplicaSet's ready pods only: the Deployment's status (and
        // the edge's minReadySeconds before pods count as available) may still be catching up.
        for (const d of deployments) {
          assert.equal(d.spec.replicas, 2, d.metadata.name);
          await eventually(
            `Deployment ${d.metadata.name} to have 2 ready, available, updated replicas`,
            async () => (await cluster.api('GET', `${base}/deployments/${d.metadata.name}`)).body.status,
            (st: any) => st?.readyReplicas === 2 && st.availableReplicas === 2 && st.updatedReplicas === 2 && st.replicas === 2,
            60_000,
          );
        }
        const statefulSets = await list(cluster, `${base}/statefulsets`);
        assert.deepEqual(
          statefulSets.map((s) => [s.metadata.name, s.status.readyReplicas]),
          [[REDIS, 1]],
        );
        const names = async (path: string) => (await list(cluster, path)).map((o) => o.metadata.name).sort();
        assert.deepEqual(await names(`/apis/networking.k8s.io/v1/namespaces/${ns}/networkpolicies`), [EDGE, PUBLISHER, REDIS]);
        assert.deepEqual(await names(`/apis/policy/v1/namespaces/${ns}/poddisruptionbudgets`), [EDGE, PUBLISHER]);
        assert.deepEqual(await names(`/apis/networking.k8s.io/v1/namespaces/${ns}/ingresses`), []);
        const password = await redisPassword(cluster, ns);
        assert.match(password, /^[A-Za-z0-9]{32}$/);

        const pods = await list(cluster, `/api/v1/namespaces/${ns}/pods`);
        assert.equal(pods.length, 5, pods.map((p) => p.metadata.name).join(', '));
        for (const p of pods) {
          assert.equal(p.status.phase, 'Running', p.metadata.name);
          assert.ok(cluster.nodes.includes(p.spec.nodeName), `${p.metadata.name} on ${p.spec.nodeName}`);
          assert.ok(isReady(p), p.metadata.name);
          assert.match(p.status.podIP, /^10\.244\./);
        }

        // Each Service has one ready endpoint per pod it selects (the EndpointSlice controller).
        const services = await list(cluster, `/api/v1/namespaces/${ns}/services`);
        const expected: Record<string, number> = { [EDGE]: 2, [PUBLISHER]: 2, [REDIS]: 1, [`${REDIS}-headless`]: 1 };
        for (const name of Object.keys(expected))
          assert.ok(
            services.some((s) => s.metadata.name === name),
            `no Service ${name}`,
          );
        for (const [name, count] of Object.entries(expected)) {
          await eventually(
            `ready endpoints of Service ${name}`,
            async () =>
              (
                await list(
                  cluster,
                  `/apis/discovery.k8s.io/v1/namespaces/${ns}/endpointslices?labelSelector=kubernetes.io%2Fservice-name%3D${name}`,
                )
              )
                .flatMap((s) => s.endpoints ?? [])
                .filter((e) => e.conditions?.ready).length,
            (n) => n === count,
            30_000,
          );
        }

        // A rolling update (new config -> new checksum annotation -> new ReplicaSet) with the
        // chart's strategy: maxSurge 1, maxUnavailable 0, minReadySeconds = preStop + drain.
        const edgeSpec = (await cluster.api('GET', `${base}/deployments/${EDGE}`)).body.spec;
        assert.deepEqual(edgeSpec.strategy.rollingUpdate, { maxSurge: 1, maxUnavailable: 0 });
        assert.equal(edgeSpec.minReadySeconds, 25);
        const before = (await list(cluster, `${base}/replicasets?labelSelector=${EDGE_SELECTOR}`)).map((r) => r.metadata.name);
        assert.equal(before.length, 1);
        const oldPods = (await list(cluster, `/api/v1/namespaces/${ns}/pods?labelSelector=${EDGE_SELECTOR}`)).map((p) => p.metadata.name);
        let rolled: any[] = [];
        const upgradeStart = Date.now();
        const rollout = await recordEdges(cluster, ns, async () => {
          const upgrade = await helm(
            [
              'upgrade',
              RELEASE,
              CHART,
              '--namespace',
              ns,
              '--reuse-values',
              '--set',
              'edge.config.heartbeat=17',
              '--wait',
              '--timeout',
              '3m',
            ],
            4 * 60_000,
          );
          assert.equal(upgrade.status, 0, `${upgrade.stdout}\n${upgrade.stderr}`);
          t.diagnostic(`helm upgrade --wait (edge rollout) returned after ${Date.now() - upgradeStart} ms`);
          rolled = await eventually(
            'the edge rollout to finish',
            async () => list(cluster, `${base}/replicasets?labelSelector=${EDGE_SELECTOR}`),
            (rs) =>
              rs.length === 2 &&
              rs.every((r) => (before.includes(r.metadata.name) ? r.status.replicas === 0 : r.status.readyReplicas === 2)),
            120_000,
          );
          await eventually(
            'the edge Deployment to settle at 2 available replicas and only new pods',
            async () => ({
              st: (await cluster.api('GET', `${base}/deployments/${EDGE}`)).body.status,
              pods: await list(cluster, `/api/v1/namespaces/${ns}/pods?labelSelector=${EDGE_SELECTOR}`),
            }),
            ({ st, pods: p }) =>
              st.replicas === 2 &&
              st.availableReplicas === 2 &&
              st.updatedReplicas === 2 &&
              p.every((x: any) => !oldPods.includes(x.metadata.name)),
            120_000,
          );
        });
        t.diagnostic('edge rollout timeline (ms since helm upgrade started):');
        for (const e of rollout.events) t.diagnostic(`  ${String(e.ms).padStart(6)}  ${e.pod ? `${e.pod}: ` : ''}${e.what}`);
        assert.equal(rollout.minAvailable, 2, 'an edge became unavailable during the rollout');
        assert.equal(rollout.maxPods, 3, 'maxSurge 1: three edge pods at the peak');
        // The old edges are removed one after the other, each only once its replacement has been
        // ready for minReadySeconds (25 s): so in a real cluster one edge drains at a time.
        const removed = rollout.events.filter((e) => e.pod && oldPods.includes(e.pod) && (e.what === 'terminating' || e.what === 'gone'));
        const firstRemoval = new Map<string, number>();
        for (const e of removed) if (!firstRemoval.has(e.pod!)) firstRemoval.set(e.pod!, e.ms);
        const [removed1 = NaN, removed2 = NaN] = [...firstRemoval.values()].sort((a, b) => a - b);
        assert.equal(firstRemoval.size, 2, JSON.stringify(removed));
        const [ready1 = NaN, ready2 = NaN] = rollout.events
          .filter((e) => e.pod && !oldPods.includes(e.pod) && e.what === 'ready')
          .map((e) => e.ms);
        assert.ok(!Number.isNaN(ready2), JSON.stringify(rollout.events));
        // Polling sees each change up to ~0.1 s late (plus an API round trip), and a condition's
        // lastTransitionTime has whole seconds, so minReadySeconds may end up to 1 s early: 2 s tolerance.
        assert.ok(removed1 - ready1 >= 23_000, `first old edge removed ${removed1 - ready1} ms after the first new one was ready`);
        assert.ok(removed2 - ready2 >= 23_000, `second old edge removed ${removed2 - ready2} ms after the second new one was ready`);
        assert.ok(removed2 - removed1 >= 23_000, `old edges removed ${removed2 - removed1} ms apart`);
        t.diagnostic(
          `new edges ready at ${ready1} and ${ready2} ms; old edges removed at ${removed1} and ${removed2} ms (${removed2 - removed1} ms apart)`,
        );
        const newRs = rolled.find((r) => !before.includes(r.metadata.name));
        assert.ok(newRs);
        assert.equal(await redisPassword(cluster, ns), password, 'helm upgrade kept the generated Redis password');

        // Autoscaling on: the HPA takes over the replica count; the upgrade must not drop the
        // Deployment to the API server's default of 1 on the way.
        const autoscale = await recordEdges(cluster, ns, async () => {
          const upgrade = await helm(
            [
              'upgrade',
              RELEASE,
              CHART,
              '--namespace',
              ns,
              '--reuse-values',
              '--set',
              'edge.autoscaling.enabled=true',
              '--wait',
              '--timeout',
              '2m',
            ],
            3 * 60_000,
          );
          assert.equal(upgrade.status, 0, `${upgrade.stdout}\n${upgrade.stderr}`);
          // Recorded until the HPA controller (15 s sync period) has reconciled the Deployment once.
          await eventually(
            'the edge HPA to have synced',
            async () => (await cluster.api('GET', `/apis/autoscaling/v2/namespaces/${ns}/horizontalpodautoscalers/${EDGE}`)).body,
            (h: any) => h?.status?.currentReplicas === 2 && (h.status.conditions ?? []).some((c: any) => c.type === 'AbleToScale'),
            60_000,
          );
        });
        assert.equal(autoscale.minSpecReplicas, 2, `edge spec.replicas went down: ${JSON.stringify(autoscale.events)}`);
        assert.equal(autoscale.minReady, 2, `fewer ready edges during the upgrade: ${JSON.stringify(autoscale.events)}`);
        assert.equal(autoscale.maxPods, 2, 'no rollout: the pod template did not change');
        assert.equal(await redisPassword(cluster, ns), password, 'the second helm upgrade kept the generated Redis password too');

        const uninstall = await helm(['uninstall', RELEASE, '--namespace', ns, '--wait', '--timeout', '2m'], 3 * 60_000);
        assert.equal(uninstall.status, 0, `${uninstall.stdout}\n${uninstall.stderr}`);
        // Owned objects go through the garbage collector; kwok deletes pods once they are terminating.
        for (const path of [
          `${base}/deployments`,
          `${base}/statefulsets`,
          `${base}/replicasets`,
          `/api/v1/namespaces/${ns}/pods`,
          `/api/v1/namespaces/${ns}/services`,
          `/api/v1/namespaces/${ns}/configmaps?labelSelector=app.kubernetes.io%2Finstance%3D${RELEASE}`,
          `/api/v1/namespaces/${ns}/secrets`,
          `/apis/policy/v1/namespaces/${ns}/poddisruptionbudgets`,
          `/apis/networking.k8s.io/v1/namespaces/${ns}/networkpolicies`,
          `/apis/autoscaling/v2/namespaces/${ns}/horizontalpodautoscalers`,
          `/apis/discovery.k8s.io/v1/namespaces/${ns}/endpointslices`,
        ]) {
          await eventually(
            `${path} to be empty`,
            async () => (await list(cluster, path)).map((o) => o.metadata.name),
            (n) => n.length === 0,
            60_000,
          );
        }
        const sas = (await list(cluster, `/api/v1/namespaces/${ns}/serviceaccounts`)).map((s) => s.metadata.name);
        assert.deepEqual(sas, ['default']);
      },
    );

    await t.test(
      'ci/production-values.yaml: helm install --wait (HPA, ServiceMonitor, PrometheusRule, NetworkPolicy, Ingress), helm upgrade, helm uninstall',
      async () => {
        const ns = 'prod';
        await createNamespace(cluster, ns);
        const values = ['-f', join(CI_DIR, 'production-values.yaml'), '--set', 'metrics.prometheusRule.enabled=true'];
        const install = await helm(['install', RELEASE, CHART, '--namespace', ns, ...values, '--wait', '--timeout', '3m'], 4 * 60_000);
        assert.equal(install.status, 0, `${install.stdout}\n${install.stderr}`);
        const base = `/apis/apps/v1/namespaces/${ns}/deployments`;
        // With autoscaling on, the chart starts the Deployments at minReplicas.
        assert.equal((await cluster.api('GET', `${base}/${EDGE}`)).body.spec.replicas, 3);
        const atMin = async () => {
          for (const [name, min] of [
            [EDGE, 3],
            [PUBLISHER, 2],
          ] as const) {
            await eventually(
              `${name} at the HPA's minReplicas (${min}), all ready`,
              async () => (await cluster.api('GET', `${base}/${name}`)).body,
              // ready, not yet available: the production edges' minReadySeconds is 40 s
              (d: any) => d.spec.replicas === min && d.status?.readyReplicas === min,
              90_000,
            );
          }
        };
        await atMin();
        const names = async (path: string) => (await list(cluster, path)).map((o) => o.metadata.name).sort();
        const both = [EDGE, PUBLISHER];
        assert.deepEqual(await names(`/apis/autoscaling/v2/namespaces/${ns}/horizontalpodautoscalers`), both);
        assert.deepEqual(await names(`/apis/monitoring.coreos.com/v1/namespaces/${ns}/servicemonitors`), both);
        assert.deepEqual(await names(`/apis/monitoring.coreos.com/v1/namespaces/${ns}/prometheusrules`), [FULL]);
        assert.deepEqual(await names(`/apis/networking.k8s.io/v1/namespaces/${ns}/networkpolicies`), both);
        assert.deepEqual(await names(`/apis/networking.k8s.io/v1/namespaces/${ns}/ingresses`), [FULL, `${FULL}-publish`]);
        assert.deepEqual(await names(`/apis/apps/v1/namespaces/${ns}/statefulsets`), [], 'an external Redis: no embedded one');

        // An upgrade (no pod template change) with the HPA in charge keeps the replica count.
        const upgrade = await helm(
          [
            'upgrade',
            RELEASE,
            CHART,
            '--namespace',
            ns,
            '--reuse-values',
            '--set',
            'metrics.prometheusRule.deliveryLagSeconds=2',
            '--wait',
            '--timeout',
            '3m',
          ],
          4 * 60_000,
        );
        assert.equal(upgrade.status, 0, `${upgrade.stdout}\n${upgrade.stderr}`);
        assert.equal((await cluster.api('GET', `${base}/${EDGE}`)).body.spec.replicas, 3);
        await atMin();

        const uninstall = await helm(['uninstall', RELEASE, '--namespace', ns, '--wait', '--timeout', '2m'], 3 * 60_000);
        assert.equal(uninstall.status, 0, `${uninstall.stdout}\n${uninstall.stderr}`);
        for (const path of [
          base,
          `/api/v1/namespaces/${ns}/pods`,
          `/apis/autoscaling/v2/namespaces/${ns}/horizontalpodautoscalers`,
          `/apis/monitoring.coreos.com/v1/namespaces/${ns}/servicemonitors`,
          `/apis/monitoring.coreos.com/v1/namespaces/${ns}/prometheusrules`,
          `/apis/networking.k8s.io/v1/namespaces/${ns}/ingresses`,
        ]) {
          await eventually(
            `${path} to be empty`,
            async () => names(path),
            (n) => n.length === 0,
            60_000,
          );
        }
      },
    );
  },
);
