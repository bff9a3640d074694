import {
  HEARTBEAT_FRAME,
  formatId,
  type BrokerMessage,
  type BrokerSink,
  type HttpResponse,
  type Cursor,
  type Logger,
  type ResetReason,
} from '@cyclone-sse/common';
import type { SseConnection, CloseReason } from './connection.js';
import type { EdgeMetrics } from './metrics.js';
import { InternalErrors, type ErrorSite } from './internal-errors.js';
import { FlushScheduler } from './flush-scheduler.js';

export interface HubOptions {
  heartbeatMs: number;
  /** Last bytes of a stream whose token expires (event: token-expired + retry:). */
  tokenExpired: Buffer;
  /** The per-connection byte budget: write queue, held live frames and replay pages each. */
  maxQueuedBytes: number;
  longPollTimeoutMs: number;
  /** Last bytes of a stream ended by --max-stream-seconds (a retry: line). */
  lifetimeEnd: Buffer;
  /** Longest a flush waits for more messages while flushes come back to back (flush-scheduler.ts). */
  coalesceMaxDelayMs: number;
}

const HEARTBEAT = Buffer.from(HEARTBEAT_FRAME);
const NUDGE = Buffer.from(':\n');

// One cork callback for every write (no closure per connection per flush).
let corkRes: HttpResponse | undefined;
let corkBytes: Buffer | undefined;
let corkOk = true;
const corkWrite = () => {
  corkOk = corkRes!.write(corkBytes!);
};

function sameFrames(a: Buffer[], b: Buffer[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** The reset event: tells the client history cannot cover its gap, and moves its cursor to the top. */
export function resetFrame(channels: string[], reason: ResetReason, position: Cursor): Buffer {
  return Buffer.from(`id: ${formatId(position.epoch, position.seq)}\nevent: reset\ndata: ${JSON.stringify({ channels, reason })}\n\n`);
}

/**
 * Channel index and fan-out. Synchronous: a message for a channel without local subscribers is
 * dropped after one Map lookup. Frames that reach a connection in one event-loop turn are
 * written together (one cork, one write) at the end of the turn.
 */
export class Hub implements BrokerSink {
  private readonly index = new Map<string, Set<SseConnection>>();
  readonly connections = new Set<SseConnection>();
  private readonly perIp = new Map<string, number>();
  private dirty: SseConnection[] = [];
  private readonly flusher: FlushScheduler;
  private wheel: NodeJS.Timeout | undefined;
  readonly errors: InternalErrors;

  constructor(
    private readonly options: HubOptions,
    private readonly metrics: EdgeMetrics,
    private readonly logger: Logger,
  ) {
    this.errors = new InternalErrors(metrics.internalErrors, logger);
    this.flusher = new FlushScheduler(() => this.flush(), options.coalesceMaxDelayMs);
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
        if (conn.offer(msg)) this.markDirty(conn);
        else if (conn.heldBytes > this.options.maxQueuedBytes) this.close(conn, 'slow'); // replaying, safe: it resumes
      } catch (err) {
        this.fail(conn, 'fanout', err);
      }
      n++;
    }
    this.metrics.deliveries.inc(n);
    this.metrics.deliveryLag.observe(Math.max(0, Date.now() - msg.publishedAt) / 1000);
  }

  activeChannels(): Iterable<string> {
    return this.index.keys();
  }

  lost(channels: string[], reason: ResetReason, position: Cursor): void {
    const affected = new Set<SseConnection>();
    for (const ch of channels) for (const c of this.index.get(ch) ?? []) affected.add(c);
    for (const conn of affected) {
      const mine = conn.channels.filter((ch) => channels.includes(ch));
      // Continue from the position given (after an epoch change it is lower than before).
      conn.lastSeq = position.seq;
      if (conn.state === 'live' && conn.append(resetFrame(mine, reason, position))) this.markDirty(conn);
      this.metrics.resets.inc({ reason });
    }
    this.logger.warn('messages lost beyond history', { event: 'live_gap_lost', reason, channels: channels.length, connections: affected.size });
  }

  // ---- connections ----

  /** Open connections from one client address. */
  connectionsFrom(ip: string): number {
    return this.perIp.get(ip) ?? 0;
  }

  attach(conn: SseConnection): void {
    this.connections.add(conn);
    this.perIp.set(conn.ip, (this.perIp.get(conn.ip) ?? 0) + 1);
    for (const ch of conn.channels) {
      let set = this.index.get(ch);
      if (!set) {
        this.index.set(ch, (set = new Set()));
        this.metrics.channels.inc();
      }
      set.add(conn);
    }
    this.metrics.connections.inc();
    this.metrics.opened.inc();
  }

  detach(conn: SseConnection, reason: CloseReason): void {
    if (!this.connections.delete(conn)) return;
    // A client gone while bytes were still waiting for it (our queue, or uWS's after a failed
    // write) was not keeping up: uWS's stall timer cut it.
    if (reason === 'client' && (conn.queuedBytes > 0 || conn.blocked)) reason = 'slow';
    if (conn.queuedBytes > 0) {
      this.metrics.queuedBytes.dec(conn.queuedBytes);
      conn.queuedBytes = 0;
      conn.queue = [];
    }
    conn.held = undefined;
    conn.heldBytes = 0;
    conn.pending = [];
    const n = (this.perIp.get(conn.ip) ?? 1) - 1;
    if (n === 0) this.perIp.delete(conn.ip);
    else this.perIp.set(conn.ip, n);
    conn.state = 'closed';
    conn.closeReason = reason;
    for (const ch of conn.channels) {
      const set = this.index.get(ch);
      if (set && set.delete(conn) && set.size === 0) {
        this.index.delete(ch);
        this.metrics.channels.dec();
      }
    }
    this.metrics.connections.dec();
    this.metrics.closed.inc({ reason });
    this.settleDrained(conn, false);
  }

  /**
   * Resolves true once everything given to the connection so far has gone to the socket (the
   * replay reads its next page only then), false when the connection closed first.
   */
  drained(conn: SseConnection): Promise<boolean> {
    if (conn.closed) return Promise.resolve(false);
    if (!conn.dirty && !conn.blocked) return Promise.resolve(true);
    this.settleDrained(conn, false); // one waiter at a time
    return new Promise((resolve) => (conn.onDrained = resolve));
  }

  private settleDrained(conn: SseConnection, open: boolean): void {
    const settle = conn.onDrained;
    if (settle === undefined) return;
    conn.onDrained = undefined;
    settle(open);
  }

  /**
   * Contains an unexpected exception to the one connection it happened on: logged once per cause,
   * counted, and the connection closed as 'error' (its client resumes); the others keep flowing.
   */
  fail(conn: SseConnection, where: ErrorSite, err: unknown): void {
    this.errors.report(where, err);
    if (conn.closed) return;
    this.detach(conn, 'error');
    try {
      conn.res.close();
    } catch {
      // The response is already gone (that may be the very cause): nothing left to release.
    }
  }

  /** Writes raw bytes to a connection at the end of this turn. */
  push(conn: SseConnection, bytes: Buffer): void {
    if (conn.closed) return;
    if (conn.append(bytes)) this.markDirty(conn);
  }

  /** Ends replay: delivers held live messages newer than what was replayed, then goes live. */
  goLive(conn: SseConnection): void {
    if (conn.closed) return;
    const held = conn.held;
    conn.held = undefined;
    conn.state = 'live';
    conn.heldBytes = 0;
    if (held) for (const msg of held) if (conn.offer(msg)) this.markDirty(conn);
  }

  stats(): [string, number][] {
    return [...this.index].map(([ch, set]) => [ch, set.size]);
  }

  get channelCount(): number {
    return this.index.size;
  }

  private markDirty(conn: SseConnection): void {
    this.dirty.push(conn);
    this.flusher.request();
  }

  /**
   * End of turn (a little later while flushes come back to back: flush-scheduler.ts): one cork +
   * one write per dirty connection (never nested corks). Connections of the same channels hold
   * the same frames in the same order: their concatenation is built once and shared. Counters are updated once per flush, not per write. Returns how many writes
   * carried more than one frame.
   */
  flush(): number {
    const list = this.dirty;
    this.dirty = [];
    const now = Date.now();
    let lastFrames: Buffer[] | undefined;
    let lastBytes: Buffer | undefined;
    let writes = 0;
    let bytesOut = 0;
    let coalesced = 0;
    for (const conn of list) {
      const frames = conn.pending;
      conn.pending = [];
      conn.dirty = false;
      if (frames.length === 0 || conn.closed) continue;
      try {
        let bytes: Buffer;
        if (frames.length === 1) bytes = frames[0]!;
        else {
          coalesced++;
          if (lastFrames !== undefined && sameFrames(lastFrames, frames)) bytes = lastBytes!;
          else {
            bytes = Buffer.concat(frames);
            lastFrames = frames;
            lastBytes = bytes;
          }
        }
        if (conn.longPoll) {
          this.finishLongPoll(conn, bytes);
          continue;
        }
        if (this.write(conn, bytes, now)) {
          writes++;
          bytesOut += bytes.length;
        }
        if (!conn.blocked) this.settleDrained(conn, true);
      } catch (err) {
        corkRes = undefined;
        corkBytes = undefined;
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

  /** Writes (or queues, while blocked) one buffer; true when it went to the socket. */
  private write(conn: SseConnection, bytes: Buffer, now: number): boolean {
    conn.lastWriteAt = now;
    if (conn.blocked) {
      conn.queue.push(bytes);
      conn.queuedBytes += bytes.length;
      this.metrics.queuedBytes.inc(bytes.length);
      if (conn.queuedBytes > this.options.maxQueuedBytes) this.close(conn, 'slow');
      return false;
    }
    corkRes = conn.res;
    corkBytes = bytes;
    conn.res.cork(corkWrite);
    corkRes = undefined;
    corkBytes = undefined;
    if (!corkOk) {
      conn.blocked = true;
      this.metrics.backpressure.inc();
    }
    return true;
  }

  /**
   * uWS onWritable: the socket drained some. With an onWritable handler registered, uWS does not
   * drain its own backpressure buffer by itself — only a write does (it flushes that buffer
   * first). So write our queue, or, when it is empty, a 2-byte comment line (harmless between
   * frames, which is where uWS's buffer always ends) to push uWS's buffer out.
   */
  writable(conn: SseConnection): boolean {
    try {
      const ok = this.drainQueue(conn);
      if (ok && !conn.closed && !conn.blocked) this.settleDrained(conn, true);
      return ok;
    } catch (err) {
      this.fail(conn, 'writable', err);
      return true;
    }
  }

  private drainQueue(conn: SseConnection): boolean {
    if (conn.closed || !conn.blocked) return true;
    if (conn.queue.length === 0) {
      const ok = conn.res.write(NUDGE);
      conn.blocked = !ok;
      return ok;
    }
    const bytes = conn.queue.length === 1 ? conn.queue[0]! : Buffer.concat(conn.queue);
    conn.queue = [];
    this.metrics.queuedBytes.dec(conn.queuedBytes);
    conn.queuedBytes = 0;
    const ok = conn.res.write(bytes);
    this.metrics.writes.inc();
    this.metrics.bytesWritten.inc(bytes.length);
    conn.blocked = !ok;
    return ok;
  }

  /** Ends a long-poll response now with what is pending, ignoring held live messages. */
  finishNow(conn: SseConnection): void {
    if (conn.closed) return;
    conn.held = undefined;
    const frames = conn.pending;
    conn.pending = [];
    conn.dirty = false;
    this.finishLongPoll(conn, frames.length === 0 ? HEARTBEAT : Buffer.concat(frames));
  }

  private finishLongPoll(conn: SseConnection, body: Buffer): void {
    const res = conn.res;
    this.detach(conn, 'client');
    res.cork(() => {
      res.writeStatus('200 OK');
      for (const [k, v] of conn.headers) res.writeHeader(k, v);
      res.end(body);
    });
    this.metrics.writes.inc();
    this.metrics.bytesWritten.inc(body.length);
  }

  /** Ends a stream from the server side (slow, shutdown, limit) with an optional last chunk. */
  close(conn: SseConnection, reason: CloseReason, last?: Buffer): void {
    if (conn.closed) return;
    // Frames waiting for a deferred flush go out first (unless a dropped queue is ahead of them).
    const pending = conn.queuedBytes === 0 && conn.pending.length > 0 ? conn.pending : undefined;
    this.detach(conn, reason);
    this.logger.debug('connection closed', { event: 'connection_closed', reason });
    const res = conn.res;
    if (reason === 'slow') {
      res.close();
      return;
    }
    const body = pending ? Buffer.concat(last ? [...pending, last] : pending) : (last ?? Buffer.alloc(0));
    res.cork(() => {
      if (!conn.headersSent) {
        res.writeStatus('200 OK');
        for (const [k, v] of conn.headers) res.writeHeader(k, v);
      }
      res.end(body);
    });
  }

  /** One timer for every connection: heartbeats and long-poll deadlines. */
  private tick(): void {
    const now = Date.now();
    const idleBefore = now - this.options.heartbeatMs;
    for (const conn of this.connections) {
      try {
        this.tickOne(conn, now, idleBefore);
      } catch (err) {
        this.fail(conn, 'tick', err);
      }
    }
  }

  private tickOne(conn: SseConnection, now: number, idleBefore: number): void {
    if (conn.endAt !== 0 && now >= conn.endAt) {
      this.close(conn, 'token', this.options.tokenExpired);
      return;
    }
    if (conn.lifetimeEndAt !== 0 && now >= conn.lifetimeEndAt) {
      this.close(conn, 'lifetime', this.options.lifetimeEnd);
      return;
    }
    if (conn.longPoll) {
      if (now >= conn.deadline && conn.state === 'live') this.finishLongPoll(conn, HEARTBEAT);
    } else if (conn.lastWriteAt <= idleBefore && !conn.dirty && conn.state === 'live') {
      this.metrics.heartbeats.inc();
      if (this.write(conn, HEARTBEAT, now)) {
        this.metrics.writes.inc();
        this.metrics.bytesWritten.inc(HEARTBEAT.length);
      }
    }
  }
}
