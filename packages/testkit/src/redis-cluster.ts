import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { freePort, pingRedis } from './redis.js';
import { waitFor } from './wait.js';

/**
 * A real Redis Cluster for tests: `primaries × (1 + replicasPerPrimary)` `redis-server
 * --cluster-enabled yes` processes on free loopback ports, each in its own temp directory (no
 * RDB, no AOF), joined with `redis-cli --cluster create … --cluster-replicas R` (or, below the
 * 3 primaries redis-cli insists on, with `CLUSTER ADDSLOTSRANGE`/`MEET`/`REPLICATE`).
 * Slots are split evenly the way redis-cli does it (3 shards: 0–5460, 5461–10922, 10923–16383).
 * Every wait is bounded; `close()` kills every process by PID, and so does process exit.
 */
export interface RedisClusterOptions {
  /** Shards (default 3). */
  primaries?: number;
  /** Replicas per shard (default 1). */
  replicasPerPrimary?: number;
  /** `cluster-node-timeout` (default 1000 ms): how soon a dead primary is failed over. */
  nodeTimeoutMs?: number;
  /** Extra `redis-server` arguments for every node (e.g. `['--cluster-require-full-coverage', 'no']`). */
  extraArgs?: string[];
  /** Bound on the whole start-up (default 30 000 ms). */
  startTimeoutMs?: number;
}

export interface RedisClusterNode {
  readonly port: number;
  /** `cluster-port` (the cluster bus), chosen free too (not port + 10000). */
  readonly busPort: number;
  /** PID of the current redis-server process (changes on `restart`). */
  readonly pid: number;
  /** Cluster node id (40 hex). */
  readonly id: string;
  /** Last known role; refreshed by `refreshRoles`, `waitForFailover`, `waitForStable`. */
  readonly role: 'primary' | 'replica';
  readonly alive: boolean;
  readonly dir: string;
}

export interface SlotRange {
  first: number;
  last: number;
  /** Port of the primary serving the range. */
  primary: number;
  /** Ports of its replicas (as the answering node lists them). */
  replicas: number[];
}

export interface ClusterShardNode {
  id: string;
  port: number;
  role: 'master' | 'replica';
  /**
   * `online`, `loading` (also a replica in sync whose shard never had a write: offset 0), or —
   * Redis 7.0.15 writes it so, not `failed` as documented — `fail`.
   */
  health: string;
  replicationOffset: number;
}

export interface ClusterShard {
  /** Slot ranges, `[first, last]` each. */
  slots: Array<[number, number]>;
  nodes: ClusterShardNode[];
}

export interface MigrateOptions {
  /** Keys per `MIGRATE` (default 200). */
  batch?: number;
  /** Bound on the whole move (default 30 000 ms). */
  timeoutMs?: number;
  onMigrating?: (move: { slot: number; from: number; to: number }) => void | Promise<void>;
}

export interface RedisCluster {
  readonly nodes: readonly RedisClusterNode[];
  /** `127.0.0.1:p1,127.0.0.1:p2,…` of every node (the `--redis-cluster-nodes` value). */
  readonly seeds: string;
  /** The same as a list (the ioredis `Cluster` start-up nodes). */
  readonly seedList: ReadonlyArray<{ host: string; port: number }>;
  /** Milliseconds from the first spawn to a stable cluster with replicas in sync. */
  readonly startupMs: number;
  /** Port of the primary owning `slot`, as a live node sees it. */
  slotOwner(slot: number): Promise<number>;
  /** `CLUSTER SLOTS` of one live node (default: any), normalised and sorted by first slot. */
  slotMap(port?: number): Promise<SlotRange[]>;
  /** `CLUSTER SHARDS` of one live node (default: any), parsed. */
  shards(port?: number): Promise<ClusterShard[]>;
  /** Ports of the primaries that own slots, in slot order (first slot of each). */
  primaryPorts(): Promise<number[]>;
  /**
   * Moves `slot` to the primary on `toPort`: `SETSLOT IMPORTING` on the target, `MIGRATING` on
   * the source, `MIGRATE … REPLACE KEYS` of every key in batches (until the source holds none,
   * so keys written during the move follow), `SETSLOT NODE` on the target, the source and every
   * other primary; resolves once every live node agrees. Returns the ports and the keys moved.
   * `onMigrating` runs once the keys are moved, just before `SETSLOT NODE` (source still owner,
   * in MIGRATING state; target IMPORTING): the place to act "during" a migration.
   */
  migrateSlot(slot: number, toPort: number, opts?: MigrateOptions): Promise<{ from: number; to: number; keys: number }>;
  /** SIGKILL the node on `port` and wait for its exit. */
  kill9(port: number): Promise<void>;
  /**
   * After `kill9` of a primary: waits until a replica of it owns all its slots in the view of
   * every live node, with `cluster_state:ok` everywhere. Returns the new primary's port.
   */
  waitForFailover(deadPort: number, timeoutMs?: number): Promise<number>;
  /** Starts a killed node again (same port, same nodes.conf: it rejoins, usually as a replica). */
  restart(port: number): Promise<void>;
  /** Every live node: `cluster_state:ok`, the same slot map, knows every node; roles refreshed. */
  waitForStable(timeoutMs?: number): Promise<void>;
  /** Re-reads every node's role from `CLUSTER NODES`. */
  refreshRoles(): Promise<void>;
  /** One admin command on the node on `port` (bounded by a 5 s command timeout). */
  command(port: number, ...args: Array<string | number | Buffer>): Promise<unknown>;
  /** Kills every process by PID and removes the directories. Idempotent. */
  close(): Promise<void>;
}

const SLOTS = 16384;
const COMMAND_TIMEOUT_MS = 5000;

interface NodeState {
  port: number;
  busPort: number;
  dir: string;
  args: string[];
  child: ChildProcess | undefined;
  id: string;
  role: 'primary' | 'replica';
  alive: boolean;
}

/** Starts a Redis Cluster (see `RedisClusterOptions`); on any failure every started process is killed. */
export async function startRedisCluster(options: RedisClusterOptions = {}): Promise<RedisCluster> {
  const primaries = options.primaries ?? 3;
  const replicasPerPrimary = options.replicasPerPrimary ?? 1;
  const nodeTimeoutMs = options.nodeTimeoutMs ?? 1000;
  const startTimeoutMs = options.startTimeoutMs ?? 30_000;
  if (!Number.isInteger(primaries) || primaries < 1 || primaries > 64) throw new Error(`primaries must be 1..64, got ${primaries}`);
  if (!Number.isInteger(replicasPerPrimary) || replicasPerPrimary < 0 || replicasPerPrimary > 8)
    throw new Error(`replicasPerPrimary must be 0..8, got ${replicasPerPrimary}`);
  const total = primaries * (1 + replicasPerPrimary);
  const started = Date.now();
  const deadline = started + startTimeoutMs;
  const remaining = (): number => Math.max(1, deadline - Date.now());

  const states: NodeState[] = [];
  const admins = new Map<number, Redis>();
  let closed = false;

  const killAllSync = (): void => {
    for (const s of states) if (s.child && s.child.exitCode === null && s.child.signalCode === null) s.child.kill('SIGKILL');
  };
  process.on('exit', killAllSync);

  const admin = (port: number): Redis => {
    let r = admins.get(port);
    if (r) return r;
    r = new Redis({
      host: '127.0.0.1',
      port,
      retryStrategy: () => null,
      enableReadyCheck: false,
      maxRetriesPerRequest: 0,
      connectTimeout: 1000,
      commandTimeout: COMMAND_TIMEOUT_MS,
    });
    r.on('error', () => {});
    const conn = r;
    r.on('end', () => {
      if (admins.get(port) === conn) admins.delete(port);
    });
    admins.set(port, r);
    return r;
  };
  const command = (port: number, ...args: Array<string | number | Buffer>): Promise<unknown> => {
    const [name, ...rest] = args;
    if (name === undefined) throw new Error('command: no command');
    return admin(port).call(String(name), ...rest);
  };
  const info = async (port: number, section: string): Promise<Record<string, string>> => {
    const text = String(await command(port, section === 'cluster' ? 'CLUSTER' : 'INFO', section === 'cluster' ? 'INFO' : section));
    const out: Record<string, string> = {};
    for (const line of text.split('\r\n')) {
      const i = line.indexOf(':');
      if (i > 0) out[line.slice(0, i)] = line.slice(i + 1);
    }
    return out;
  };
  const stateOf = (port: number): NodeState => {
    const s = states.find((x) => x.port === port);
    if (!s) throw new Error(`no cluster node on port ${port}`);
    return s;
  };
  const live = (): NodeState[] => states.filter((s) => s.alive);
  const logTail = (s: NodeState): string => {
    try {
      return readFileSync(join(s.dir, 'redis.log'), 'utf8').split('\n').slice(-15).join('\n');
    } catch {
      return '(no log)';
    }
  };

  const launch = async (s: NodeState, timeoutMs: number): Promise<void> => {
    const proc = spawn('redis-server', s.args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    s.child = proc;
    const exited = once(proc, 'exit');
    await Promise.race([
      waitFor(() => pingRedis(s.port), timeoutMs, `redis-server on port ${s.port}`),
      exited.then(() => {
        throw new Error(`redis-server on port ${s.port} exited at start: ${stderr}\n${logTail(s)}`);
      }),
    ]);
    s.alive = true;
  };

  const stopAll = async (): Promise<void> => {
    process.removeListener('exit', killAllSync);
    for (const r of admins.values()) r.disconnect();
    admins.clear();
    await Promise.all(
      states.map(async (s) => {
        const proc = s.child;
        s.alive = false;
        if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
        const exited = once(proc, 'exit');
        proc.kill('SIGKILL');
        await within(exited, 5000, `redis-server ${s.port} to exit after SIGKILL`).catch(() => {});
      }),
    );
    for (const s of states) rmSync(s.dir, { recursive: true, force: true });
  };

  const slotMap = async (port?: number): Promise<SlotRange[]> => {
    const target = port ?? live()[0]?.port;
    if (target === undefined) throw new Error('no live cluster node');
    const reply = (await command(target, 'CLUSTER', 'SLOTS')) as Array<
      [number, number, [string, number, string], ...Array<[string, number, string]>]
    >;
    return reply
      .map(([first, last, primary, ...replicas]) => ({
        first: Number(first),
        last: Number(last),
        primary: Number(primary[1]),
        replicas: replicas.map((r) => Number(r[1])).sort((a, b) => a - b),
      }))
      .sort((a, b) => a.first - b.first);
  };
  const ownerIn = (map: SlotRange[], slot: number): number | undefined => map.find((r) => r.first <= slot && slot <= r.last)?.primary;
  const sameOwners = (a: SlotRange[], b: SlotRange[]): boolean =>
    a.length === b.length && a.every((r, i) => r.first === b[i]!.first && r.last === b[i]!.last && r.primary === b[i]!.primary);

  const refreshRoles = async (): Promise<void> => {
    const from = live()[0];
    if (!from) return;
    const text = String(await command(from.port, 'CLUSTER', 'NODES'));
    for (const line of text.split('\n')) {
      const [id, addr, flags] = line.split(' ');
      if (!id || !addr || !flags) continue;
      const port = Number(addr.split('@')[0]!.split(':')[1]);
      const s = states.find((x) => x.port === port);
      if (!s) continue;
      s.id = id;
      s.role = flags.split(',').includes('master') ? 'primary' : 'replica';
    }
  };

  /** One check of the live nodes; returns a reason when not stable yet. */
  const unstableReason = async (): Promise<string | undefined> => {
    const nodes = live();
    let first: SlotRange[] | undefined;
    for (const s of nodes) {
      const ci = await info(s.port, 'cluster');
      if (ci.cluster_state !== 'ok') return `${s.port}: cluster_state ${ci.cluster_state}`;
      if (Number(ci.cluster_slots_assigned) !== SLOTS) return `${s.port}: ${ci.cluster_slots_assigned} slots assigned`;
      if (Number(ci.cluster_known_nodes) < nodes.length) return `${s.port}: knows ${ci.cluster_known_nodes} nodes`;
      const map = await slotMap(s.port);
      if (map.some((r) => !stateOf(r.primary).alive)) return `${s.port}: a dead primary still serves slots`;
      if (!first) first = map;
      else if (!sameOwners(first, map)) return `${s.port}: slot map differs`;
    }
    return undefined;
  };
  const waitForStable = async (timeoutMs = 15_000): Promise<void> => {
    let reason: string | undefined;
    await waitFor(
      async () => {
        reason = await unstableReason();
        return reason === undefined;
      },
      timeoutMs,
      `a stable cluster (last: ${String(reason)})`,
      25,
    ).catch((err: Error) => {
      throw new Error(`${err.message}; last reason: ${reason}`);
    });
    await refreshRoles();
  };

  try {
    const used = new Set<number>();
    const pick = async (): Promise<number> => {
      for (let i = 0; i < 50; i++) {
        const p = await freePort();
        if (!used.has(p)) {
          used.add(p);
          return p;
        }
      }
      throw new Error('no free port');
    };
    for (let i = 0; i < total; i++) {
      const port = await pick();
      const busPort = await pick();
      const dir = mkdtempSync(join(tmpdir(), 'cyclone-rcluster-'));
      const args = [
        '--port', String(port),
        '--bind', '127.0.0.1',
        '--cluster-enabled', 'yes',
        '--cluster-port', String(busPort),
        '--cluster-config-file', join(dir, 'nodes.conf'),
        '--cluster-node-timeout', String(nodeTimeoutMs),
        // A replica may always take over, however long it was cut off (tests kill -9 on purpose).
        '--cluster-replica-validity-factor', '0',
        '--save', '',
        '--appendonly', 'no',
        '--repl-diskless-sync', 'yes',
        // The 7.0 default waits 5 s for more replicas before a full sync; one replica per primary here.
        '--repl-diskless-sync-delay', '0',
        '--dir', dir,
        '--logfile', join(dir, 'redis.log'),
        '--loglevel', 'notice',
        ...(options.extraArgs ?? []),
      ]; // prettier-ignore
      states.push({ port, busPort, dir, args, child: undefined, id: '', role: i < primaries ? 'primary' : 'replica', alive: false });
    }
    await Promise.all(states.map((s) => launch(s, Math.min(10_000, remaining()))));
    for (const s of states) s.id = String(await command(s.port, 'CLUSTER', 'MYID'));

    if (primaries >= 3) {
      // redis-cli makes the first `primaries` addresses the primaries and splits the slots evenly.
      const cli = spawn(
        'redis-cli',
        [
          '--cluster',
          'create',
          ...states.map((s) => `127.0.0.1:${s.port}`),
          '--cluster-replicas',
          String(replicasPerPrimary),
          '--cluster-yes',
        ],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let out = '';
      cli.stdout.on('data', (d: Buffer) => (out += d.toString()));
      cli.stderr.on('data', (d: Buffer) => (out += d.toString()));
      const timer = setTimeout(() => cli.kill('SIGKILL'), remaining());
      const [code] = (await once(cli, 'exit')) as [number | null];
      clearTimeout(timer);
      if (code !== 0) throw new Error(`redis-cli --cluster create exited with ${code}:\n${out}`);
    } else {
      // The same layout by hand (redis-cli refuses fewer than 3 primaries).
      for (let i = 0; i < states.length; i++) await command(states[i]!.port, 'CLUSTER', 'SET-CONFIG-EPOCH', i + 1);
      for (let p = 0; p < primaries; p++) {
        const first = Math.floor((p * SLOTS) / primaries);
        const last = Math.floor(((p + 1) * SLOTS) / primaries) - 1;
        await command(states[p]!.port, 'CLUSTER', 'ADDSLOTSRANGE', first, last);
      }
      for (const s of states.slice(1)) await command(s.port, 'CLUSTER', 'MEET', '127.0.0.1', states[0]!.port, states[0]!.busPort);
      await waitFor(
        async () => {
          for (const s of states) if (Number((await info(s.port, 'cluster')).cluster_known_nodes) !== total) return false;
          return true;
        },
        remaining(),
        'every node to know every node',
        20,
      );
      for (let i = primaries; i < total; i++) {
        const primary = states[(i - primaries) % primaries]!;
        await waitFor(
          () => command(states[i]!.port, 'CLUSTER', 'REPLICATE', primary.id).then(() => true),
          remaining(),
          `CLUSTER REPLICATE on ${states[i]!.port}`,
          50,
        );
      }
    }

    await waitForStable(remaining());
    // Every node sees every replica as a replica (redis-cli's CLUSTER REPLICATE spreads by gossip).
    await waitFor(
      async () => {
        for (const s of states) {
          const text = String(await command(s.port, 'CLUSTER', 'NODES'));
          const replicas = text.split('\n').filter((l) => (l.split(' ')[2] ?? '').split(',').includes('slave')).length;
          if (replicas !== total - primaries) return false;
        }
        return true;
      },
      remaining(),
      'every node to see every replica',
      20,
    );
    await refreshRoles();
    // Replicas in sync, so a failover has the data.
    await waitFor(
      async () => {
        for (const s of states) {
          if (s.role !== 'replica') continue;
          if ((await info(s.port, 'replication')).master_link_status !== 'up') return false;
        }
        return true;
      },
      remaining(),
      'replicas in sync',
      20,
    );
    const primaryCount = states.filter((s) => s.role === 'primary').length;
    if (primaryCount !== primaries) throw new Error(`expected ${primaries} primaries, the cluster has ${primaryCount}`);
  } catch (err) {
    const logs = states.map((s) => `--- ${s.port}\n${logTail(s)}`).join('\n');
    await stopAll();
    throw new Error(`startRedisCluster failed: ${(err as Error).message}\n${logs}`, { cause: err });
  }
  const startupMs = Date.now() - started;

  const kill9 = async (port: number): Promise<void> => {
    const s = stateOf(port);
    const proc = s.child;
    s.alive = false;
    admins.get(port)?.disconnect();
    admins.delete(port);
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = once(proc, 'exit');
    proc.kill('SIGKILL');
    await within(exited, 5000, `redis-server ${port} to exit after SIGKILL`);
  };

  const migrateSlot = async (
    slot: number,
    toPort: number,
    opts: MigrateOptions = {},
  ): Promise<{ from: number; to: number; keys: number }> => {
    if (!Number.isInteger(slot) || slot < 0 || slot >= SLOTS) throw new Error(`slot must be 0..16383, got ${slot}`);
    const batch = opts.batch ?? 200;
    const until = Date.now() + (opts.timeoutMs ?? 30_000);
    const left = (): number => Math.max(1, until - Date.now());
    const target = stateOf(toPort);
    const from = ownerIn(await slotMap(toPort), slot);
    if (from === undefined) throw new Error(`slot ${slot} has no owner`);
    if (from === toPort) return { from, to: toPort, keys: 0 };
    const source = stateOf(from);
    // Clear what an interrupted earlier move may have left, then open the move.
    await command(toPort, 'CLUSTER', 'SETSLOT', slot, 'STABLE');
    await command(from, 'CLUSTER', 'SETSLOT', slot, 'STABLE');
    await command(toPort, 'CLUSTER', 'SETSLOT', slot, 'IMPORTING', source.id);
    await command(from, 'CLUSTER', 'SETSLOT', slot, 'MIGRATING', target.id);
    let moved = 0;
    const drain = async (): Promise<void> => {
      for (;;) {
        if (Date.now() > until) throw new Error(`migrateSlot ${slot}: keys still on ${from} at the deadline`);
        const keys = (await command(from, 'CLUSTER', 'GETKEYSINSLOT', slot, batch)) as string[];
        if (keys.length === 0) return;
        try {
          const r = await command(from, 'MIGRATE', '127.0.0.1', toPort, '', 0, Math.min(5000, left()), 'REPLACE', 'KEYS', ...keys);
          if (r === 'OK') moved += keys.length;
        } catch (err) {
          // IOERR/timeout: retried by the loop until the deadline; anything else is a bug.
          if (!/IOERR|timeout|TRYAGAIN/i.test((err as Error).message)) throw err;
          await sleep(20);
        }
      }
    };
    await drain();
    if (opts.onMigrating) {
      await opts.onMigrating({ slot, from, to: toPort });
      await drain();
    }
    await command(toPort, 'CLUSTER', 'SETSLOT', slot, 'NODE', target.id);
    // The source refuses while it still holds keys of the slot (written between the last batch and now).
    for (;;) {
      try {
        await command(from, 'CLUSTER', 'SETSLOT', slot, 'NODE', target.id);
        break;
      } catch (err) {
        if (!/still hold keys/i.test((err as Error).message) || Date.now() > until) throw err;
        await drain();
      }
    }
    for (const s of live()) {
      if (s.port === from || s.port === toPort || s.role !== 'primary') continue;
      await command(s.port, 'CLUSTER', 'SETSLOT', slot, 'NODE', target.id).catch(() => {
        /* learnt over the bus anyway */
      });
    }
    await waitFor(
      async () => {
        for (const s of live()) if (ownerIn(await slotMap(s.port), slot) !== toPort) return false;
        return true;
      },
      left(),
      `every node to see slot ${slot} on ${toPort}`,
      20,
    );
    return { from, to: toPort, keys: moved };
  };

  const waitForFailover = async (deadPort: number, timeoutMs = 20_000): Promise<number> => {
    const dead = stateOf(deadPort);
    if (dead.alive) throw new Error(`node ${deadPort} is alive: kill9 it first`);
    if (dead.role !== 'primary') throw new Error(`node ${deadPort} was a replica: nothing to fail over`);
    const replicaPorts = new Set(
      String(await command(live()[0]!.port, 'CLUSTER', 'NODES'))
        .split('\n')
        .filter((l) => l.split(' ')[3] === dead.id)
        .map((l) => Number(l.split(' ')[1]!.split('@')[0]!.split(':')[1])),
    );
    let promoted: number | undefined;
    await waitFor(
      async () => {
        if ((await unstableReason()) !== undefined) return false;
        const owners = new Set((await slotMap()).map((r) => r.primary));
        promoted = [...replicaPorts].find((p) => owners.has(p));
        return promoted !== undefined;
      },
      timeoutMs,
      `a replica of ${deadPort} to take over`,
      25,
    );
    await refreshRoles();
    dead.role = 'replica';
    return promoted!;
  };

  const restart = async (port: number): Promise<void> => {
    const s = stateOf(port);
    if (s.alive) throw new Error(`node ${port} is running`);
    await launch(s, 10_000);
  };

  const shards = async (port?: number): Promise<ClusterShard[]> => {
    const target = port ?? live()[0]?.port;
    if (target === undefined) throw new Error('no live cluster node');
    return parseClusterShards(await command(target, 'CLUSTER', 'SHARDS'));
  };

  return {
    nodes: states.map((s) => ({
      get port() {
        return s.port;
      },
      get busPort() {
        return s.busPort;
      },
      get pid() {
        return s.child?.pid ?? -1;
      },
      get id() {
        return s.id;
      },
      get role() {
        return s.role;
      },
      get alive() {
        return s.alive;
      },
      get dir() {
        return s.dir;
      },
    })),
    seeds: states.map((s) => `127.0.0.1:${s.port}`).join(','),
    seedList: states.map((s) => ({ host: '127.0.0.1', port: s.port })),
    startupMs,
    async slotOwner(slot) {
      const owner = ownerIn(await slotMap(), slot);
      if (owner === undefined) throw new Error(`slot ${slot} has no owner`);
      return owner;
    },
    slotMap,
    shards,
    async primaryPorts() {
      const ports: number[] = [];
      for (const r of await slotMap()) if (!ports.includes(r.primary)) ports.push(r.primary);
      return ports;
    },
    migrateSlot,
    kill9,
    waitForFailover,
    restart,
    waitForStable,
    refreshRoles,
    command,
    async close() {
      if (closed) return;
      closed = true;
      await stopAll();
    },
  };
}

/** `promise`, or a rejection naming `what` after `ms` (the timer never holds the process open). */
async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** `CLUSTER SHARDS` (RESP2: flat key/value arrays) → objects. */
export function parseClusterShards(reply: unknown): ClusterShard[] {
  const asMap = (flat: unknown): Map<string, unknown> => {
    const m = new Map<string, unknown>();
    const a = flat as unknown[];
    for (let i = 0; i + 1 < a.length; i += 2) m.set(String(a[i]), a[i + 1]);
    return m;
  };
  return (reply as unknown[])
    .map((entry) => {
      const m = asMap(entry);
      const flatSlots = (m.get('slots') as unknown[]).map(Number);
      const slots: Array<[number, number]> = [];
      for (let i = 0; i + 1 < flatSlots.length; i += 2) slots.push([flatSlots[i]!, flatSlots[i + 1]!]);
      const nodes = (m.get('nodes') as unknown[]).map((n) => {
        const nm = asMap(n);
        return {
          id: String(nm.get('id')),
          port: Number(nm.get('port')),
          role: String(nm.get('role')) as 'master' | 'replica',
          health: String(nm.get('health')),
          replicationOffset: Number(nm.get('replication-offset')),
        };
      });
      return { slots, nodes };
    })
    .sort((a, b) => (a.slots[0]?.[0] ?? SLOTS) - (b.slots[0]?.[0] ?? SLOTS));
}
