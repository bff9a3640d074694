import type { BrokerMessage, BrokerSink, Cursor, Logger, PartitionedBroker, ResetReason } from '@cyclone-sse/common';
import type { ConnectionHost } from './connection-host.js';
import type { UwsSseConnection } from './uws-sse-connection.js';
import type { CloseReason } from './reasons.js';
import type { EdgeMetrics } from './metrics.js';
import { InternalErrors, type ErrorSite } from './internal-errors.js';
import { PerIpCount } from './per-ip.js';
import { resetFrame } from './resume.js';
import { DeliveredSnapshot, type StreamCursor } from './stream-cursor.js';
import { FlushScheduler } from './flush-scheduler.js';
import type { RetryHint } from './retry-hint.js';

export interface HubOptions {
  heartbeatMs: number;
  /** The `retry:` hints (token expiry, --max-stream-seconds). */
  retry: RetryHint;
  /** The per-connection byte budget: write queue, held live frames and replay pages each. */
  maxQueuedBytes: number;
  /** The edge's budget: bytes queued for all connections together (0 = none). */
  maxQueuedBytesTotal: number;
  longPollTimeoutMs: number;
  /** Longest a flush waits for more messages while flushes come back to back (flush-scheduler.ts). */
  coalesceMaxDelayMs: number;
}

/** Partition sets that share id lines (Redis Cluster); streams over any other write their own. */
const MAX_SHARED_SETS = 4096;

/** Over the budget, connections are shed until the total is back under this share of it. */
const SHED_TO = 7 / 8;

function sameFrames(a: Buffer[], b: Buffer[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Channel index and fan-out. Synchronous: a message for a channel without local subscribers is
 * dropped after one Map lookup. Frames that reach a connection in one event-loop turn are
 * written together (one cork, one write) at the end of the turn. What a connection does with
 * its bytes (queue, backpressure, close, long-poll end) is its own business: uws-sse-connection.ts.
 */
export class Hub implements BrokerSink, ConnectionHost {
  private readonly index = new Map<string, Set<UwsSseConnection>>();
  readonly connections = new Set<UwsSseConnection>();
  private readonly perIp = new PerIpCount();
  private dirty: UwsSseConnection[] = [];
  private readonly flusher: FlushScheduler;
  private wheel: NodeJS.Timeout | undefined;
  private readonly errors: InternalErrors;
  /** Sum of the bytes every connection holds for its client (`charge`). */
  private queued = 0;
  /** Connections holding bytes: the only candidates when the budget sheds. */
  private readonly loaded = new Set<UwsSseConnection>();
  private readonly budget: number;
  private shedding = false;
  /** Connections shed since the total last went over the budget (logged when it is back down). */
  private shedEpisode = 0;
  /** A partitioned broker (Redis Cluster): told which channels have subscribers; splits streams. */
  private partitioned: PartitionedBroker | undefined;
  /** Per partition-set id (`StreamCursor.keyId`): the frame with the shared id line, and the message it is for. */
  private sharedFrames: (Buffer | undefined)[] = [];
  private sharedFor: (BrokerMessage | undefined)[] = [];
  private readonly keyIds = new Map<string, number>();
  private snapshot: DeliveredSnapshot | undefined;
  private snapshotFor: BrokerMessage | undefined;

  constructor(
    readonly options: HubOptions,
    readonly metrics: EdgeMetrics,
    readonly logger: Logger,
  ) {
    this.errors = new InternalErrors(metrics.internalErrors, logger);
    this.flusher = new FlushScheduler(() => this.flush(), options.coalesceMaxDelayMs);
    this.budget = options.maxQueuedBytesTotal > 0 ? options.maxQueuedBytesTotal : Infinity;
    metrics.reportQueuedBytes(() => this.queued);
  }

  /** Runs on a partitioned broker: channels are watched and unwatched as they gain and lose subscribers. */
  usePartitions(broker: PartitionedBroker): void {
    this.partitioned = broker;
    this.snapshot = new DeliveredSnapshot(broker.partitions, (p) => broker.deliveredPosition(p));
  }

  start(): void {
    // At most a second: heartbeats, long-poll deadlines and token expiry all ride on this tick.
    const tick = Math.max(25, Math.min(this.options.heartbeatMs, this.options.longPollTimeoutMs, 4000) / 4);
    this.wheel = setInterval(() => this.tick(), tick);
    this.wheel.unref();
  }

  stop(): void {
    if (this.wheel) clearInterval(this.wheel);
    this.flusher.flushNow();
  }

  // ---- BrokerSink ----

  message(msg: BrokerMessage): void {
    this.metrics.messagesReceived.inc();
    const subs = this.index.get(msg.channel);
    if (subs === undefined) return;
    let n = 0;
    for (const conn of subs) {
      try {
        conn.offer(msg);
      } catch (err) {
        this.fail(conn, 'fanout', err);
      }
      n++;
    }
    this.metrics.deliveries.inc(n);
    this.metrics.deliveryLag.observe(Math.max(0, Date.now() - msg.publishedAt) / 1000);
  }

  /**
   * The frame of a live message for streams over several partitions: `id: <cursor>` where the
   * message's own partition is at the message and every other one at the position this edge has
   * delivered there — a valid cursor for every live stream over those partitions whose own
   * positions are not beyond it (`StreamCursor.within`), so one frame per message and partition
   * set, not one per stream (docs/architecture.md#redis-cluster).
   */
  sharedFrame(msg: BrokerMessage, cursor: StreamCursor): Buffer | undefined {
    const snapshot = this.snapshot;
    const id = cursor.keyId;
    if (msg.epoch === undefined || snapshot === undefined || id < 0) return undefined;
    if (this.snapshotFor !== msg) {
      this.snapshotFor = msg;
      snapshot.next();
    }
    if (!cursor.within(msg.partition, snapshot)) return undefined;
    if (this.sharedFor[id] === msg) return this.sharedFrames[id];
    const own = msg.partition ?? 0;
    let text = '';
    for (const p of cursor.partitions) text += (text === '' ? '' : '.') + (p === own ? `${msg.epoch}-${msg.seq}` : snapshot.text(p));
    const end = msg.frame.indexOf(0x0a);
    const frame = Buffer.concat([Buffer.from(`id: ${text}`), msg.frame.subarray(end)]);
    this.sharedFor[id] = msg;
    this.sharedFrames[id] = frame;
    return frame;
  }

  activeChannels(): Iterable<string> {
    return this.index.keys();
  }

  lost(channels: string[], reason: ResetReason, position: Cursor): void {
    const affected = new Set<UwsSseConnection>();
    for (const ch of channels) for (const c of this.index.get(ch) ?? []) affected.add(c);
    for (const conn of affected) {
      const mine = conn.channels.filter((ch) => channels.includes(ch));
      // Continue from the position given (after an epoch change it is lower than before).
      conn.resetAt(position);
      if (conn.state === 'live') conn.append(resetFrame(mine, reason, conn.idText(position)));
      this.metrics.resets.inc({ reason });
    }
    this.logger.warn('messages lost beyond history', {
      event: 'live_gap_lost',
      reason,
      channels: channels.length,
      connections: affected.size,
    });
  }

  rebase(seq: number, partition?: number): void {
    for (const conn of this.connections) conn.rebase(seq, partition);
    this.logger.warn('sequence rebased after a Redis failover', {
      event: 'sequence_rebased',
      seq,
      partition,
      connections: this.connections.size,
    });
  }

  // ---- connections ----

  /** A small integer per partition set (at most MAX_SHARED_SETS; past that, streams write their own ids). */
  private keyIdOf(key: string): number {
    let id = this.keyIds.get(key);
    if (id === undefined && this.keyIds.size < MAX_SHARED_SETS) this.keyIds.set(key, (id = this.keyIds.size));
    return id ?? -1;
  }

  /** Open connections from one client address. */
  connectionsFrom(ip: string): number {
    return this.perIp.of(ip);
  }

  attach(conn: UwsSseConnection): void {
    conn.attachTo(this);
    this.connections.add(conn);
    this.perIp.add(conn.ip);
    const partitioned = this.partitioned;
    if (partitioned) {
      const cursor = conn.setPartitions([...new Set(conn.channels.map((c) => partitioned.partitionOf(c)))].sort((a, b) => a - b));
      if (cursor) cursor.keyId = this.keyIdOf(cursor.key);
    }
    for (const ch of conn.channels) {
      let set = this.index.get(ch);
      if (!set) {
        this.index.set(ch, (set = new Set()));
        this.metrics.channels.inc();
        partitioned?.watch(ch);
      }
      set.add(conn);
    }
    this.metrics.connections.inc();
    this.metrics.opened.inc();
  }

  /** Takes a connection out (its client went, or it closed itself); counted once. */
  detach(conn: UwsSseConnection, reason: CloseReason): void {
    if (!this.connections.delete(conn)) return;
    const counted = conn.release(reason);
    this.perIp.remove(conn.ip);
    for (const ch of conn.channels) {
      const set = this.index.get(ch);
      if (set && set.delete(conn) && set.size === 0) {
        this.index.delete(ch);
        this.metrics.channels.dec();
        this.partitioned?.unwatch(ch);
      }
    }
    this.metrics.connections.dec();
    this.metrics.closed.inc({ reason: counted });
  }

  /**
   * Contains an unexpected exception to the one connection it happened on: logged once per cause,
   * counted, and the connection closed as 'error' (its client resumes); the others keep flowing.
   */
  fail(conn: UwsSseConnection, where: ErrorSite, err: unknown): void {
    this.errors.report(where, err);
    conn.destroy();
  }

  /** uWS onWritable, contained: see `UwsSseConnection.writable`. */
  writable(conn: UwsSseConnection): boolean {
    try {
      return conn.writable();
    } catch (err) {
      this.fail(conn, 'writable', err);
      return true;
    }
  }

  stats(): [string, number][] {
    return [...this.index].map(([ch, set]) => [ch, set.size]);
  }

  get channelCount(): number {
    return this.index.size;
  }

  /** Bytes waiting for all connections' clients (rests of writes, queues, uWS's pieces): what the budget bounds. */
  get queuedBytes(): number {
    return this.queued;
  }

  /**
   * A connection's held bytes changed (O(1): a sum and, when it starts or stops holding any, a
   * set). Growth past --max-queued-bytes-total sheds at once, before the next write adds more.
   */
  charge(conn: UwsSseConnection, before: number, after: number): void {
    this.queued += after - before;
    if (after === 0) this.loaded.delete(conn);
    else if (before === 0) this.loaded.add(conn);
    if (after > before && this.queued > this.budget) this.shed(conn);
  }

  /**
   * The edge's queued bytes went over the budget: closes the connections holding the most, as
   * slow (their clients resume from their last id), until the total is under 7/8 of the budget.
   * The connection being fed goes only when none holds more. The scan covers only connections
   * holding bytes, and runs again only after another eighth of the budget was added: amortized,
   * it costs a few operations per queued kilobyte, nothing on writes that go through.
   */
  private shed(fed: UwsSseConnection): void {
    if (this.shedding) return;
    this.shedding = true;
    try {
      const first = this.shedEpisode === 0;
      const before = this.queued;
      const heaviest = [...this.loaded].sort((a, b) => b.queued - a.queued || (a === fed ? 1 : b === fed ? -1 : 0));
      const target = this.budget * SHED_TO;
      let n = 0;
      for (const conn of heaviest) {
        if (this.queued <= target) break;
        conn.close('slow');
        n++;
      }
      this.shedEpisode += n;
      this.metrics.shed.inc(n);
      const fields = { event: 'queued_bytes_budget', budget: this.budget, queued: before, shed: n, connections: this.connections.size };
      if (first) this.logger.warn('queued bytes over --max-queued-bytes-total: closing the slowest connections', fields);
      else this.logger.debug('queued bytes over --max-queued-bytes-total', fields);
    } finally {
      this.shedding = false;
    }
  }

  markDirty(conn: UwsSseConnection): void {
    this.dirty.push(conn);
    this.flusher.request();
  }

  /**
   * End of turn (a little later while flushes come back to back: flush-scheduler.ts): one cork +
   * one write per dirty connection (never nested corks). Connections of the same channels hold
   * the same frames in the same order: their concatenation is built once and shared. Counters
   * are updated once per flush, not per write. Returns how many writes carried more than one
   * frame.
   */
  flush(): number {
    const list = this.dirty;
    this.dirty = [];
    const now = Date.now();
    let lastFrames: Buffer[] | undefined;
    let lastBytes: Buffer | undefined;
    let concatenated: Map<Buffer, { frames: Buffer[]; bytes: Buffer }[]> | undefined;
    let writes = 0;
    let bytesOut = 0;
    let coalesced = 0;
    for (const conn of list) {
      const frames = conn.takePending();
      if (frames.length === 0 || conn.closed) continue;
      try {
        let bytes: Buffer;
        if (frames.length === 1) bytes = frames[0] as Buffer;
        else {
          coalesced++;
          if (lastBytes !== undefined && lastFrames !== undefined && sameFrames(lastFrames, frames)) bytes = lastBytes;
          else {
            // Streams over several partitions alternate between a few id-line variants of the
            // same messages (one per partition set): keep one concatenation per variant.
            const known = concatenated?.get(frames[0]!);
            const hit = known?.find((k) => sameFrames(k.frames, frames));
            bytes = hit?.bytes ?? Buffer.concat(frames);
            if (!hit && this.partitioned) {
              concatenated ??= new Map();
              const list = concatenated.get(frames[0]!) ?? [];
              if (list.length < 64) list.push({ frames, bytes });
              concatenated.set(frames[0]!, list);
            }
            lastFrames = frames;
            lastBytes = bytes;
          }
        }
        if (conn.longPoll) {
          conn.finish(bytes);
          continue;
        }
        if (conn.write(bytes, now)) {
          writes++;
          bytesOut += bytes.length;
        }
      } catch (err) {
        this.fail(conn, 'flush', err);
      }
    }
    if (writes > 0) {
      this.metrics.writes.inc(writes);
      this.metrics.bytesWritten.inc(bytesOut);
    }
    if (coalesced > 0) this.metrics.coalescedWrites.inc(coalesced);
    return coalesced;
  }

  /** One timer for every connection: heartbeats, long-poll deadlines, token and lifetime ends. */
  private tick(): void {
    if (this.shedEpisode > 0 && this.queued <= this.budget / 2) {
      this.logger.info('queued bytes back under half of --max-queued-bytes-total', {
        event: 'queued_bytes_budget_recovered',
        shed: this.shedEpisode,
        queued: this.queued,
      });
      this.shedEpisode = 0;
    }
    const now = Date.now();
    const idleBefore = now - this.options.heartbeatMs;
    for (const conn of this.connections) {
      try {
        conn.tick(now, idleBefore);
      } catch (err) {
        this.fail(conn, 'tick', err);
      }
    }
  }
}
