import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis, type RedisOptions } from 'ioredis';
import { freePort, pingRedis } from './redis.js';
import { pingRedisTls, type RedisTlsFiles } from './redis-tls.js';
import { waitFor } from './wait.js';

export interface RedisSentinelGroupOptions {
  /** Replicas of the primary (default 2). */
  replicas?: number;
  /** Sentinels (default 3); the quorum is their majority. */
  sentinels?: number;
  /** `sentinel down-after-milliseconds` (default 1000). */
  downAfterMs?: number;
  /** `sentinel failover-timeout` (default 5000): also the retry delay of a failed election (2×). */
  failoverTimeoutMs?: number;
  /** Master group name (default `mymaster`). */
  name?: string;
  /**
   * TLS for the data nodes (`--tls-port`, `--port 0`, replication and Sentinel's links to them
   * over TLS); the sentinels themselves listen in plain TCP. From `makeTlsFiles()`.
   */
  tls?: RedisTlsFiles;
}

export interface RedisGroupNode {
  /** What the node was started as: the first primary, a replica, or a sentinel. */
  readonly kind: 'primary' | 'replica' | 'sentinel';
  readonly port: number;
  readonly pid: number;
  /** Exited (killed or stopped for good). */
  readonly dead: boolean;
  /** Under SIGSTOP. */
  readonly paused: boolean;
}

export interface Address {
  host: string;
  port: number;
}

export interface RedisSentinelGroup {
  name: string;
  /** The sentinels' addresses (plain TCP). */
  sentinels: Address[];
  /** `--redis-sentinels` value: `127.0.0.1:p1,127.0.0.1:p2,…`. */
  sentinelsArg: string;
  /** Every process: the primary, then the replicas, then the sentinels. */
  nodes: RedisGroupNode[];
  /** The data nodes (primary and replicas). */
  dataNodes: RedisGroupNode[];
  /** The primary as the first live sentinel that answers names it (`SENTINEL get-master-addr-by-name`). */
  primary(): Promise<Address>;
  /** SIGKILL a node and wait for its exit. */
  kill9(port: number): Promise<void>;
  /** SIGSTOP a node (it keeps its sockets open but answers nothing). */
  stop(port: number): void;
  /** SIGCONT a node stopped with `stop`. */
  cont(port: number): void;
  /** `SENTINEL FAILOVER <name>` on a live sentinel (a planned switchover, no agreement needed). */
  failover(): Promise<void>;
  /**
   * Waits until every live sentinel names a primary other than `oldPort` and that node answers
   * `role:master`; returns its port.
   */
  waitForNewPrimary(oldPort: number, timeoutMs?: number): Promise<number>;
  /** Waits until the primary has every live replica online at its own replication offset. */
  waitReplicasInSync(timeoutMs?: number): Promise<void>;
  /** Sentinel's and the nodes' log files, for a failure message. */
  logs(): string;
  /** SIGKILL every process still running (by PID), wait for the exits, remove the directory. Idempotent. */
  close(): Promise<void>;
}

/** Every process the helpers below started and that still runs: killed if the test process exits first. */
const running = new Set<ChildProcess>();
let exitHook = false;
function track(child: ChildProcess): void {
  running.add(child);
  void once(child, 'exit').then(() => running.delete(child));
  if (exitHook) return;
  exitHook = true;
  process.once('exit', () => {
    for (const c of running) c.kill('SIGKILL');
  });
}

interface Proc {
  kind: RedisGroupNode['kind'];
  port: number;
  child: ChildProcess;
  exited: Promise<unknown>;
  paused: boolean;
}

const ADMIN_TIMEOUT_MS = 1000;

/** One short-lived admin connection: no retries, every step time-limited. */
async function withClient<T>(port: number, fn: (c: Redis) => Promise<T>, tls?: RedisTlsFiles): Promise<T> {
  const options: RedisOptions = {
    host: '127.0.0.1',
    port,
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    connectTimeout: ADMIN_TIMEOUT_MS,
    commandTimeout: ADMIN_TIMEOUT_MS,
    protocol: 2,
  };
  if (tls) options.tls = { ca: readFileSync(tls.caFile) };
  const c = new Redis(options);
  c.on('error', () => undefined);
  try {
    await c.connect();
    return await fn(c);
  } finally {
    c.disconnect();
  }
}

/**
 * A Redis Sentinel deployment of real processes on free loopback ports in a temporary directory:
 * one primary, `replicas` replicas (`--replicaof`), `sentinels` sentinels monitoring them as
 * `name`, tuned for fast failover (short down-after, diskless replication, no persistence).
 * Every process is stopped by PID in `close()`; register it with `t.after` right away. Bounded:
 * at most 1 + replicas + sentinels processes, every wait time-limited.
 */
export async function startRedisSentinelGroup(options: RedisSentinelGroupOptions = {}): Promise<RedisSentinelGroup> {
  const replicas = options.replicas ?? 2;
  const sentinelCount = options.sentinels ?? 3;
  const downAfterMs = options.downAfterMs ?? 1000;
  const failoverTimeoutMs = options.failoverTimeoutMs ?? 5000;
  const name = options.name ?? 'mymaster';
  const tls = options.tls;
  if (replicas < 0 || replicas > 5 || sentinelCount < 1 || sentinelCount > 7) throw new Error('replicas 0..5, sentinels 1..7');
  const dir = mkdtempSync(join(tmpdir(), 'cyclone-sentinel-'));
  const procs: Proc[] = [];
  let closed = false;

  const launch = async (kind: Proc['kind'], args: string[], port: number): Promise<void> => {
    const child = spawn('redis-server', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    track(child);
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = once(child, 'exit');
    procs.push({ kind, port, child, exited, paused: false });
    await Promise.race([
      waitFor(
        () => (tls && kind !== 'sentinel' ? pingRedisTls(port, tls.caFile) : pingRedis(port)),
        10_000,
        `${kind} redis-server on port ${port}`,
      ),
      exited.then(() => {
        throw new Error(`${kind} redis-server on port ${port} exited at start: ${stderr}${logOf(port)}`);
      }),
    ]);
  };
  const logOf = (port: number): string => {
    try {
      return readFileSync(join(dir, `${port}.log`), 'utf8');
    } catch {
      return '';
    }
  };
  const tlsArgs = (): string[] =>
    tls
      ? [
          '--tls-cert-file',
          tls.certFile,
          '--tls-key-file',
          tls.keyFile,
          '--tls-ca-cert-file',
          tls.caFile,
          '--tls-auth-clients',
          'no',
          '--tls-replication',
          'yes',
        ]
      : [];
  const dataArgs = (port: number, replicaOf?: number): string[] => [
    ...(tls ? ['--port', '0', '--tls-port', String(port)] : ['--port', String(port)]),
    ...tlsArgs(),
    '--bind',
    '127.0.0.1',
    '--save',
    '',
    '--appendonly',
    'no',
    '--dir',
    dir,
    '--dbfilename',
    `${port}.rdb`,
    '--logfile',
    join(dir, `${port}.log`),
    '--loglevel',
    'notice',
    '--repl-diskless-sync',
    'yes',
    '--repl-diskless-sync-delay',
    '0',
    '--repl-diskless-load',
    'on-empty-db',
    '--repl-ping-replica-period',
    '1',
    '--repl-timeout',
    '5',
    '--replica-priority',
    '100',
    ...(replicaOf !== undefined ? ['--replicaof', '127.0.0.1', String(replicaOf)] : []),
  ];

  const close = async (): Promise<void> => {
    if (closed) return;
    closed = true;
    await Promise.all(
      procs.map(async (p) => {
        if (p.child.exitCode !== null || p.child.signalCode !== null) return;
        p.child.kill('SIGKILL'); // works on a SIGSTOPped process too
        await p.exited;
      }),
    );
    rmSync(dir, { recursive: true, force: true });
  };

  try {
    const primaryPort = await freePort();
    await launch('primary', dataArgs(primaryPort), primaryPort);
    for (let i = 0; i < replicas; i++) {
      const port = await freePort();
      await launch('replica', dataArgs(port, primaryPort), port);
    }
    const quorum = Math.floor(sentinelCount / 2) + 1;
    const sentinelPorts: number[] = [];
    for (let i = 0; i < sentinelCount; i++) {
      const port = await freePort();
      const conf = join(dir, `sentinel-${port}.conf`);
      writeFileSync(
        conf,
        [
          `port ${port}`,
          'bind 127.0.0.1',
          `dir ${dir}`,
          `logfile ${join(dir, `${port}.log`)}`,
          'loglevel notice',
          'sentinel resolve-hostnames yes',
          ...(tls
            ? [`tls-cert-file ${tls.certFile}`, `tls-key-file ${tls.keyFile}`, `tls-ca-cert-file ${tls.caFile}`, 'tls-replication yes']
            : []),
          `sentinel monitor ${name} 127.0.0.1 ${primaryPort} ${quorum}`,
          `sentinel down-after-milliseconds ${name} ${downAfterMs}`,
          `sentinel failover-timeout ${name} ${failoverTimeoutMs}`,
          `sentinel parallel-syncs ${name} ${Math.max(1, replicas)}`,
          '',
        ].join('\n'),
      );
      await launch('sentinel', [conf, '--sentinel'], port);
      sentinelPorts.push(port);
    }
    const sentinels = sentinelPorts.map((port) => ({ host: '127.0.0.1', port }));

    const find = (port: number): Proc => {
      const p = procs.find((x) => x.port === port);
      if (!p) throw new Error(`no process of this group on port ${port}`);
      return p;
    };
    const alive = (p: Proc): boolean => p.child.exitCode === null && p.child.signalCode === null && !p.paused;
    const liveSentinels = () => procs.filter((p) => p.kind === 'sentinel' && alive(p));
    const masterOf = (port: number): Promise<Address> =>
      withClient(port, async (c) => {
        const r = (await c.call('SENTINEL', 'get-master-addr-by-name', name)) as [string, string] | null;
        if (!r) throw new Error(`sentinel ${port} knows no master ${name}`);
        return { host: r[0], port: Number(r[1]) };
      });
    const replication = (port: number): Promise<string> => withClient(port, (c) => c.info('replication'), tls);

    const group: RedisSentinelGroup = {
      name,
      sentinels,
      sentinelsArg: sentinels.map((s) => `${s.host}:${s.port}`).join(','),
      nodes: procs.map(view),
      dataNodes: procs.filter((p) => p.kind !== 'sentinel').map(view),
      async primary() {
        let last: unknown;
        for (const s of liveSentinels()) {
          try {
            return await masterOf(s.port);
          } catch (err) {
            last = err;
          }
        }
        throw new Error(`no sentinel answered: ${(last as Error | undefined)?.message ?? 'none alive'}`);
      },
      async kill9(port) {
        const p = find(port);
        if (p.child.exitCode !== null || p.child.signalCode !== null) return;
        p.child.kill('SIGKILL');
        await p.exited;
      },
      stop(port) {
        const p = find(port);
        p.child.kill('SIGSTOP');
        p.paused = true;
      },
      cont(port) {
        const p = find(port);
        p.child.kill('SIGCONT');
        p.paused = false;
      },
      async failover() {
        const s = liveSentinels()[0];
        if (!s) throw new Error('no live sentinel');
        await withClient(s.port, (c) => c.call('SENTINEL', 'FAILOVER', name));
      },
      async waitForNewPrimary(oldPort, timeoutMs = 20_000) {
        return waitFor(
          async () => {
            const named = await Promise.all(liveSentinels().map((s) => masterOf(s.port)));
            const ports = new Set(named.map((a) => a.port));
            if (ports.size !== 1) return undefined;
            const [port] = [...ports];
            if (port === oldPort || port === undefined) return undefined;
            return /^role:master\r?$/m.test(await replication(port)) ? port : undefined;
          },
          timeoutMs,
          `sentinels to agree on a new primary other than ${oldPort}`,
          50,
        );
      },
      async waitReplicasInSync(timeoutMs = 10_000) {
        // WAIT counts the replicas that acknowledged every write this connection made, and the
        // replication stream is ordered: after a PUBLISH here, that is everything written so far.
        await waitFor(
          async () => {
            const { port } = await group.primary();
            const want = procs.filter((p) => p.kind !== 'sentinel' && p.port !== port && alive(p)).length;
            return withClient(
              port,
              async (c) => {
                await c.publish('cyclone-sse-test:sync', '1');
                return Number(await c.call('WAIT', want, ADMIN_TIMEOUT_MS - 200)) >= want;
              },
              tls,
            );
          },
          timeoutMs,
          'replicas in sync with the primary',
          20,
        );
      },
      logs() {
        return procs.map((p) => `--- ${p.kind} ${p.port}\n${logOf(p.port).split('\n').slice(-40).join('\n')}`).join('\n');
      },
      close,
    };
    // Sentinels know each other and the replicas before a test kills anything.
    await waitFor(
      async () => {
        for (const s of sentinels) {
          const master = await withClient(s.port, (c) => c.call('SENTINEL', 'MASTER', name));
          const info = fieldsOf(master as string[]);
          if (Number(info['num-other-sentinels']) !== sentinelCount - 1) return false;
          if (Number(info['num-slaves']) !== replicas) return false;
        }
        return true;
      },
      15_000,
      'sentinels to discover each other and the replicas',
      50,
    );
    await group.waitReplicasInSync();
    return group;
  } catch (err) {
    await close();
    throw err;
  }

  function view(p: Proc): RedisGroupNode {
    return {
      kind: p.kind,
      port: p.port,
      get pid() {
        return p.child.pid ?? -1;
      },
      get dead() {
        return p.child.exitCode !== null || p.child.signalCode !== null;
      },
      get paused() {
        return p.paused;
      },
    };
  }
}

function fieldsOf(flat: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) out[flat[i]!] = flat[i + 1]!;
  return out;
}
