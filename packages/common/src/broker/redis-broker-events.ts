import type { EventEmitter } from 'node:events';
import type { Cluster, Redis } from 'ioredis';
import { errorFields } from '../log/error-fields.js';
import type { Logger } from '../log/logger.js';
import type { ResetReason } from './broker.js';
import type { Cursor } from './cursor.js';
import { redisErrorHint } from './redis-connection.js';

/** Counters for metrics; they only grow. */
export interface RedisBrokerStats {
  /** Catch-ups that found and filled a gap in the live stream (jump, reconnect). */
  repairs: number;
  /** Messages delivered from history by those repairs. */
  repairedMessages: number;
  /** `sink.lost` calls (history could not cover a gap). */
  lost: number;
  /** Live messages dropped because their seq was already delivered. */
  duplicates: number;
  /** Live messages of another epoch (they trigger a catch-up). */
  staleEpoch: number;
  /** Pub/sub messages that could not be parsed. */
  malformed: number;
  /** Subscriptions re-established after a lost subscriber connection. */
  resubscribes: number;
  /** Probes not echoed in time (the subscriber connection was then re-established). */
  probeFailures: number;
  /** Live messages above the top of the sequence when read (forged, or lost by a failover): dropped. */
  impossible: number;
  /** Publishes whose WAIT for replicas timed out (answered 503 REPLICATION_TIMEOUT). */
  waitTimeouts: number;
}

/** Every counter at zero. */
export function newRedisBrokerStats(): RedisBrokerStats {
  return {
    repairs: 0,
    repairedMessages: 0,
    lost: 0,
    duplicates: 0,
    staleEpoch: 0,
    malformed: 0,
    resubscribes: 0,
    probeFailures: 0,
    impossible: 0,
    waitTimeouts: 0,
  };
}

export interface RedisBrokerEvents {
  gap_repaired: [{ from: number; to: number; messages: number }];
  lost: [{ channels: string[]; reason: ResetReason; position: Cursor }];
  state: [{ ready: boolean }];
  probe_failed: [];
  /** A new epoch was seen: 'promotion' (a new primary, history kept) or 'data_lost'. */
  epoch_changed: [{ cause: 'promotion' | 'data_lost' }];
  /** The command connection reached a different Redis server than before (failover, restart). */
  primary_changed: [];
  wait_timeout: [];
  /** Redis Cluster: a partition's slot is now served by another node (the edge moved its subscriptions). */
  partition_moved: [{ partition: number }];
}

/** Emits `state` when a broker's readiness changes (call `update` after anything that may change it). */
export class ReadinessEvents {
  private ready = false;

  constructor(
    private readonly events: EventEmitter<RedisBrokerEvents>,
    private readonly isReady: () => boolean,
  ) {}

  update(): void {
    const ready = this.isReady();
    if (ready === this.ready) return;
    this.ready = ready;
    this.events.emit('state', { ready });
  }
}

/** What `watchConnection` needs to know about one broker connection. */
export interface WatchedConnection {
  /** The `role` field of its log lines. */
  role: 'command' | 'subscriber';
  /** How the log lines name it: `redis connection`, `redis cluster connection`. */
  name: string;
  log: Logger;
  /** The broker is closed: a lost connection or an error is expected then, not logged. */
  closed: () => boolean;
  readiness: ReadinessEvents;
}

/**
 * Logs a broker connection's state once per change — `redis_connection_lost` (warn) when it
 * closes, `redis_ready` (info) when it is back, `redis_error` (warn, with a configuration hint
 * where there is one) for an error while it was up, never one per retry, and
 * `redis_connection_ended` (error) when ioredis gives up on it for good (it reconnects for ever
 * otherwise, so the process stays without it: say so rather than go silent) — and updates the
 * broker's readiness after every `ready` and `close`.
 */
export function watchConnection(conn: Redis | Cluster, c: WatchedConnection): void {
  let down = false;
  conn.on('ready', () => {
    if (down) c.log.info(`${c.name} restored`, { event: 'redis_ready', role: c.role });
    down = false;
    c.readiness.update();
  });
  conn.on('close', () => {
    if (!down && !c.closed()) c.log.warn(`${c.name} lost`, { event: 'redis_connection_lost', role: c.role });
    down = true;
    c.readiness.update();
  });
  conn.on('error', (err: Error) => {
    if (!down && !c.closed())
      c.log.warn('redis error', { event: 'redis_error', role: c.role, ...redisErrorHint(err), ...errorFields(err) });
  });
  conn.on('end', () => {
    if (!c.closed()) c.log.error(`${c.name} ended: no more reconnects`, { event: 'redis_connection_ended', role: c.role });
  });
}
