import { readFileSync } from 'node:fs';
import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import { StartupError } from '../errors.js';

/** A host and port, e.g. one Sentinel. */
export interface RedisAddress {
  host: string;
  port: number;
}

/**
 * Where and how every Redis connection of a process connects (docs/configuration.md#redis-connection):
 * one Redis at `url`, or the primary that `sentinels` name for `sentinelName`.
 */
export interface RedisConnectionConfig {
  /**
   * `redis://[user:password@]host:port[/db]`, `rediss://…` for TLS. With `sentinels` only the
   * user, password, db and scheme count (they apply to the data nodes); host and port are ignored.
   */
  url?: string;
  /** Sentinel addresses: when set, the primary is found (and followed) through them. */
  sentinels?: RedisAddress[];
  /**
   * Seed nodes of a Redis Cluster: when set, the slot map is read from them (the URL then only
   * gives user, password and TLS, as with Sentinel).
   */
  clusterNodes?: RedisAddress[];
  /** The master group name Sentinel monitors (default `mymaster`). */
  sentinelName?: string;
  /** Password of the sentinels themselves (`requirepass` in sentinel.conf); never logged. */
  sentinelPassword?: string;
  /** PEM CA bundle trusted for TLS to Redis (instead of the system CAs). */
  ca?: string | Buffer;
  /** The file `ca` was read from (only for messages). */
  caFile?: string;
}

/** What the option table gives (a subset of Config, so tests can pass plain objects). */
export interface RedisConnectionValues {
  redisUrl: string;
  redisSentinels: readonly string[];
  redisClusterNodes?: readonly string[];
  redisSentinelName: string;
  redisSentinelPassword: string;
  redisCaFile: string;
}

/** This process uses Redis: `--redis-url`, `--redis-sentinels` or `--redis-cluster-nodes` is set. */
export function usesRedis(
  config: Pick<RedisConnectionValues, 'redisUrl' | 'redisSentinels'> & { redisClusterNodes?: readonly string[] },
): boolean {
  return config.redisUrl !== '' || config.redisSentinels.length > 0 || (config.redisClusterNodes?.length ?? 0) > 0;
}

/** This process runs on a Redis Cluster (`--redis-cluster-nodes`). */
export function usesRedisCluster(config: { redisClusterNodes?: readonly string[] }): boolean {
  return (config.redisClusterNodes?.length ?? 0) > 0;
}

/** Parses `host:port` entries (`[v6]:port` for IPv6): the addresses, and one message per bad entry. */
export function parseSentinels(entries: readonly string[], option = '--redis-sentinels'): { sentinels: RedisAddress[]; errors: string[] } {
  const sentinels: RedisAddress[] = [];
  const errors: string[] = [];
  for (const entry of entries) {
    const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s[\]/]+)):(\d{1,5})$/.exec(entry);
    const port = Number(m?.[3]);
    if (!m || port < 1 || port > 65535) {
      errors.push(`${option}: ${JSON.stringify(entry)} is not host:port (port 1-65535; IPv6 as [addr]:port)`);
      continue;
    }
    sentinels.push({ host: m[1] ?? m[2]!, port });
  }
  return { sentinels, errors };
}

interface ParsedUrl {
  tls: boolean;
  options: RedisOptions;
}

/**
 * A Redis URL as ioredis reads it (`redis://`, `rediss://`, `host:port`, a Unix socket path,
 * query parameters as options), so a URL that worked before keeps working. Throws on a URL that
 * cannot be parsed.
 */
function parseRedisUrl(url: string): ParsedUrl {
  const options: Record<string, unknown> = {};
  const scheme = /^(rediss?):\/\//i.exec(url)?.[1]?.toLowerCase();
  if (!scheme && url.startsWith('/') && !url.startsWith('//')) {
    const q = url.indexOf('?');
    options.path = q < 0 ? url : url.slice(0, q);
    if (q >= 0) for (const [k, v] of new URLSearchParams(url.slice(q + 1))) options[k] = queryValue(k, v);
    return { tls: false, options: options };
  }
  const parsed = new URL(scheme ? url : url.startsWith('//') ? `redis:${url}` : `redis://${url}`);
  for (const [k, v] of parsed.searchParams) options[k] = queryValue(k, v);
  if (parsed.username || parsed.password) {
    options.username = decodeURIComponent(parsed.username);
    options.password = decodeURIComponent(parsed.password);
  }
  if (parsed.pathname.length > 1) {
    if (scheme || url.startsWith('//')) options.db = parsed.pathname.slice(1);
    else options.path = parsed.pathname;
  }
  if (parsed.hostname) options.host = parsed.hostname.replace(/^\[|\]$/g, '');
  if (parsed.port) options.port = Number(parsed.port);
  if (typeof options.db === 'string') {
    if (!/^\d+$/.test(options.db)) throw new Error(`database ${JSON.stringify(options.db)} is not a number`);
    options.db = Number(options.db);
  }
  return { tls: scheme === 'rediss', options: options };
}

function queryValue(key: string, value: string): unknown {
  if (key === 'family' && /^\d+$/.test(value)) return Number(value);
  return value;
}

/** A Redis URL with its password replaced by `***`, for a log line or a message. */
export function redactRedisUrl(url: string): string {
  const start = url.indexOf('//') + 2;
  const at = url.lastIndexOf('@');
  if (start < 2 || at < start) return url;
  const colon = url.indexOf(':', start);
  return colon >= 0 && colon < at ? `${url.slice(0, colon + 1)}***${url.slice(at)}` : url;
}

/**
 * The Redis problems of a parsed configuration, one message each (an empty list when fine):
 * bad Sentinel entries, an unparsable URL, an unreadable or empty CA file, a CA file with no
 * TLS to use it.
 */
export function redisConfigErrors(values: RedisConnectionValues): string[] {
  const errors = parseSentinels(values.redisSentinels).errors;
  const clusterNodes = values.redisClusterNodes ?? [];
  errors.push(...parseSentinels(clusterNodes, '--redis-cluster-nodes').errors);
  const partitions = (values as { redisPartitions?: number }).redisPartitions ?? 0;
  if (partitions > 1 && clusterNodes.length === 0)
    errors.push(
      '--redis-partitions: more than 1 needs a Redis Cluster (--redis-cluster-nodes); a standalone or Sentinel Redis has one partition',
    );
  if (clusterNodes.length > 0 && values.redisSentinels.length > 0)
    errors.push('--redis-cluster-nodes: not with --redis-sentinels (a Redis Cluster fails over by itself; give one or the other)');
  let tls = false;
  if (values.redisUrl !== '') {
    try {
      tls = parseRedisUrl(values.redisUrl).tls;
    } catch (err) {
      errors.push(`--redis-url: ${JSON.stringify(redactRedisUrl(values.redisUrl))} is not a Redis URL (${(err as Error).message})`);
    }
  }
  if (values.redisSentinels.length > 0 && values.redisSentinelName.trim() === '')
    errors.push('--redis-sentinel-name: empty (the master group name Sentinel monitors, e.g. mymaster)');
  if (values.redisCaFile !== '') {
    try {
      readCaFile(values.redisCaFile);
      if (!tls)
        errors.push(
          '--redis-ca-file: needs TLS to Redis, i.e. a rediss:// --redis-url (with --redis-sentinels too: rediss://[:password@]any/db)',
        );
    } catch (err) {
      errors.push((err as Error).message);
    }
  }
  return errors;
}

/** Reads a PEM CA bundle; throws StartupError CONFIG_INVALID naming the file. */
function readCaFile(file: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new StartupError(
      'CONFIG_INVALID',
      `--redis-ca-file: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`,
    );
  }
  if (!text.includes('-----BEGIN CERTIFICATE-----'))
    throw new StartupError('CONFIG_INVALID', `--redis-ca-file: ${file} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`);
  return text;
}

/**
 * The connection settings of a process from its configuration (reads `--redis-ca-file`; throws
 * StartupError CONFIG_INVALID when it cannot). Call only when {@link usesRedis}.
 */
export function redisConnectionConfig(config: RedisConnectionValues): RedisConnectionConfig {
  const out: RedisConnectionConfig = {};
  if (config.redisUrl !== '') out.url = config.redisUrl;
  const { sentinels, errors } = parseSentinels(config.redisSentinels);
  if (errors.length > 0) throw new StartupError('CONFIG_INVALID', errors.join('; '));
  const cluster = parseSentinels(config.redisClusterNodes ?? [], '--redis-cluster-nodes');
  if (cluster.errors.length > 0) throw new StartupError('CONFIG_INVALID', cluster.errors.join('; '));
  if (cluster.sentinels.length > 0) out.clusterNodes = cluster.sentinels;
  if (sentinels.length > 0) {
    out.sentinels = sentinels;
    out.sentinelName = config.redisSentinelName;
    if (config.redisSentinelPassword !== '') out.sentinelPassword = config.redisSentinelPassword;
  }
  if (config.redisCaFile !== '') {
    out.ca = readCaFile(config.redisCaFile);
    out.caFile = config.redisCaFile;
  }
  return out;
}

/** `{ url }` for a URL string (the older option shape), the config itself otherwise. */
export function toConnectionConfig(connection: RedisConnectionConfig | string): RedisConnectionConfig {
  return typeof connection === 'string' ? { url: connection } : connection;
}

/** How long a Sentinel may take to answer one command before the next one is asked. */
const SENTINEL_COMMAND_TIMEOUT_MS = 2000;

/**
 * The ioredis options of one connection (add the connection's own, e.g. `lazyConnect`):
 * - a URL: host, port, user, password, db; `rediss://` = TLS, verified against `ca` when given;
 * - with `sentinels`: ioredis's Sentinel connector asks them for the primary of `sentinelName`
 *   on every (re)connect, checks the node's role, and (`failoverDetector`) drops the
 *   connection as soon as a sentinel announces `+switch-master`; the URL's user, password, db
 *   and TLS apply to the data nodes, the sentinels are reached in plain TCP;
 * - either way an error starting with `READONLY` (the node was demoted to a replica under us)
 *   drops the connection, and the reconnect finds the primary.
 */
export function redisConnectionOptions(connection: RedisConnectionConfig): RedisOptions {
  const parsed = connection.url ? parseRedisUrl(connection.url) : { tls: false, options: {} as RedisOptions };
  const options: RedisOptions = { ...parsed.options };
  if (parsed.tls) options.tls = connection.ca !== undefined ? { ca: connection.ca } : {};
  options.reconnectOnError = (err: Error) => err.message.startsWith('READONLY');
  if (connection.sentinels && connection.sentinels.length > 0) {
    delete options.host;
    delete options.port;
    delete options.path;
    Object.assign(options, {
      sentinels: connection.sentinels.map((s) => ({ host: s.host, port: s.port })),
      name: connection.sentinelName || 'mymaster',
      role: 'master',
      failoverDetector: true,
      enableTLSForSentinelMode: parsed.tls,
      sentinelCommandTimeout: SENTINEL_COMMAND_TIMEOUT_MS,
      // The failover detector's own connections to the sentinels: retried every 10 s, not every minute.
      sentinelReconnectStrategy: () => 10_000,
      ...(connection.sentinelPassword ? { sentinelPassword: connection.sentinelPassword } : {}),
    } satisfies RedisOptions);
  }
  return options;
}

/**
 * The options of a broker's own connections (a standalone broker's, a cluster edge's per-node
 * subscribers). Never queue: a command while Redis is away fails at once (publish answers 503
 * instead of hanging and being applied late); one sent before a disconnect fails at the
 * disconnect. Subscriptions are re-established by the broker, which then catches up from history.
 */
export const BROKER_CLIENT_OPTIONS: Readonly<RedisOptions> = {
  protocol: 2,
  lazyConnect: true,
  enableOfflineQueue: false,
  maxRetriesPerRequest: 0,
  autoResendUnfulfilledCommands: false,
  autoResubscribe: false,
  retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 6), 2000) + Math.floor(Math.random() * 100),
};

/** Closes a connection: QUIT when it is up (disconnecting should that fail), else disconnects. */
export async function closeRedis(conn: Redis | Cluster): Promise<void> {
  if (conn.status === 'ready') await conn.quit().catch(() => conn.disconnect());
  else conn.disconnect();
}

/**
 * A new ioredis client on `connection` with `extra` options on top (see
 * {@link redisConnectionOptions}). With Sentinel, a client that ended (after `quit()` too)
 * also closes its failover detector's connections to the sentinels: ioredis 6.0 leaves them
 * open, reconnecting for ever, unless `disconnect()` is called.
 */
export function createRedisClient(connection: RedisConnectionConfig, extra: RedisOptions = {}): Redis {
  const client = new Redis({ ...redisConnectionOptions(connection), ...extra });
  if (connection.sentinels && connection.sentinels.length > 0) {
    client.on('end', () => client.disconnect());
    // The detector's sentinel connections have no error listener in ioredis 6.0, so every failed
    // reconnect to a sentinel that is down would print an "[ioredis] Unhandled error event" line
    // on stderr. Reached through private fields: when they change, this does nothing.
    // The detector is made when the data node's socket connects, just before 'connect' is emitted.
    const quiet = (): void => {
      const detector = (client as unknown as { connector?: { failoverDetector?: { sentinels?: { client?: Redis }[] } } }).connector
        ?.failoverDetector;
      for (const s of detector?.sentinels ?? [])
        if (s.client && s.client.listenerCount('error') === 0) s.client.on('error', () => undefined);
    };
    client.on('connect', quiet);
    client.on('failoverSubscribed', quiet);
    // The detector watches for the connection it was made with, but ioredis 6.0 keeps it after
    // that connection closed, until the next one connects. Should it fire meanwhile — the
    // +switch-master of the very failover the client is reconnecting through, or a later
    // sentinel's echo of it — while the client asks a sentinel for the primary, the connector
    // aborts that attempt ("Connection is closed.") and the client ends for good: no more
    // reconnects, with no sign but the 'end' (an edge's subscriber that did so never saw the new
    // epoch). So it goes with its connection: a reconnect asks the sentinels for the primary
    // anyway, and the next connection makes its own detector.
    client.on('close', () => {
      const connector = (client as unknown as { connector?: { failoverDetector?: { cleanup?: () => void } | null } }).connector;
      connector?.failoverDetector?.cleanup?.();
    });
  }
  return client;
}

/**
 * The options of a connection to one node of a Redis Cluster (a per-node subscriber, or a node
 * the slot map names): user, password and TLS from the URL, host and port given. A node that
 * answers READONLY is not reconnected here: the caller follows the slot map instead.
 */
export function redisNodeOptions(connection: RedisConnectionConfig, node: RedisAddress, extra: RedisOptions = {}): RedisOptions {
  const options = redisConnectionOptions({ ...connection, sentinels: undefined });
  delete options.path;
  delete options.db;
  delete options.reconnectOnError;
  return { ...options, host: node.host, port: node.port, ...extra };
}

/** A plain ioredis client to one node of a Redis Cluster (see {@link redisNodeOptions}). */
export function createRedisNodeClient(connection: RedisConnectionConfig, node: RedisAddress, extra: RedisOptions = {}): Redis {
  return new Redis(redisNodeOptions(connection, node, extra));
}

/**
 * An ioredis `Cluster` client on the seed nodes of `connection` (commands are routed by key slot,
 * MOVED and ASK followed). `redisOptions` apply to every node connection on top of the URL's
 * user, password and TLS.
 */
export function createRedisClusterClient(
  connection: RedisConnectionConfig,
  redisOptions: RedisOptions = {},
  extra: ClusterOptions = {},
): Cluster {
  const nodes = (connection.clusterNodes ?? []).map((n) => ({ host: n.host, port: n.port }));
  const base = redisNodeOptions(connection, nodes[0] ?? { host: '127.0.0.1', port: 6379 });
  delete base.host;
  delete base.port;
  return new Cluster(nodes, {
    redisOptions: { ...base, ...redisOptions },
    slotsRefreshTimeout: 2000,
    slotsRefreshInterval: 5000,
    retryDelayOnTryAgain: 50,
    retryDelayOnClusterDown: 100,
    ...extra,
  });
}

/** What a log line may say about a connection: mode, addresses, TLS, db; never a password. */
export function describeRedisConnection(connection: RedisConnectionConfig): Record<string, unknown> {
  let parsed: ParsedUrl = { tls: false, options: {} };
  try {
    if (connection.url) parsed = parseRedisUrl(connection.url);
  } catch {
    /* described as given (redacted) */
  }
  const tls = parsed.tls;
  const db = parsed.options.db ?? 0;
  if (connection.clusterNodes && connection.clusterNodes.length > 0)
    return { mode: 'cluster', nodes: connection.clusterNodes.map(formatAddress), tls };
  if (connection.sentinels && connection.sentinels.length > 0)
    return {
      mode: 'sentinel',
      sentinels: connection.sentinels.map(formatAddress),
      name: connection.sentinelName || 'mymaster',
      tls,
      db,
    };
  return { mode: 'standalone', url: redactRedisUrl(connection.url ?? ''), tls, db };
}

/** `host:port`, `[v6]:port`. */
export function formatAddress(a: RedisAddress): string {
  return a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}

/** Node's codes for a TLS peer certificate that cannot be verified. */
const UNTRUSTED_CERT_CODES = new Set([
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'CERT_UNTRUSTED',
  'CERT_SIGNATURE_FAILURE',
]);

/**
 * A hint for the log line of a connection error a user can fix by configuration (an untrusted
 * or mismatched TLS certificate, TLS spoken to a plain port), or nothing.
 */
export function redisErrorHint(err: unknown): { hint?: string } {
  const code = (err as { code?: unknown } | undefined)?.code;
  if (typeof code === 'string' && UNTRUSTED_CERT_CODES.has(code))
    return { hint: "Redis's TLS certificate is not trusted: give its CA with --redis-ca-file" };
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID')
    return { hint: "Redis's TLS certificate does not name the host connected to (subjectAltName)" };
  if (typeof code === 'string' && code.startsWith('ERR_SSL_'))
    return { hint: 'TLS handshake failed: is the Redis port a TLS port (rediss://) and the CA right?' };
  return {};
}
