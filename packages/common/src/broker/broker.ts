import type { Registry } from 'prom-client';
import type { Cursor } from './cursor.js';

/** One message to publish: the same payload goes to each channel, as one message per channel. */
export interface PublishInput {
  /** Validated channel names (see `validateChannel`), at least one. */
  channels: string[];
  /** The payload, written verbatim as `data:` lines. */
  data: string;
  /** Optional SSE `event:` type (validated: no CR, LF, NUL). */
  event?: string;
  /**
   * Optional idempotency key: a retry with the same key, from the same publisher scope, to the
   * same channel list within the TTL answers the first result. Strings only.
   */
  idempotencyKey?: string;
  /**
   * Who published, for idempotency: `jwt:<sub>` for a publisher token, `secret` for the shared
   * secret, `open` (the default) when publishing is open. Two scopes never share a record.
   */
  idempotencyScope?: string;
}

export interface PublishResult {
  /**
   * `<epoch>-<seq>` per distinct channel, in the order of first appearance in `channels`: a
   * channel named twice is published (and answered) once.
   */
  ids: string[];
  /** True when this was answered from the idempotency record (nothing was published again). */
  duplicate: boolean;
}

/** A sequenced message as an edge sees it. */
export interface BrokerMessage {
  seq: number;
  channel: string;
  /** The complete SSE frame, written verbatim to every subscriber. */
  frame: Buffer;
  /** Publish time in ms since the Unix epoch (feeds the delivery-lag histogram). */
  publishedAt: number;
  /**
   * The partition of the channel (Redis Cluster, `--redis-partitions` > 1; docs/delivery.md):
   * seq orders messages within a partition only. Undefined means 0 (one sequence for all).
   */
  partition?: number;
  /** Sharded pub/sub only: the channel's previous seq (the live tracker's gap check). */
  prev?: number;
  /** The epoch on the frame's id line, when the broker knows it without parsing (live messages of a partition). */
  epoch?: string;
}

/** Why a reset event was sent: the one list both the type and the metric's series are made from. */
export const RESET_REASONS = ['malformed', 'epoch', 'future', 'trimmed', 'expired', 'lost', 'replay_limit'] as const;
export type ResetReason = (typeof RESET_REASONS)[number];

/** Bounds of one history read (a page). At least one message is returned when any is pending. */
export interface HistoryPageLimits {
  /** Messages in the page at most. */
  maxMessages: number;
  /** Frame bytes in the page at most (one larger message still makes a page of its own). */
  maxBytes: number;
}

export interface HistoryResult {
  /** Current epoch and top of the sequence, read atomically with the messages. */
  position: Cursor;
  /** Messages after the cursor on the complete channels, merged in sequence order, all ≤ top. */
  messages: BrokerMessage[];
  /** Channels whose history cannot prove completeness, or undefined when all are complete. */
  reset?: { channels: string[]; reason: ResetReason };
  /**
   * True when the page limits cut the read: messages after the last one returned (all ≤ top)
   * remain; read them with that message's id as the next cursor.
   */
  more: boolean;
  /**
   * Redis only: the cursor named an earlier epoch of the lineage (a failover started a new one,
   * docs/delivery.md); this is that epoch's last seq on the current primary. The messages are
   * those after min(cursor, split).
   */
  split?: number;
}

/**
 * The edge side of a broker. It calls exactly one sink; it never knows about clients.
 */
export interface BrokerSink {
  /** A live message. Calls come in strictly increasing `seq` order. */
  message(msg: BrokerMessage): void;
  /** Channels with local subscribers; gap repair reads history only for these. */
  activeChannels(): Iterable<string>;
  /** Messages on these channels were lost beyond what history covers: subscribers must reset. */
  lost(channels: string[], reason: ResetReason, position: Cursor): void;
  /**
   * A Redis failover started a new epoch whose sequence continues from `seq`, below what was
   * already delivered (the old primary's last messages did not survive; docs/delivery.md). The
   * messages that follow have seqs above `seq` again: every duplicate boundary above it moves
   * down to it. Calls to `message` then continue in increasing order from there.
   */
  rebase?(seq: number, partition?: number): void;
}

/**
 * A message broker: assigns the cluster-wide sequence, keeps per-channel history and delivers
 * live messages to the edge's sink. Implementations: `MemoryBroker` (one process), `RedisBroker`.
 * One contract suite runs against both.
 */
export interface Broker {
  readonly kind: string;
  start(): Promise<void>;
  close(): Promise<void>;
  /** Connected (and, for a subscribing broker, subscribed). */
  isReady(): boolean;
  /**
   * Publishes a batch, applied in order. The whole batch is validated first (`preparePublish`:
   * events, data, channel count, fan-out bytes): a 4xx HubError means nothing was applied.
   * Rejects with BROKER_UNAVAILABLE (nothing applied from that point) when the backing store
   * cannot be reached; never queues for later.
   */
  publish(inputs: PublishInput[]): Promise<PublishResult[]>;
  /** Registers the (single) sink for live messages. Call before `start()`. */
  subscribe(sink: BrokerSink): void;
  /**
   * Messages after `cursor` (an id as the client sent it, maybe malformed) on `channels`. A
   * malformed, foreign-epoch or future cursor resets every requested channel; a channel whose
   * history was trimmed or expired past the cursor is reset; a channel with no publish since the
   * cursor is complete. With `limits`, the read is one page: the first messages after the cursor
   * in sequence order within the limits, and `more` says whether others remain (a page cut
   * inside the history of one channel never skips a message: the next page continues after the
   * last one returned). Without limits everything after the cursor is returned.
   */
  history(channels: string[], cursor: string, limits?: HistoryPageLimits): Promise<HistoryResult>;
  /** Current epoch and top of the sequence. */
  position(): Promise<Cursor>;
  /**
   * Optional, synchronous, no I/O: a position P that splits the sink's stream at this instant —
   * every message with seq <= P has already been passed to the sink, and every message with
   * seq > P has not yet and will be (in order, or covered by a `lost` call). Undefined when the
   * broker cannot tell right now (a catch-up is running, not subscribed); `position()` then gives
   * a valid split at the cost of one read. The edge uses it for the priming id of a new stream
   * (docs/protocol.md#priming-id): a connection registered before this call gets every message after P, none before.
   */
  livePosition?(): Cursor | undefined;
  /**
   * Optional, synchronous, no I/O: the position the sink's stream has reached — every message
   * with seq <= it has been passed to the sink — in sync or not. While the store is unreachable it
   * stays where the stream stopped. Undefined before the broker knows any position. The edge gives
   * it as the priming id of a stream opened while the store is unreachable, and reads what follows
   * it from history when the store is back (docs/protocol.md#while-redis-is-unreachable).
   */
  reachedPosition?(): Cursor | undefined;
}

/**
 * Optional capability of a broker with series of its own (the Redis broker: gap repairs, losses,
 * connection state, probes). The edge calls `observe` once with its registry when the broker has
 * it; a broker without such series (memory) simply does not implement it.
 */
export interface ObservableBroker {
  /** `component` names the series (`cyclone_sse_<component>_…`); default `edge`. */
  observe(registry: Registry, component?: 'edge' | 'publisher' | 'all'): void;
}

export function isObservableBroker(broker: Broker): broker is Broker & ObservableBroker {
  return typeof (broker as Partial<ObservableBroker>).observe === 'function';
}

export interface HistoryOptions {
  /** Messages kept per channel. */
  historySize: number;
  /** Seconds a channel's history lives after its last publish. */
  historyTtlSeconds: number;
  /** Seconds an idempotency record lives. */
  idempotencyTtlSeconds: number;
  /** Frame bytes one channel's history keeps (default DEFAULT_PUBLISH_LIMITS). */
  historyMaxBytesPerChannel?: number;
  /** Frame bytes all histories keep together (default DEFAULT_PUBLISH_LIMITS). */
  historyMaxBytes?: number;
  /** Idempotency records a MemoryBroker keeps (default DEFAULT_PUBLISH_LIMITS). */
  idempotencyMaxKeys?: number;
  /** Channels one PublishInput may name, as written (default DEFAULT_PUBLISH_LIMITS). */
  maxChannelsPerPublish?: number;
  /** Frame bytes × channels one `publish` call may add (default DEFAULT_PUBLISH_LIMITS). */
  maxPublishFanoutBytes?: number;
}
