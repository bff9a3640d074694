// The chart against a real Kubernetes API server (deploy/helm/test/kube-harness.ts: etcd,
// kube-apiserver, kube-controller-manager, kube-scheduler and kwok fake nodes on loopback):
//   - every ci/*.yaml value set, rendered by helm, is accepted by the API server in a namespace
//     that enforces the `restricted` Pod Security Standard (server-side dry run: validation,
//     defaulting and admission, nothing stored), with no warning;
//   - `helm install --wait` brings the Deployments and the embedded Redis StatefulSet to their
//     replica counts with every pod Running and Ready (as kwok reports them) on the fake nodes, and
//     the Services get ready endpoints; a `helm upgrade` rolls the edges one surge pod at a time
//     without losing an available edge; `helm uninstall` removes every object again;
//   - ci/production-values.yaml installs (HPA, ServiceMonitor with the prometheus-operator CRDs,
//     NetworkPolicy, Ingress) and the HPA brings the edges to minReplicas.
//
// Opt-in (CYCLONE_SSE_KUBE_TESTS=1): the first run builds Kubernetes from the Go module proxy
// (scripts/kube-tools.sh, cached afterwards), and the cluster test takes minutes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { eventually, startKubeCluster, type KubeCluster } from './kube-harness.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const CHART = join(ROOT, 'deploy/helm/cyclone-sse');
const CI_DIR = join(CHART, 'ci');
const ENABLED = process.env.CYCLONE_SSE_KUBE_TESTS === '1';
const RELEASE = 'rel';

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

test(
  'the chart on a real Kubernetes API server (etcd, kube-apiserver, controllers, scheduler, kwok nodes)',
  {
    skip: ENABLED ? false : 'set CYCLONE_SSE_KUBE_TESTS=1 (builds Kubernetes from the Go module proxy once; see scripts/kube-tools.sh)',
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

    // The prometheus-operator CRDs the chart's ServiceMonitor needs (from the Go module, see kube-tools.sh).
    const crds = cluster.kubectl(['apply', '--server-side', '-f', join(cluster.bin, 'crds')]);
    assert.equal(crds.status, 0, crds.stderr);
    await eventually(
      'the ServiceMonitor CRD to be established',
      async () =>
        (await cluster.api('GET', '/apis/apiextensions.k8s.io/v1/customresourcedefinitions/servicemonitors.monitoring.coreos.com')).body,
      (crd: any) => crd?.status?.conditions?.some((c: any) => c.type === 'Established' && c.status === 'True'),
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
      'helm install --wait: Deployments and the embedded Redis reach their replicas, Ready on the kwok nodes; helm uninstall removes everything',
      async () => {
        const ns = 'sse';
        await createNamespace(cluster, ns);
        const installStart = Date.now();
        const install = await helm(
          ['install', RELEASE, CHART, '--namespace', ns, '--set', 'redis.embedded.enabled=true', '--wait', '--timeout', '3m'],
          4 * 60_000,
        );
        assert.equal(
          install.status,
          0,
          `${install.stdout}\n${install.stderr}\n--- kube-controller-manager ---\n${cluster.logTail('kube-controller-manager')}`,
        );
        t.diagnostic(`helm install --wait took ${Date.now() - installStart} ms`);

        const base = `/apis/apps/v1/namespaces/${ns}`;
        const edge = `${RELEASE}-cyclone-sse-edge`;
        const deployments = await list(cluster, `${base}/deployments`);
        assert.deepEqual(deployments.map((d) => d.metadata.name).sort(), [edge, `${RELEASE}-cyclone-sse-publisher`]);
        // helm's --wait looks at the new ReplicaSet's ready pods only: the Deployment's status (and
        // the edge's minReadySeconds before pods count as available) may still be catching up.
        for (const d of deployments) {
          assert.equal(d.spec.replicas, 2, d.metadata.name);
          await eventually(
            `Deployment ${d.metadata.name} to have 2 ready, available, updated replicas`,
            async () => (await cluster.api('GET', `${base}/deployments/${d.metadata.name}`)).body.status,
            (st: any) => st?.readyReplicas === 2 && st.availableReplicas === 2 && st.updatedReplicas === 2 && st.replicas === 2,
            30_000,
          );
        }
        const statefulSets = await list(cluster, `${base}/statefulsets`);
        assert.deepEqual(
          statefulSets.map((s) => [s.metadata.name, s.status.readyReplicas]),
          [[`${RELEASE}-cyclone-sse-redis`, 1]],
        );

        const pods = await list(cluster, `/api/v1/namespaces/${ns}/pods`);
        assert.equal(pods.length, 5, pods.map((p) => p.metadata.name).join(', '));
        for (const p of pods) {
          assert.equal(p.status.phase, 'Running', p.metadata.name);
          assert.ok(cluster.nodes.includes(p.spec.nodeName), `${p.metadata.name} on ${p.spec.nodeName}`);
          assert.ok(
            p.status.conditions.some((c: any) => c.type === 'Ready' && c.status === 'True'),
            p.metadata.name,
          );
          assert.match(p.status.podIP, /^10\.244\./);
        }

        // Each Service has one ready endpoint per pod it selects (the EndpointSlice controller).
        const services = await list(cluster, `/api/v1/namespaces/${ns}/services`);
        const expected: Record<string, number> = {
          [`${RELEASE}-cyclone-sse-edge`]: 2,
          [`${RELEASE}-cyclone-sse-publisher`]: 2,
          [`${RELEASE}-cyclone-sse-redis`]: 1,
          [`${RELEASE}-cyclone-sse-redis-headless`]: 1,
        };
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

        // A rolling update (new config -> new checksum annotation -> new ReplicaSet): maxSurge 1 and
        // maxUnavailable 0 keep two edges available throughout, and the old ReplicaSet ends at 0.
        const before = (await list(cluster, `${base}/replicasets?labelSelector=app.kubernetes.io%2Fcomponent%3Dedge`)).map(
          (r) => r.metadata.name,
        );
        assert.equal(before.length, 1);
        let minAvailable = Infinity;
        let maxPods = 0;
        let watching = true;
        let rolled: any[] | undefined;
        const watcher = (async () => {
          while (watching) {
            const st = (await cluster.api('GET', `${base}/deployments/${edge}`)).body.status;
            minAvailable = Math.min(minAvailable, st.availableReplicas ?? 0);
            maxPods = Math.max(maxPods, st.replicas ?? 0);
            await new Promise((r) => setTimeout(r, 100));
          }
        })();
        try {
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
              '2m',
            ],
            3 * 60_000,
          );
          assert.equal(upgrade.status, 0, `${upgrade.stdout}\n${upgrade.stderr}`);
          rolled = await eventually(
            'the edge rollout to finish',
            async () => list(cluster, `${base}/replicasets?labelSelector=app.kubernetes.io%2Fcomponent%3Dedge`),
            (rs) =>
              rs.length === 2 &&
              rs.every((r) => (before.includes(r.metadata.name) ? r.status.replicas === 0 : r.status.readyReplicas === 2)),
            60_000,
          );
          await eventually(
            'the edge Deployment to settle at 2 available replicas',
            async () => (await cluster.api('GET', `${base}/deployments/${edge}`)).body.status,
            (st: any) => st.replicas === 2 && st.availableReplicas === 2 && st.updatedReplicas === 2,
            30_000,
          );
        } finally {
          watching = false;
          await watcher;
        }
        assert.equal(minAvailable, 2, 'an edge became unavailable during the rollout');
        assert.equal(maxPods, 3, 'maxSurge 1: three edge pods at the peak');
        const newRs = rolled.find((r) => !before.includes(r.metadata.name));
        await eventually(
          'only pods of the new edge ReplicaSet',
          async () =>
            (await list(cluster, `/api/v1/namespaces/${ns}/pods?labelSelector=app.kubernetes.io%2Fcomponent%3Dedge`)).map(
              (p) => p.metadata.labels['pod-template-hash'],
            ),
          (hashes) => hashes.length === 2 && hashes.every((h) => h === newRs.metadata.labels['pod-template-hash']),
          30_000,
        );

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
          `/apis/discovery.k8s.io/v1/namespaces/${ns}/endpointslices`,
        ]) {
          await eventually(
            `${path} to be empty`,
            async () => (await list(cluster, path)).map((o) => o.metadata.name),
            (names) => names.length === 0,
            60_000,
          );
        }
        const sas = (await list(cluster, `/api/v1/namespaces/${ns}/serviceaccounts`)).map((s) => s.metadata.name);
        assert.deepEqual(sas, ['default']);
      },
    );

    await t.test(
      'ci/production-values.yaml: helm install --wait (HPA, ServiceMonitor, NetworkPolicy, Ingress); the HPA brings the edge to minReplicas',
      async () => {
        const ns = 'prod';
        await createNamespace(cluster, ns);
        const install = await helm(
          ['install', RELEASE, CHART, '--namespace', ns, '-f', join(CI_DIR, 'production-values.yaml'), '--wait', '--timeout', '3m'],
          4 * 60_000,
        );
        assert.equal(install.status, 0, `${install.stdout}\n${install.stderr}`);
        const base = `/apis/apps/v1/namespaces/${ns}/deployments`;
        const edge = `${RELEASE}-cyclone-sse-edge`;
        // With autoscaling on the chart leaves spec.replicas unset: the API server defaults it to 1
        // and the HPA raises it to minReplicas on its first sync, so helm's wait may see either.
        const atInstall = (await cluster.api('GET', `${base}/${edge}`)).body.spec.replicas;
        t.diagnostic(`edge replicas when helm install --wait returned: ${atInstall} (HPA minReplicas 3)`);
        for (const [name, min] of [
          [edge, 3],
          [`${RELEASE}-cyclone-sse-publisher`, 2],
        ] as const) {
          await eventually(
            `${name} at the HPA's minReplicas (${min}), all available`,
            async () => (await cluster.api('GET', `${base}/${name}`)).body,
            (d: any) => d.spec.replicas === min && d.status?.availableReplicas === min,
            60_000,
          );
        }
        const names = async (path: string) => (await list(cluster, path)).map((o) => o.metadata.name).sort();
        const both = [edge, `${RELEASE}-cyclone-sse-publisher`];
        assert.deepEqual(await names(`/apis/autoscaling/v2/namespaces/${ns}/horizontalpodautoscalers`), both);
        assert.deepEqual(await names(`/apis/monitoring.coreos.com/v1/namespaces/${ns}/servicemonitors`), both);
        assert.deepEqual(await names(`/apis/networking.k8s.io/v1/namespaces/${ns}/networkpolicies`), both);
        assert.deepEqual(await names(`/apis/networking.k8s.io/v1/namespaces/${ns}/ingresses`), [`${RELEASE}-cyclone-sse`]);

        const uninstall = await helm(['uninstall', RELEASE, '--namespace', ns, '--wait', '--timeout', '2m'], 3 * 60_000);
        assert.equal(uninstall.status, 0, `${uninstall.stdout}\n${uninstall.stderr}`);
        for (const path of [
          base,
          `/api/v1/namespaces/${ns}/pods`,
          `/apis/autoscaling/v2/namespaces/${ns}/horizontalpodautoscalers`,
          `/apis/monitoring.coreos.com/v1/namespaces/${ns}/servicemonitors`,
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
