/**
 * The option table: one row per option. It drives yargs (flags, `CYCLONE_SSE_*` environment
 * variables, config file), `--help`, validation and the generated docs/configuration.md.
 */
export type Component = 'edge' | 'publisher' | 'all-in-one';

export interface OptionSpec {
  type: 'string' | 'number' | 'boolean' | 'array';
  default: string | number | boolean | string[] | undefined;
  describe: string;
  /** Components that use the option. */
  for: readonly Component[];
  group: string;
  alias?: string | string[];
  choices?: readonly string[];
  /** Inclusive bounds for numbers. */
  min?: number;
  max?: number;
  /** Accepted for the seed's command lines but mapped onto another option. */
  seed?: boolean;
}

const ALL: readonly Component[] = ['edge', 'publisher', 'all-in-one'];
const EDGE: readonly Component[] = ['edge', 'all-in-one'];
const PUB: readonly Component[] = ['publisher', 'all-in-one'];

export const OPTIONS = {
  port: {
    type: 'number',
    default: 8888,
    describe: 'HTTP port (0 picks a free port)',
    for: ALL,
    group: 'Server',
    alias: 'p',
    min: 0,
    max: 65535,
  },
  listen: {
    type: 'string',
    default: '127.0.0.1',
    describe: 'interface to listen on (0.0.0.0 for all)',
    for: ALL,
    group: 'Server',
    alias: 'l',
  },
  'metrics-port': {
    type: 'number',
    default: 9090,
    describe: 'internal port for /metrics, /livez, /readyz (0 picks a free port, -1 disables)',
    for: ALL,
    group: 'Server',
    min: -1,
    max: 65535,
  },
  'metrics-listen': { type: 'string', default: '127.0.0.1', describe: 'interface for the internal port', for: ALL, group: 'Server' },
  'sse-paths': { type: 'array', default: ['/', '/sse'], describe: 'paths that open an event stream', for: EDGE, group: 'Subscribers' },
  'drain-seconds': {
    type: 'number',
    default: 5,
    describe: 'on SIGTERM, seconds over which open streams are ended (jittered)',
    for: ALL,
    group: 'Server',
    min: 0,
    max: 3600,
  },
  'log-level': {
    type: 'string',
    default: 'info',
    describe: 'log level',
    for: ALL,
    group: 'Server',
    choices: ['error', 'warn', 'info', 'debug'],
  },
  'config-file': {
    type: 'string',
    default: '',
    describe:
      "options file in the seed's cyclone-sse.conf style: one --flag=value per line, blank lines and # comments ignored; command-line flags win",
    for: ALL,
    group: 'Server',
  },
  demo: {
    type: 'boolean',
    default: true,
    describe: 'serve the live demo page at /demo (--demo false turns it off; /client.js is always served)',
    for: EDGE,
    group: 'Server',
  },

  'redis-url': {
    type: 'string',
    default: '',
    describe:
      'Redis URL (redis://[user:password@]host:port/db; rediss:// = TLS); empty = in-memory broker (all-in-one only). With --redis-sentinels its host:port is ignored: it then only gives user, password, db and TLS (rediss://) for the data nodes',
    for: ALL,
    group: 'Redis',
  },
  'redis-sentinels': {
    type: 'array',
    default: [],
    describe:
      'Redis Sentinel addresses host:port,host:port,… (IPv6 as [addr]:port): the primary of --redis-sentinel-name is asked from them and followed through failovers; empty = no Sentinel',
    for: ALL,
    group: 'Redis',
  },
  'redis-sentinel-name': {
    type: 'string',
    default: 'mymaster',
    describe: 'master group name the sentinels monitor (the NAME of sentinel monitor NAME host port quorum)',
    for: ALL,
    group: 'Redis',
  },
  'redis-sentinel-password': {
    type: 'string',
    default: '',
    describe: 'password of the sentinels themselves (their requirepass; the data nodes take theirs from --redis-url); never logged',
    for: ALL,
    group: 'Redis',
  },
  'redis-cluster-nodes': {
    type: 'array',
    default: [],
    describe:
      'seed nodes of a Redis Cluster host:port,host:port,… (IPv6 as [addr]:port): the slot map is read from them and followed through migrations and failovers (docs/architecture.md#redis-cluster); password and TLS come from --redis-url (rediss://[:password@]any); empty = no cluster',
    for: ALL,
    group: 'Redis',
  },
  'redis-partitions': {
    type: 'number',
    default: 0,
    describe:
      'partitions of the sequence (each its own order, epoch and history, in one hash slot; docs/delivery.md#partitions-on-a-redis-cluster): 0 = 16 on a Redis Cluster, 1 otherwise. Fixed for a deployment: a change resets every client once',
    for: ALL,
    group: 'Redis',
    min: 0,
    max: 16384,
  },
  'redis-ca-file': {
    type: 'string',
    default: '',
    describe: 'PEM CA bundle trusted for TLS to Redis (rediss://) instead of the system CAs; read at startup',
    for: ALL,
    group: 'Redis',
  },
  'redis-prefix': { type: 'string', default: 'cyclone-sse', describe: 'prefix of every Redis key and channel', for: ALL, group: 'Redis' },
  'redis-wait-replicas': {
    type: 'number',
    default: 0,
    describe:
      'after each publish, WAIT for this many Redis replicas (on a Redis Cluster: of each shard the publish wrote to) before answering 200 and before subscribers see it, so a 200 survives a failover (docs/delivery.md); 0 = off',
    for: PUB,
    group: 'Redis',
    min: 0,
    max: 16,
  },
  'redis-wait-timeout': {
    type: 'number',
    default: 1000,
    describe: 'ms a WAIT for --redis-wait-replicas may take; past it the publish answers 503 REPLICATION_TIMEOUT',
    for: PUB,
    group: 'Redis',
    min: 1,
    max: 60000,
  },

  retry: {
    type: 'number',
    default: 2000,
    describe: 'reconnect delay sent to clients as retry: (ms); each stream gets its own value, spread by --retry-jitter',
    for: EDGE,
    group: 'Subscribers',
    min: 0,
    max: 600000,
  },
  'retry-jitter': {
    type: 'number',
    default: 0.5,
    describe:
      'spread of the retry: delay: each stream gets a delay drawn uniformly from [retry, retry × (1 + jitter)], so the clients of an edge that dies do not all reconnect in the same instant; 0 = exactly --retry on every stream (the drain spreads its hints over at least [retry, 2 × retry])',
    for: EDGE,
    group: 'Subscribers',
    min: 0,
    max: 10,
  },
  'coalesce-max-delay': {
    type: 'number',
    default: 50,
    describe:
      "longest wait (ms) of a flush to subscribers while flushes come back to back, so that their messages share one write per connection; the wait is the last flush's duration up to this bound; a lone message is never delayed; 0 = always flush at the end of the event-loop turn",
    for: EDGE,
    group: 'Subscribers',
    min: 0,
    max: 100,
  },
  heartbeat: {
    type: 'number',
    default: 15,
    describe: 'seconds without writes before a heartbeat comment',
    for: EDGE,
    group: 'Subscribers',
    min: 0.05,
    max: 3600,
  },
  'max-channels-per-connection': {
    type: 'number',
    default: 64,
    describe: 'channels one connection may subscribe to',
    for: EDGE,
    group: 'Subscribers',
    min: 1,
    max: 10000,
  },
  'max-channel-length': {
    type: 'number',
    default: 255,
    describe: 'longest channel name in UTF-8 bytes',
    for: ALL,
    group: 'Subscribers',
    min: 1,
    max: 4096,
  },
  'max-query-length': {
    type: 'number',
    default: 16384,
    describe: 'longest subscribe query string in bytes (414 past it)',
    for: EDGE,
    group: 'Subscribers',
    min: 256,
    max: 1048576,
  },
  'max-queued-bytes': {
    type: 'number',
    default: 1048576,
    describe: 'bytes queued for one slow connection before it is closed as slow',
    for: EDGE,
    group: 'Subscribers',
    min: 1024,
  },
  'max-queued-bytes-total': {
    type: 'number',
    default: 268435456,
    describe:
      'bytes waiting for all connections of the edge together (what their writes left over at backpressure, their queues, what uWS buffers for them); past it the connections holding the most are closed as slow (they resume) until the total is under 7/8 of it (0 = no budget)',
    for: EDGE,
    group: 'Subscribers',
    min: 0,
  },
  'max-connections': {
    type: 'number',
    default: 0,
    describe: 'open streams per edge (0 = unlimited); past it new streams end at once with a retry: hint',
    for: EDGE,
    group: 'Subscribers',
    min: 0,
  },
  'max-connections-per-ip': {
    type: 'number',
    default: 1000,
    describe:
      'open streams per client IP per edge (0 = unlimited); past it new streams end at once with a retry: hint and the IP is logged once. Behind a proxy set --trusted-proxies, or every client shares the proxy address',
    for: EDGE,
    group: 'Subscribers',
    min: 0,
  },
  'trusted-proxies': {
    type: 'array',
    default: [],
    describe: 'proxy addresses or CIDRs whose X-Forwarded-For is trusted for the client IP',
    for: ALL,
    group: 'Subscribers',
  },
  'long-poll-timeout': {
    type: 'number',
    default: 30,
    describe: 'seconds a long-poll request waits for a message',
    for: EDGE,
    group: 'Subscribers',
    min: 0.05,
    max: 600,
  },
  'long-poll-max-events': {
    type: 'number',
    default: 100,
    describe: 'events one long-poll response carries at most',
    for: EDGE,
    group: 'Subscribers',
    min: 1,
    max: 100000,
  },
  'max-replay-bytes': {
    type: 'number',
    default: 67108864,
    describe:
      'frame bytes one resume replays at most; past it the client gets event: reset (reason replay_limit) for the channels not yet replayed and goes live',
    for: EDGE,
    group: 'Subscribers',
    min: 1024,
    max: 1073741824,
  },
  'max-stream-seconds': {
    type: 'number',
    default: 0,
    describe:
      'every stream ends after this many seconds (jittered down to 80 %) with a retry: line; the client resumes at once (0 = never)',
    for: EDGE,
    group: 'Subscribers',
    min: 0,
    max: 604800,
  },
  'cors-origins': {
    type: 'array',
    default: ['*'],
    describe: 'allowed origins for CORS (* = any, anonymous)',
    for: ALL,
    group: 'Subscribers',
  },

  'subscriber-jwt-key': {
    type: 'string',
    default: '',
    describe: 'subscriber token key: an HMAC secret, or a path to a PEM public key (RS*/ES*/EdDSA); empty = no subscriber tokens',
    for: EDGE,
    group: 'Security',
  },
  'subscriber-auth': {
    type: 'string',
    default: 'off',
    describe: 'which channels need a subscriber token: off, private (those matching --private-channels) or all',
    for: EDGE,
    group: 'Security',
    choices: ['off', 'private', 'all'],
  },
  'private-channels': {
    type: 'array',
    default: ['private-*'],
    describe: 'channel patterns that need a token when --subscriber-auth is private (* matches one or more characters)',
    for: EDGE,
    group: 'Security',
  },
  'token-cookie': {
    type: 'string',
    default: 'cyclone_sse_token',
    describe: 'cookie that carries a subscriber token',
    for: EDGE,
    group: 'Security',
  },
  'token-expiry-margin': {
    type: 'number',
    default: 5,
    describe: 'seconds before a subscriber token expires at which its stream ends with event: token-expired',
    for: EDGE,
    group: 'Security',
    min: 0,
  },
  'publisher-jwt-key': {
    type: 'string',
    default: '',
    describe: 'publisher token key (HMAC secret or PEM public key path); tokens list the channel patterns they may publish to',
    for: PUB,
    group: 'Security',
  },
  'jwt-algorithms': {
    type: 'array',
    default: ['HS256', 'HS384', 'HS512', 'RS256', 'ES256', 'EdDSA'],
    describe: 'accepted JWT algorithms (the key type narrows them further; none is never accepted)',
    for: ALL,
    group: 'Security',
  },
  'jwt-audience': { type: 'string', default: '', describe: 'required aud claim (empty = not checked)', for: ALL, group: 'Security' },
  'jwt-issuer': { type: 'string', default: '', describe: 'required iss claim (empty = not checked)', for: ALL, group: 'Security' },
  'allow-tokens-without-exp': {
    type: 'boolean',
    default: false,
    describe:
      'accept subscriber and publisher JWTs without an exp claim (refused by default: such a stream never has to end, such a token never expires)',
    for: ALL,
    group: 'Security',
  },
  stats: {
    type: 'string',
    default: 'public',
    describe:
      'GET /stats: public (per-edge list on the public port, channels that need a token hidden from anonymous requests; also on the internal port), internal (internal port only), off (404)',
    for: EDGE,
    group: 'Subscribers',
    choices: ['public', 'internal', 'off'],
  },
  'stats-page-size': {
    type: 'number',
    default: 1000,
    describe: 'most [channel, count] entries one /stats answer carries; more are paged with ?after=<last channel> (Link: rel="next")',
    for: EDGE,
    group: 'Subscribers',
    min: 1,
    max: 100000,
  },
  'max-json-depth': {
    type: 'number',
    default: 32,
    describe: 'deepest nesting accepted in a JSON publish body',
    for: PUB,
    group: 'Publishing',
    min: 1,
    max: 1000,
  },
  'use-ssl': {
    type: 'boolean',
    default: false,
    describe: 'also serve HTTPS (same routes, same hub) on --ssl-listen:--ssl-port (seed flag; 0/1 accepted)',
    for: EDGE,
    group: 'TLS',
  },
  'ssl-port': { type: 'number', default: 8443, describe: 'HTTPS port', for: EDGE, group: 'TLS', min: 0, max: 65535 },
  'ssl-listen': { type: 'string', default: '127.0.0.1', describe: 'HTTPS interface', for: EDGE, group: 'TLS' },
  'ssl-cert': { type: 'string', default: 'server.crt', describe: 'PEM certificate (chain) file', for: EDGE, group: 'TLS' },
  'ssl-key': { type: 'string', default: 'server.key', describe: 'PEM private key file', for: EDGE, group: 'TLS' },
  'history-size': {
    type: 'number',
    default: 1000,
    describe: 'messages kept per channel for resume',
    for: ALL,
    group: 'History',
    min: 1,
    max: 1000000,
  },
  'history-ttl': {
    type: 'number',
    default: 3600,
    describe: 'seconds a channel history lives after its last publish',
    for: ALL,
    group: 'History',
    min: 1,
  },
  'idempotency-ttl': {
    type: 'number',
    default: 300,
    describe: 'seconds a publish idempotency key is remembered',
    for: PUB,
    group: 'History',
    min: 1,
  },
  'history-max-bytes-per-channel': {
    type: 'number',
    default: 8388608,
    describe: 'bytes of frames one channel history keeps (oldest dropped first; a resume past them gets reset)',
    for: PUB,
    group: 'History',
    min: 1024,
  },
  'history-max-bytes': {
    type: 'number',
    default: 268435456,
    describe:
      'bytes all channel histories keep together (oldest of the least recently published channel dropped first; ≥ --max-publish-fanout-bytes)',
    for: PUB,
    group: 'History',
    min: 1024,
  },
  'idempotency-max-keys': {
    type: 'number',
    default: 100000,
    describe: 'idempotency records the in-memory broker keeps (oldest evicted first; Redis records are bounded by --idempotency-ttl)',
    for: PUB,
    group: 'History',
    min: 1,
  },

  'http-secret': {
    type: 'string',
    default: '',
    describe: 'secret required to publish (Authorization: Bearer or the key field); empty = open',
    for: PUB,
    group: 'Publishing',
  },
  'max-body': {
    type: 'number',
    default: 1048576,
    describe: 'largest publish body in bytes (413 past it)',
    for: PUB,
    group: 'Publishing',
    min: 1,
  },
  'max-batch': { type: 'number', default: 1000, describe: 'messages one JSON batch may carry', for: PUB, group: 'Publishing', min: 1 },
  'max-channels-per-publish': {
    type: 'number',
    default: 64,
    describe: 'channels one published message may name, counted as written (duplicates are then removed); 400 TOO_MANY_CHANNELS past it',
    for: PUB,
    group: 'Publishing',
    min: 1,
    max: 10000,
  },
  'max-publish-fanout-bytes': {
    type: 'number',
    default: 8388608,
    describe:
      'bytes one publish request may put into history and pub/sub: the sum of frame bytes × channels over every message of the request (a whole batch); 413 FANOUT_TOO_LARGE past it',
    for: PUB,
    group: 'Publishing',
    min: 1024,
  },

  'amqp-url': {
    type: 'string',
    default: '',
    describe: 'AMQP URL to consume publishes from (amqp://user:pass@host:5672/vhost); empty = no AMQP input',
    for: ['publisher'],
    group: 'AMQP input',
  },
  'amqp-exchange': {
    type: 'string',
    default: 'cyclone-sse',
    describe: 'exchange the publish queue is bound to (routing key = channel)',
    for: ['publisher'],
    group: 'AMQP input',
  },
  'amqp-exchange-type': {
    type: 'string',
    default: 'topic',
    describe: 'type used when the exchange has to be declared',
    for: ['publisher'],
    group: 'AMQP input',
    choices: ['topic', 'direct', 'fanout'],
  },
  'amqp-queue': {
    type: 'string',
    default: 'cyclone-sse.publish',
    describe: 'durable single-active-consumer queue the publisher consumes',
    for: ['publisher'],
    group: 'AMQP input',
  },
  'amqp-prefetch': {
    type: 'number',
    default: 100,
    describe: 'unacknowledged deliveries in flight',
    for: ['publisher'],
    group: 'AMQP input',
    min: 1,
    max: 65535,
  },
  'amqp-dead-letter-exchange': {
    type: 'string',
    default: 'cyclone-sse.dead-letter',
    describe: 'fanout exchange that receives rejected (poison) messages',
    for: ['publisher'],
    group: 'AMQP input',
  },
  'redis-ingest-pattern': {
    type: 'string',
    default: '',
    describe: 'PSUBSCRIBE pattern of raw Redis channels to sequence (the seed Redis broker contract); empty = off',
    for: ['publisher'],
    group: 'Redis input',
  },
  'cluster-report-interval': {
    type: 'number',
    default: 2,
    describe: 'seconds between edge reports of channel counts to Redis (cluster /stats, AMQP direct bindings)',
    for: ['edge', 'publisher'],
    group: 'Redis',
  },

  export: {
    type: 'string',
    default: '',
    describe: 'periodic export of the channel subscriber counts of this process: graphite (carbon plaintext over UDP); empty = off',
    for: EDGE,
    group: 'Graphite export',
  },
  'export-host': { type: 'string', default: '', describe: 'Graphite (carbon) UDP host', for: EDGE, group: 'Graphite export' },
  'export-port': {
    type: 'number',
    default: 0,
    describe: 'Graphite (carbon) UDP port',
    for: EDGE,
    group: 'Graphite export',
    min: 0,
    max: 65535,
  },
  'export-interval': {
    type: 'number',
    default: 60,
    describe: 'seconds between exports',
    for: EDGE,
    group: 'Graphite export',
    min: 0.05,
    max: 86400,
  },
  'export-path': {
    type: 'string',
    default: 'cyclone-sse',
    describe:
      'metric path prefix; each interval sends one line per channel, path.channel subscribers unix-seconds (channel names sanitised to letters, digits, _ and -)',
    for: EDGE,
    group: 'Graphite export',
  },

  broker: {
    type: 'string',
    default: 'http',
    describe: 'seed option: http = in-memory unless --redis-url; redis = use --redis-host/--redis-port',
    for: ['all-in-one'],
    group: 'Seed compatibility',
    seed: true,
    choices: ['http', 'redis', 'amqp'],
  },
  'redis-host': {
    type: 'string',
    default: undefined,
    describe: 'seed option: Redis host (maps into --redis-url)',
    for: ALL,
    group: 'Seed compatibility',
    seed: true,
  },
  'redis-port': {
    type: 'number',
    default: undefined,
    describe: 'seed option: Redis port (maps into --redis-url)',
    for: ALL,
    group: 'Seed compatibility',
    seed: true,
    min: 1,
    max: 65535,
  },
  'amqp-host': {
    type: 'string',
    default: undefined,
    describe: 'seed option: AMQP host (maps into --amqp-url)',
    for: ['publisher'],
    group: 'Seed compatibility',
    seed: true,
  },
  'amqp-port': {
    type: 'number',
    default: undefined,
    describe: 'seed option: AMQP port (maps into --amqp-url)',
    for: ['publisher'],
    group: 'Seed compatibility',
    seed: true,
    min: 1,
    max: 65535,
  },
  'amqp-vhost': {
    type: 'string',
    default: undefined,
    describe: 'seed option: AMQP virtual host (maps into --amqp-url)',
    for: ['publisher'],
    group: 'Seed compatibility',
    seed: true,
  },
  'amqp-username': {
    type: 'string',
    default: undefined,
    describe: 'seed option: AMQP user (maps into --amqp-url)',
    for: ['publisher'],
    group: 'Seed compatibility',
    seed: true,
  },
  'amqp-password': {
    type: 'string',
    default: undefined,
    describe: 'seed option: AMQP password (maps into --amqp-url)',
    for: ['publisher'],
    group: 'Seed compatibility',
    seed: true,
  },
  'amqp-exchange-name': {
    type: 'string',
    default: undefined,
    describe: 'seed option: same as --amqp-exchange',
    for: ['publisher'],
    group: 'Seed compatibility',
    seed: true,
  },
} as const satisfies Record<string, OptionSpec>;

export type OptionName = keyof typeof OPTIONS;

type ValueOf<S extends OptionSpec> = S['type'] extends 'number'
  ? number
  : S['type'] extends 'boolean'
    ? boolean
    : S['type'] extends 'array'
      ? string[]
      : string;

type CamelCase<S extends string> = S extends `${infer H}-${infer T}` ? `${H}${Capitalize<CamelCase<T>>}` : S;

/** The parsed, validated configuration: every option in camelCase. */
export type Config = { readonly [K in OptionName as CamelCase<K>]: ValueOf<(typeof OPTIONS)[K]> };

export function camelCase(name: string): string {
  return name.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}
