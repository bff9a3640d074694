// A real Kubernetes control plane on loopback for the chart's cluster tests, without Docker or a
// kubelet: etcd, kube-apiserver (RBAC, the default admission plugins incl. PodSecurity),
// kube-controller-manager, kube-scheduler, and kwok, which plays the kubelet for fake Nodes the
// harness creates (scheduled pods become Running and Ready; probes and images are never run).
//
// The binaries come from scripts/kube-tools.sh (built once from the Go module proxy, cached under
// ~/.cache/cyclone-sse/kube-<version>/). Certificates (CA, serving, admin client, service-account
// key) are made with openssl in a temporary directory; every process listens on 127.0.0.1 on a
// free port, logs to <dir>/<name>.log and is stopped by PID in stop() (also on process exit).
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort, waitFor } from '@cyclone-sse/testkit';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** Directory of etcd, kube-apiserver, … (builds them the first time: long; see kube-tools.sh). */
export function kubeToolsDir(): string {
  return execFileSync('bash', [join(ROOT, 'scripts/kube-tools.sh')], {
    cwd: ROOT,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    timeout: 60 * 60_000,
  })
    .trim()
    .split('\n')
    .pop()!;
}

export interface ApiResponse {
  status: number;
  body: any;
}

export interface KubeCluster {
  /** https://127.0.0.1:<port> */
  server: string;
  /** kubeconfig of a system:masters client (for helm and kubectl). */
  kubeconfig: string;
  /** Temporary directory: certificates, etcd data, one <component>.log per process. */
  dir: string;
  /** Directory of the binaries (kubectl is there too). */
  bin: string;
  /** Names of the fake Nodes kwok manages. */
  nodes: string[];
  /** Milliseconds from the first spawn to all Nodes Ready. */
  startupMs: number;
  /** A request to the API server as the admin; JSON bodies in and out. */
  api(method: string, path: string, body?: unknown): Promise<ApiResponse>;
  /** kubectl with the admin kubeconfig (synchronous; bounded by `timeoutMs`). */
  kubectl(args: string[], timeoutMs?: number): { status: number | null; stdout: string; stderr: string };
  /** The last `lines` lines of a component's log (etcd, kube-apiserver, …). */
  logTail(component: string, lines?: number): string;
  /** Stops every process (SIGTERM, SIGKILL after a grace period) and removes `dir`. Idempotent. */
  stop(): Promise<void>;
}

export interface KubeClusterOptions {
  /** Fake Nodes (default 3, one per zone a, b, c). */
  nodes?: number;
  /** Keep the temporary directory after stop() (logs for debugging). */
  keepDir?: boolean;
}

interface Proc {
  name: string;
  child: ChildProcess;
  exited: Promise<void>;
}

const SERVICE_CIDR = '10.96.0.0/16';
const SETPRIV = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => existsSync(p));
const SERVICE_IP = '10.96.0.1';

function openssl(dir: string, args: string[]): void {
  const r = spawnSync('openssl', args, { cwd: dir, encoding: 'utf8', timeout: 30_000 });
  if (r.status !== 0) throw new Error(`openssl ${args.join(' ')} failed: ${r.stderr}`);
}

/** CA, API server serving certificate, admin client certificate, service-account key pair. */
function makeCertificates(dir: string): void {
  openssl(
    dir,
    ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'].concat([
      '-keyout',
      'ca.key',
      '-out',
      'ca.crt',
      '-days',
      '2',
      '-subj',
      '/CN=cyclone-sse-test-ca',
    ]),
  );
  const sign = (name: string, subject: string, ext: string): void => {
    writeFileSync(join(dir, `${name}.ext`), ext);
    openssl(
      dir,
      ['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'].concat([
        '-keyout',
        `${name}.key`,
        '-out',
        `${name}.csr`,
        '-subj',
        subject,
      ]),
    );
    openssl(
      dir,
      ['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial'].concat([
        '-out',
        `${name}.crt`,
        '-days',
        '2',
        '-extfile',
        `${name}.ext`,
      ]),
    );
  };
  const sans = ['IP:127.0.0.1', `IP:${SERVICE_IP}`, 'DNS:localhost', 'DNS:kubernetes', 'DNS:kubernetes.default'].concat([
    'DNS:kubernetes.default.svc',
    'DNS:kubernetes.default.svc.cluster.local',
  ]);
  sign(
    'apiserver',
    '/CN=kube-apiserver',
    `subjectAltName=${sans.join(',')}\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n`,
  );
  sign('admin', '/O=system:masters/CN=cyclone-sse-test-admin', 'keyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n');
  openssl(dir, ['genrsa', '-out', 'sa.key', '2048']);
  openssl(dir, ['rsa', '-in', 'sa.key', '-pubout', '-out', 'sa.pub']);
}

function kubeconfigYaml(dir: string, server: string): string {
  return [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    '- name: test',
    '  cluster:',
    `    server: ${server}`,
    `    certificate-authority: ${join(dir, 'ca.crt')}`,
    'users:',
    '- name: admin',
    '  user:',
    `    client-certificate: ${join(dir, 'admin.crt')}`,
    `    client-key: ${join(dir, 'admin.key')}`,
    'contexts:',
    '- name: test',
    '  context: {cluster: test, user: admin, namespace: default}',
    'current-context: test',
    '',
  ].join('\n');
}

/** GET over HTTP(S) without verification (component /healthz on loopback); status or 0. */
function probe(url: string, tls?: { ca: Buffer; cert: Buffer; key: Buffer }): Promise<{ status: number; body: string }> {
  return new Promise((resolve) => {
    const req = (url.startsWith('https:') ? httpsRequest : httpRequest)(
      url,
      { method: 'GET', timeout: 3000, ...(url.startsWith('https:') ? { rejectUnauthorized: false, ...tls } : {}) },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        res.on('error', () => resolve({ status: 0, body }));
      },
    );
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve({ status: 0, body: '' }));
    req.end();
  });
}

export async function startKubeCluster(options: KubeClusterOptions = {}): Promise<KubeCluster> {
  const bin = kubeToolsDir();
  const dir = mkdtempSync(join(tmpdir(), 'cyclone-sse-kube-'));
  const procs: Proc[] = [];
  let stopped = false;
  const killAll = (): void => {
    for (const p of procs) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
  };
  process.on('exit', killAll);

  const logTail = (component: string, lines = 40): string => {
    const f = join(dir, `${component}.log`);
    if (!existsSync(f)) return '';
    return readFileSync(f, 'utf8').split('\n').slice(-lines).join('\n');
  };

  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    // Reverse start order: kwok and the controllers first, etcd last.
    for (const p of [...procs].reverse()) {
      if (p.child.exitCode !== null || p.child.signalCode !== null) continue;
      p.child.kill('SIGTERM');
      const t = setTimeout(() => p.child.kill('SIGKILL'), 10_000);
      await p.exited;
      clearTimeout(t);
    }
    process.off('exit', killAll);
    if (!options.keepDir) rmSync(dir, { recursive: true, force: true });
  };

  const start = (name: string, args: string[]): Proc => {
    const log = openSync(join(dir, `${name}.log`), 'a');
    // setpriv (util-linux) execs the binary with a parent-death signal: if this process dies
    // without running stop() (SIGKILL, a crash), the kernel kills the component too.
    const child = SETPRIV
      ? spawn(SETPRIV, ['--pdeathsig', 'KILL', '--', join(bin, name), ...args], { cwd: dir, stdio: ['ignore', log, log] })
      : spawn(join(bin, name), args, { cwd: dir, stdio: ['ignore', log, log] });
    closeSync(log);
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    const p = { name, child, exited };
    procs.push(p);
    return p;
  };
  const ready = async (p: Proc, check: () => Promise<boolean>, timeoutMs: number): Promise<void> => {
    await waitFor(
      async () => {
        if (p.child.exitCode !== null || p.child.signalCode !== null) {
          throw new Error(`${p.name} exited (${p.child.exitCode ?? p.child.signalCode}):\n${logTail(p.name)}`);
        }
        return check();
      },
      timeoutMs,
      `${p.name} to become ready`,
      200,
    ).catch((err: Error) => {
      throw new Error(`${err.message}\n--- ${p.name}.log ---\n${logTail(p.name)}`);
    });
  };

  try {
    const t0 = Date.now();
    makeCertificates(dir);
    const ca = readFileSync(join(dir, 'ca.crt'));
    const cert = readFileSync(join(dir, 'admin.crt'));
    const key = readFileSync(join(dir, 'admin.key'));
    const tls = { ca, cert, key };

    // etcd: one member, no fsync (test data), on two free loopback ports.
    const [etcdClient, etcdPeer] = [await freePort(), await freePort()];
    const etcd = start('etcd', [
      '--name=test',
      `--data-dir=${join(dir, 'etcd')}`,
      `--listen-client-urls=http://127.0.0.1:${etcdClient}`,
      `--advertise-client-urls=http://127.0.0.1:${etcdClient}`,
      `--listen-peer-urls=http://127.0.0.1:${etcdPeer}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${etcdPeer}`,
      `--initial-cluster=test=http://127.0.0.1:${etcdPeer}`,
      '--unsafe-no-fsync',
      '--log-level=warn',
    ]);
    await ready(etcd, async () => (await probe(`http://127.0.0.1:${etcdClient}/health`)).body.includes('"health":"true"'), 30_000);

    const apiPort = await freePort();
    const server = `https://127.0.0.1:${apiPort}`;
    const kubeconfig = join(dir, 'admin.kubeconfig');
    writeFileSync(kubeconfig, kubeconfigYaml(dir, server));
    const apiserver = start('kube-apiserver', [
      `--etcd-servers=http://127.0.0.1:${etcdClient}`,
      '--bind-address=127.0.0.1',
      `--secure-port=${apiPort}`,
      '--advertise-address=127.0.0.1',
      // The `kubernetes` Endpoints would point at 127.0.0.1, which validation refuses.
      '--endpoint-reconciler-type=none',
      `--tls-cert-file=${join(dir, 'apiserver.crt')}`,
      `--tls-private-key-file=${join(dir, 'apiserver.key')}`,
      `--client-ca-file=${join(dir, 'ca.crt')}`,
      '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
      `--service-account-key-file=${join(dir, 'sa.pub')}`,
      `--service-account-signing-key-file=${join(dir, 'sa.key')}`,
      `--service-cluster-ip-range=${SERVICE_CIDR}`,
      '--authorization-mode=RBAC',
      // On top of the default plugins (NamespaceLifecycle, LimitRanger, ServiceAccount, PodSecurity,
      // Priority, DefaultTolerationSeconds, ResourceQuota, the webhooks and policies, …).
      '--enable-admission-plugins=PodSecurity',
      '--allow-privileged=false',
      '--profiling=false',
      `--cert-dir=${join(dir, 'apiserver-certs')}`,
      '--v=1',
    ]);
    await ready(apiserver, async () => (await probe(`${server}/readyz`, tls)).status === 200, 120_000);

    const componentArgs = (name: string, port: number): string[] => [
      `--kubeconfig=${kubeconfig}`,
      `--authentication-kubeconfig=${kubeconfig}`,
      `--authorization-kubeconfig=${kubeconfig}`,
      '--bind-address=127.0.0.1',
      `--secure-port=${port}`,
      '--leader-elect=false',
      `--cert-dir=${join(dir, `${name}-certs`)}`,
      '--v=1',
    ];
    const kcmPort = await freePort();
    const kcm = start('kube-controller-manager', [
      ...componentArgs('kube-controller-manager', kcmPort),
      `--service-account-private-key-file=${join(dir, 'sa.key')}`,
      `--root-ca-file=${join(dir, 'ca.crt')}`,
      '--cluster-name=cyclone-sse-test',
      '--use-service-account-credentials=false',
      `--service-cluster-ip-range=${SERVICE_CIDR}`,
    ]);
    const schedulerPort = await freePort();
    const scheduler = start('kube-scheduler', componentArgs('kube-scheduler', schedulerPort));
    const kwok = start('kwok', [
      `--kubeconfig=${kubeconfig}`,
      `--config=${join(bin, 'kwok-stages.yaml')}`,
      '--manage-all-nodes=false',
      '--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake',
      '--node-lease-duration-seconds=40',
      '--cidr=10.244.0.0/16',
      '--node-ip=10.250.0.1',
    ]);
    await ready(kcm, async () => (await probe(`https://127.0.0.1:${kcmPort}/healthz`)).status === 200, 60_000);
    await ready(scheduler, async () => (await probe(`https://127.0.0.1:${schedulerPort}/healthz`)).status === 200, 60_000);

    const api = async (method: string, path: string, body?: unknown): Promise<ApiResponse> => {
      const payload = body === undefined ? undefined : JSON.stringify(body);
      return new Promise((resolve, reject) => {
        const req = httpsRequest(
          `${server}${path}`,
          {
            method,
            ...tls,
            timeout: 30_000,
            headers: {
              accept: 'application/json',
              ...(payload === undefined
                ? {}
                : {
                    'content-type': method === 'PATCH' ? 'application/merge-patch+json' : 'application/json',
                    'content-length': Buffer.byteLength(payload),
                  }),
            },
          },
          (res) => {
            let text = '';
            res.setEncoding('utf8');
            res.on('data', (d: string) => (text += d));
            res.on('end', () => {
              let parsed: unknown = text;
              try {
                parsed = JSON.parse(text);
              } catch {
                /* not JSON */
              }
              resolve({ status: res.statusCode ?? 0, body: parsed });
            });
          },
        );
        req.on('timeout', () => req.destroy(new Error(`${method} ${path}: no answer within 30 s`)));
        req.on('error', reject);
        req.end(payload);
      });
    };

    // Fake Nodes: kwok picks them up by annotation and keeps their status and lease alive.
    const nodeCount = options.nodes ?? 3;
    const nodes: string[] = [];
    for (let i = 0; i < nodeCount; i++) {
      const name = `kwok-node-${i}`;
      const zone = `zone-${'abcdefgh'[i % 8]}`;
      const r = await api('POST', '/api/v1/nodes', {
        apiVersion: 'v1',
        kind: 'Node',
        metadata: {
          name,
          annotations: { 'kwok.x-k8s.io/node': 'fake', 'node.alpha.kubernetes.io/ttl': '0' },
          labels: {
            'kubernetes.io/hostname': name,
            'kubernetes.io/os': 'linux',
            'kubernetes.io/arch': 'amd64',
            'topology.kubernetes.io/zone': zone,
            type: 'kwok',
          },
        },
        status: {
          allocatable: { cpu: '16', memory: '64Gi', pods: '110', 'ephemeral-storage': '100Gi' },
          capacity: { cpu: '16', memory: '64Gi', pods: '110', 'ephemeral-storage': '100Gi' },
          nodeInfo: { architecture: 'amd64', operatingSystem: 'linux', kubeletVersion: 'fake', kubeProxyVersion: 'fake' },
        },
      });
      if (r.status !== 201) throw new Error(`creating Node ${name}: ${r.status} ${JSON.stringify(r.body)}`);
      nodes.push(name);
    }
    await ready(
      kwok,
      async () => {
        const r = await api('GET', '/api/v1/nodes?labelSelector=type%3Dkwok');
        const items = (r.body?.items ?? []) as any[];
        return (
          items.length === nodeCount &&
          items.every((n) => n.status?.conditions?.some((c: any) => c.type === 'Ready' && c.status === 'True'))
        );
      },
      60_000,
    );
    // The controller manager's service-account controller is running once `default` has its SA.
    await ready(kcm, async () => (await api('GET', '/api/v1/namespaces/default/serviceaccounts/default')).status === 200, 60_000);

    const kubectl = (args: string[], timeoutMs = 60_000) => {
      const r = spawnSync(join(bin, 'kubectl'), ['--kubeconfig', kubeconfig, ...args], {
        encoding: 'utf8',
        timeout: timeoutMs,
      });
      return { status: r.status, stdout: r.stdout, stderr: r.stderr };
    };
    return { server, kubeconfig, dir, bin, nodes, startupMs: Date.now() - t0, api, kubectl, logTail, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** Polls until `predicate` holds, reporting the last observed value on timeout. */
export async function eventually<T>(what: string, read: () => Promise<T>, ok: (value: T) => boolean, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: T | undefined;
  for (;;) {
    last = await read();
    if (ok(last)) return last;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last: ${JSON.stringify(last)}`);
    await sleep(500);
  }
}
