/**
 * The Redis layout of the hub (docs/architecture.md#redis-layout), prefix `p`:
 *
 *   <p>:seq            global sequence (INCR)
 *   <p>:epoch          random token of the current epoch: a new one when <p>:seq is found missing
 *                      (history was lost) or when the primary changed (docs/delivery.md)
 *   <p>:replid         the `master_replid` of the primary the current epoch belongs to
 *   <p>:epochs         hash: each earlier epoch of this history → `<end seq>:<ordinal>` (its last seq
 *                      on the surviving primary, and its place in the lineage); field `#` counts
 *   <p>:top            the largest seq subscribers may see (released): = <p>:seq, except with
 *                      --redis-wait-replicas, where a publish is released after its WAIT
 *   <p>:lost           hash `<epoch> <channel>` → the largest seq of that channel that a failover
 *                      lost (reported by the edges that delivered it and the publisher that was
 *                      answered for it; redis-scripts.ts, LOST_LUA)
 *   <p>:lost-reports   pub/sub channel: every new entry of <p>:lost, as JSON {e, l: [[seq, channel]…]}
 *   <p>:h:<channel>    stream of frames, entry id `<seq>-0`, fields f (frame), t (publish ms),
 *                      p (previous seq on this channel, 0 for none); at most history-size entries
 *                      and history-max-bytes-per-channel bytes (oldest removed first), TTL history
 *   <p>:m:<channel>    hash e (epoch), l (last seq published), r (largest seq removed from the
 *                      stream, by trimming or expiry), b (bytes charged for the stream), TTL
 *                      META_TTL_FACTOR × history
 *   <p>:idem:<record>  idempotency record (`idempotencyRecord`: a hash of scope, key and channel
 *                      list, or `i:<attempt>` for a publish without a key): the ids of the first
 *                      publish, space-separated, or `!<attempt>` when that attempt was fenced
 *                      (redis-scripts.ts, FENCE_LUA); TTL
 *   <p>:ch:<channel>   pub/sub channel; message `<seq> <publish ms> <frame>`
 *   <p>:hlru           sorted set: channels holding history bytes, scored by their last seq
 *   <p>:hbytes         hash: channel → history bytes charged (frames + ENTRY_OVERHEAD_BYTES each)
 *   <p>:htotal         the sum of <p>:hbytes (the total history bound)
 *   <p>:probe:<token>  pub/sub channel of one broker's liveness probe (echoed to itself only)
 *   <p>:nodes          sorted set: edge node id → expiry (ms) of its last directory report
 *   <p>:node:<id>      hash channel → subscriber count of one edge node, TTL (RedisDirectory)
 *   <p>:ingest-lease   the publisher replica holding the legacy Redis ingest (value: its id)
 *
 * On a Redis Cluster (redis-cluster-broker.ts) each partition has all of the above under its own
 * hash tag, `<p>:{<tag>}:seq`, `<p>:{<tag>}:h:<channel>`, … (`new RedisKeys(prefix, tag)`), its
 * pub/sub channels are sharded (SPUBLISH, message `<seq> <prev> <publish ms> <frame>`), and the
 * directory keys are `<p>:{dir}:nodes` and `<p>:{dir}:node:<id>`.
 *
 * Every name is built here; the publish script builds `h:`, `m:` and `ch:` names from the
 * namespace it is given (ARGV 9) with the {@link KEY_SEGMENTS} below interpolated into its text.
 */
export const KEY_SEGMENTS = { history: 'h:', meta: 'm:', pubsub: 'ch:' } as const;

export class RedisKeys {
  /** `<p>:`, the start of every name of this hub (the legacy ingest never ingests these). */
  readonly namespace: string;
  readonly seq: string;
  readonly epoch: string;
  readonly replid: string;
  readonly epochs: string;
  readonly top: string;
  readonly lost: string;
  readonly lostReports: string;
  /** The prefix of every pub/sub channel, as bytes, to cut it off received channel names. */
  readonly pubsubPrefixLength: number;
  /** The one pattern an edge subscribes to, with glob characters of the prefix escaped. */
  readonly pattern: string;
  readonly historyLru: string;
  readonly historyBytes: string;
  readonly historyTotal: string;

  readonly nodes: string;
  readonly ingestLease: string;

  /**
   * `tag`: a Redis Cluster partition's hash tag (partitions.ts): every name then starts
   * `<p>:{<tag>}:`, so all of the partition's keys and sharded channels share one slot.
   */
  constructor(
    readonly prefix: string,
    readonly tag?: string,
  ) {
    const ns = (this.namespace = tag === undefined ? `${prefix}:` : `${prefix}:{${tag}}:`);
    this.seq = `${ns}seq`;
    this.epoch = `${ns}epoch`;
    this.replid = `${ns}replid`;
    this.epochs = `${ns}epochs`;
    this.top = `${ns}top`;
    this.lost = `${ns}lost`;
    this.lostReports = `${ns}lost-reports`;
    this.pubsubPrefixLength = Buffer.byteLength(`${ns}${KEY_SEGMENTS.pubsub}`);
    this.pattern = `${prefix.replace(/[*?[\]\\]/g, '\\$&')}:${KEY_SEGMENTS.pubsub}*`;
    this.historyLru = `${ns}hlru`;
    this.historyBytes = `${ns}hbytes`;
    this.historyTotal = `${ns}htotal`;
    this.nodes = `${ns}nodes`;
    this.ingestLease = `${ns}ingest-lease`;
  }

  /** The keys every script starts with (KEYS[1..6]: seq, epoch, replid, epochs, top, lost). */
  get epochKeys(): string[] {
    return [this.seq, this.epoch, this.replid, this.epochs, this.top, this.lost];
  }

  history(channel: string): string {
    return `${this.namespace}${KEY_SEGMENTS.history}${channel}`;
  }

  meta(channel: string): string {
    return `${this.namespace}${KEY_SEGMENTS.meta}${channel}`;
  }

  idempotency(key: string): string {
    return `${this.namespace}idem:${key}`;
  }

  pubsub(channel: string): string {
    return `${this.namespace}${KEY_SEGMENTS.pubsub}${channel}`;
  }

  probe(token: string): string {
    return `${this.namespace}probe:${token}`;
  }

  node(nodeId: string): string {
    return `${this.namespace}node:${nodeId}`;
  }
}

/** How much longer than the history the per-channel bookkeeping is kept (as MemoryBroker does). */
export const META_TTL_FACTOR = 24;

/** A TTL as the scripts take it: whole seconds, at least 1. */
export function ttlSeconds(seconds: number): number {
  return Math.max(1, Math.ceil(seconds));
}

export interface PubsubMessage {
  seq: number;
  publishedAt: number;
  /** The frame bytes, a view into the received message (no copy). */
  frame: Buffer;
}

const SPACE = 0x20;
const ZERO = 0x30;
const NINE = 0x39;

/**
 * Parses `<seq> <publish ms> <frame>` without decoding the frame. Returns undefined for anything
 * else (the caller logs and counts it).
 */
export function parsePubsubMessage(message: Buffer): PubsubMessage | undefined {
  let i = 0;
  let seq = 0;
  for (; i < message.length && message[i] !== SPACE; i++) {
    const c = message[i]!;
    if (c < ZERO || c > NINE || i >= 15) return undefined;
    seq = seq * 10 + (c - ZERO);
  }
  if (i === 0 || i >= message.length) return undefined;
  const timeStart = ++i;
  let publishedAt = 0;
  for (; i < message.length && message[i] !== SPACE; i++) {
    const c = message[i]!;
    if (c < ZERO || c > NINE || i - timeStart >= 15) return undefined;
    publishedAt = publishedAt * 10 + (c - ZERO);
  }
  if (i === timeStart || i >= message.length - 1) return undefined;
  return { seq, publishedAt, frame: message.subarray(i + 1) };
}

const ID_PREFIX = Buffer.from('id: ');

/** True when `frame` starts with `id: <epoch>-`. */
export function frameHasEpoch(frame: Buffer, epoch: Buffer): boolean {
  const end = ID_PREFIX.length + epoch.length;
  return (
    frame.length > end &&
    frame[end] === 0x2d &&
    frame.compare(ID_PREFIX, 0, ID_PREFIX.length, 0, ID_PREFIX.length) === 0 &&
    frame.compare(epoch, 0, epoch.length, ID_PREFIX.length, end) === 0
  );
}

export interface ShardedMessage extends PubsubMessage {
  /** The channel's previous seq (0 for none). */
  prev: number;
}

/**
 * Parses the sharded form `<seq> <prev> <publish ms> <frame>` (PUBLISH_LUA, sharded) without
 * decoding the frame and without intermediate objects (it runs once per live message).
 */
export function parseShardedMessage(message: Buffer): ShardedMessage | undefined {
  const len = message.length;
  let i = 0;
  let seq = 0;
  for (; i < len && message[i] !== SPACE; i++) {
    const c = message[i]!;
    if (c < ZERO || c > NINE || i >= 15) return undefined;
    seq = seq * 10 + (c - ZERO);
  }
  if (i === 0 || i >= len - 1) return undefined;
  const prevStart = ++i;
  let prev = 0;
  for (; i < len && message[i] !== SPACE; i++) {
    const c = message[i]!;
    if (c < ZERO || c > NINE || i - prevStart >= 15) return undefined;
    prev = prev * 10 + (c - ZERO);
  }
  if (i === prevStart || i >= len - 1) return undefined;
  const timeStart = ++i;
  let publishedAt = 0;
  for (; i < len && message[i] !== SPACE; i++) {
    const c = message[i]!;
    if (c < ZERO || c > NINE || i - timeStart >= 15) return undefined;
    publishedAt = publishedAt * 10 + (c - ZERO);
  }
  if (i === timeStart || i >= len - 1) return undefined;
  return { seq, prev, publishedAt, frame: message.subarray(i + 1) };
}
