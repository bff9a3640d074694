import { OPEN_COMMENT, formatId, type Broker, type Logger } from '@cyclone-sse/common';
import type { EdgeMetrics } from './metrics.js';
import { primingBytes } from './priming.js';
import type { RetryHint } from './retry-hint.js';
import type { UwsSseConnection } from './uws-sse-connection.js';

/** How often the waiting streams check whether the broker is back. */
const TICK_MS = 100;
/** Streams released per tick at most: a return of Redis after a long outage starts in steps. */
const RELEASE_PER_TICK = 1000;
/**
 * Once the broker is reachable, the release waits for its live stream to be in sync (then a
 * stream's catch-up joins the live stream where the edge's own catch-up left it), but not longer
 * than this: a resume is exact in any case (history is read atomically with the top).
 */
const SYNC_GRACE_MS = 2000;

export interface WaitingStreamsDeps {
  broker: Broker;
  retry: RetryHint;
  metrics: EdgeMetrics;
  logger: Logger;
  /**
   * Starts a stream that waited: with a cursor, its resume (history after the cursor, then live);
   * without one, its priming id. Either may park it again if the broker is still unreachable.
   */
  release(conn: UwsSseConnection, cursor: string | undefined): void;
  /** Contains an unexpected exception to the stream it happened on (`Hub.fail`). */
  fail(conn: UwsSseConnection, err: unknown): void;
}

/**
 * Streams accepted while the broker is unreachable (docs/protocol.md#while-redis-is-unreachable).
 * A native EventSource that gets anything but a 200 gives up for good, so while Redis is away an
 * edge still accepts streams: it answers 200 with the usual first bytes and keeps the stream open
 * with heartbeats. The connection is in the hub (so `--max-connections`, the per-IP limit, token
 * expiry and `--max-stream-seconds` apply as to any stream) in the `waiting` state: it holds no
 * frames, live messages are dropped. When the broker is back and in sync, each stream starts from
 * its position, exactly as a resume does: history after it, then live.
 *
 * The position of a stream opened without a cursor is the one the edge's live stream reached
 * (`Broker.reachedPosition`): every message up to it was delivered before the stream came, and
 * nothing can be published while Redis is unreachable, so it is sent at once as the priming id and
 * the stream later receives every message after it — the ones published after Redis returned,
 * and, if Redis came back without its data, a `reset` (epoch) first, as every other stream. A
 * broker that cannot tell gets the stream's priming id at the release instead (`id:` block after
 * `:ok`). A long-poll with a cursor waits up to its deadline and then answers the empty poll
 * (`:` heartbeat), never a 5xx.
 *
 * One timer for all waiting streams, running only while some wait.
 */
export class WaitingStreams {
  private readonly waiting = new Map<UwsSseConnection, string | undefined>();
  private timer: NodeJS.Timeout | undefined;
  private readySince = 0;
  /** Streams parked since the timer started (one outage, as the log reports it). */
  private parked = 0;

  constructor(private readonly deps: WaitingStreamsDeps) {}

  /** Streams waiting now. */
  get size(): number {
    return this.waiting.size;
  }

  /**
   * Parks a stream (attached to the hub) until the broker is back. A stream whose first bytes
   * have not gone out yet gets them now: `retry:`, the priming id (without a cursor, when the
   * broker knows the position its live stream reached), `:ok`. A long-poll gets nothing until it
   * is answered.
   */
  park(conn: UwsSseConnection, cursor?: string): void {
    if (conn.closed) return;
    conn.wait();
    if (!conn.opened && !conn.longPoll) {
      const reached = cursor === undefined ? this.deps.broker.reachedPosition?.() : undefined;
      if (reached !== undefined) {
        cursor = formatId(reached.epoch, reached.seq);
        conn.open(primingBytes(this.deps.retry, reached));
      } else conn.open(Buffer.from(this.deps.retry.field() + OPEN_COMMENT));
    }
    if (!this.waiting.has(conn)) {
      this.deps.metrics.waited.inc();
      this.parked++;
    }
    this.waiting.set(conn, cursor);
    this.deps.metrics.waiting.set(this.waiting.size);
    if (this.timer === undefined) {
      this.timer = setInterval(() => this.tick(), TICK_MS);
      this.timer.unref();
      this.deps.logger.info('broker unreachable: new streams are accepted and wait for it', { event: 'streams_waiting' });
    }
  }

  /** Forgets every waiting stream (the hub closes them on drain) and stops the timer. */
  stop(): void {
    this.waiting.clear();
    this.deps.metrics.waiting.set(0);
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** The broker is reachable and, when it can say so, its live stream in sync (or the grace ran out). */
  private canRelease(now: number): boolean {
    const broker = this.deps.broker;
    if (!broker.isReady()) {
      this.readySince = 0;
      return false;
    }
    if (this.readySince === 0) this.readySince = now;
    if (broker.livePosition === undefined || broker.livePosition() !== undefined) return true;
    return now - this.readySince >= SYNC_GRACE_MS;
  }

  private tick(): void {
    for (const conn of this.waiting.keys()) if (conn.closed) this.waiting.delete(conn);
    if (this.waiting.size > 0 && this.canRelease(Date.now())) {
      const batch: [UwsSseConnection, string | undefined][] = [];
      for (const entry of this.waiting) {
        if (batch.length >= RELEASE_PER_TICK) break;
        batch.push(entry);
      }
      for (const [conn, cursor] of batch) {
        this.waiting.delete(conn);
        try {
          this.deps.release(conn, cursor);
        } catch (err) {
          this.deps.fail(conn, err);
        }
      }
      if (this.waiting.size === 0)
        this.deps.logger.info('broker back: waiting streams started', { event: 'streams_released', streams: this.parked });
    }
    this.deps.metrics.waiting.set(this.waiting.size);
    if (this.waiting.size === 0 && this.timer !== undefined) {
      clearInterval(this.timer);
      this.timer = undefined;
      this.parked = 0;
    }
  }
}
