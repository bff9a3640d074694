import { HEARTBEAT_FRAME, formatId, type BrokerMessage, type Cursor, type HeaderList, type HttpResponse } from '@cyclone-sse/common';
import { StreamCursor } from './stream-cursor.js';
import { NOT_ATTACHED, type ConnectionHost, type ConnectionTerms } from './connection-host.js';
import type { CloseReason } from './reasons.js';
import { tokenExpiredFrame } from './retry-hint.js';
import { PIECE_BYTES, PROBE_BYTES, SENT, probe, writeChunked } from './uws-write.js';

/**
 * `live`: frames are written. `replaying`: live frames are held (a replay or a position read is
 * running). `waiting`: the broker is unreachable; live frames are dropped (the release reads what
 * follows the stream's position from history), heartbeats go on (waiting-streams.ts).
 */
export type ConnectionState = 'replaying' | 'live' | 'waiting' | 'closed';

const HEARTBEAT = Buffer.from(HEARTBEAT_FRAME);
const EMPTY = Buffer.alloc(0);

/**
 * One subscriber's response stream on uWS. Frames given to it during an event-loop turn collect
 * in `pending`; the hub's flush writes them with one cork + one write (`write`; uws-write.ts for
 * writes past 16 KiB). When a write meets backpressure the connection is blocked: the rest of
 * that write waits (`unsent`, what uWS itself used to hold), later bytes go to its queue (bounded
 * by the byte budget; past it the connection is closed as slow) until `writable` drains both.
 *
 * What it holds for its client — the rest of the write, the queue, and what uWS kept of the
 * piece that met backpressure — is charged to the hub (`ConnectionHost.charge`), which keeps the
 * edge's total under --max-queued-bytes-total.
 */
export class UwsSseConnection {
  private _state: ConnectionState;
  private host: ConnectionHost = NOT_ATTACHED;
  /** Highest seq written (or covered by a reset); frames at or below it are duplicates. */
  private _lastSeq = -1;
  /** Channels over several partitions (Redis Cluster): the position per partition, else undefined. */
  private cursor: StreamCursor | undefined;
  /** A reset went out while live messages were held (priming: the position read is not provable). */
  private resetWhileHeld = false;
  /** Live messages that arrived while replaying history (or while the priming id is read). */
  private held: BrokerMessage[] | undefined;
  /** Frame bytes in `held` (bounded like the write queue). */
  private heldBytes = 0;
  /** Settles the replay's wait for the socket to drain (true) or for the close (false). */
  private onDrained: ((open: boolean) => void) | undefined;
  /** Frames for this turn (one entry in the common case: shared buffers, no copy). */
  private pending: Buffer[] = [];
  private dirty = false;
  /** True after a write met backpressure until onWritable drained everything. */
  private blocked = false;
  /** The rest of the write that met backpressure (a view, no copy); it goes out before the queue. */
  private unsent: Buffer | undefined;
  /** Bytes that came while blocked; past --max-queued-bytes the connection is slow. */
  private queue: Buffer[] = [];
  private queuedBytes = 0;
  /**
   * At most what uWS buffers for this connection: the piece that met backpressure (uWS copies
   * what the kernel did not take), plus failed probes. Nothing more is handed to uWS until a
   * probe found its buffer empty (`drainQueue`). A piece that fit uWS's cork buffer and failed
   * only when the cork was released is seen at the next write.
   */
  private uwsBytes = 0;
  /** unsent + queuedBytes + uwsBytes, as last charged to the host. */
  private charged = 0;
  private lastWriteAt: number;
  private headersSent = false;
  /** Long-poll: the response ends with the first flush (or at `deadline`). */
  readonly longPoll: boolean;
  readonly ip: string;
  private readonly endAt: number;
  private readonly lifetimeEndAt: number;
  private readonly deadline: number;

  constructor(
    private readonly res: HttpResponse,
    readonly channels: readonly string[],
    private readonly headers: HeaderList,
    longPoll: boolean,
    now: number,
    terms: ConnectionTerms = {},
  ) {
    this.longPoll = longPoll;
    this.lastWriteAt = now;
    this._state = terms.replaying === true ? 'replaying' : 'live';
    this.ip = terms.ip ?? '';
    this.endAt = terms.endAt ?? 0;
    this.lifetimeEndAt = terms.lifetimeEndAt ?? 0;
    this.deadline = terms.deadline ?? 0;
  }

  get state(): ConnectionState {
    return this._state;
  }

  get closed(): boolean {
    return this._state === 'closed';
  }

  get lastSeq(): number {
    return this._lastSeq;
  }

  /** Spreads over these partitions (more than one): ids become multi-partition cursors. */
  setPartitions(partitions: readonly number[]): StreamCursor | undefined {
    return (this.cursor = partitions.length > 1 ? new StreamCursor(partitions) : undefined);
  }

  /** True for a stream over several partitions. */
  get multiPartition(): boolean {
    return this.cursor !== undefined;
  }

  /**
   * Moves the duplicate boundary of `position`'s partition to it (the epoch too, for a stream
   * over several partitions).
   */
  advance(position: Cursor): void {
    if (this.cursor) this.cursor.set(position);
    else this._lastSeq = position.seq;
  }

  /** The stream's id after `position` (its own cursor for several partitions). */
  idText(position: Cursor): string {
    return this.cursor ? this.cursor.text() : formatId(position.epoch, position.seq);
  }

  /** A failover moved `partition`'s sequence back to `seq`: the duplicate boundary follows. */
  rebase(seq: number, partition: number | undefined): void {
    if (this.cursor) this.cursor.lower(partition, seq);
    else if (this._lastSeq > seq) this._lastSeq = seq;
  }

  /** The hub reset some of this stream's channels at `position` (a gap history cannot cover). */
  resetAt(position: Cursor): void {
    this.advance(position);
    if (this._state === 'replaying') this.resetWhileHeld = true;
  }

  /** True (once) when a reset came while live messages were held. */
  takeResetWhileHeld(): boolean {
    const r = this.resetWhileHeld;
    this.resetWhileHeld = false;
    return r;
  }

  /** The status line and headers went out (`open`). */
  get opened(): boolean {
    return this.headersSent;
  }

  /** Bytes held for the client (the rest of a write, the queue, uWS's copy of a piece), as charged to the hub. */
  get queued(): number {
    return this.charged;
  }

  /** Charges the change of what it holds to the host; may close this connection (the edge's budget). */
  private account(): void {
    const now = (this.unsent?.length ?? 0) + this.queuedBytes + this.uwsBytes;
    const before = this.charged;
    if (now === before) return;
    this.charged = now;
    this.host.charge(this, before, now);
  }

  /** Called by the hub when it takes the connection in. */
  attachTo(host: ConnectionHost): void {
    this.host = host;
  }

  // ---- what goes out this turn ----

  /**
   * Accepts a live message: pending for this turn's flush when live (duplicates dropped), held
   * while replaying (past the byte budget the connection is closed as slow: it resumes).
   */
  offer(msg: BrokerMessage): void {
    if (this._state !== 'live') {
      if (this._state === 'replaying') {
        (this.held ??= []).push(msg);
        this.heldBytes += msg.frame.length;
        if (this.heldBytes > this.host.options.maxQueuedBytes) this.close('slow');
      }
      return;
    }
    if (this.cursor) {
      if (!this.cursor.accept(msg.partition, msg.seq, msg.frame, msg.epoch)) return;
      this.pending.push(this.host.sharedFrame(msg, this.cursor) ?? this.cursor.rewrite(msg.frame));
    } else {
      if (msg.seq <= this._lastSeq) return;
      this._lastSeq = msg.seq;
      this.pending.push(msg.frame);
    }
    if (this.dirty) return;
    this.dirty = true;
    this.host.markDirty(this);
  }

  /**
   * Appends raw bytes (a replayed frame, a reset) to this turn's output. A long-poll answer is one
   * response: what its replay appends stays here until the replay ends (`goLive`, `finishNow`),
   * even across the reads of several partitions.
   */
  append(bytes: Buffer): void {
    if (this._state === 'closed') return;
    this.pending.push(bytes);
    if (this.dirty || (this.longPoll && this._state === 'replaying')) return;
    this.dirty = true;
    this.host.markDirty(this);
  }

  /** Appends a replayed message and moves the duplicate boundary to it. */
  appendMessage(msg: BrokerMessage): void {
    if (this.cursor) {
      this.cursor.accept(msg.partition, msg.seq, msg.frame);
      this.append(this.cursor.rewrite(msg.frame));
      return;
    }
    this.append(msg.frame);
    this._lastSeq = msg.seq;
  }

  /** Seq the stream has received up to in `partition` (its only one: `lastSeq`). */
  seqIn(partition: number | undefined): number {
    return this.cursor ? this.cursor.seqOf(partition) : this._lastSeq;
  }

  /** This turn's frames, handed to the flush (the connection is clean afterwards). */
  takePending(): Buffer[] {
    const frames = this.pending;
    this.pending = [];
    this.dirty = false;
    return frames;
  }

  // ---- history and the handover to live (see resume.ts, priming.ts) ----

  /** Moves the duplicate boundary: frames at or below `seq` are not written from now on. */
  setLastSeq(seq: number): void {
    this._lastSeq = seq;
  }

  /** Holds live messages from now on (until `goLive`); `seq` marks the hold. */
  hold(seq: number): void {
    this._state = 'replaying';
    this._lastSeq = seq;
  }

  /**
   * Parks the stream while the broker is unreachable (waiting-streams.ts): held and later live
   * messages are dropped, heartbeats and the long-poll deadline go on. `hold` or `goLive` ends it.
   */
  wait(): void {
    if (this._state === 'closed') return;
    this._state = 'waiting';
    this.held = undefined;
    this.heldBytes = 0;
  }

  /** Keeps only the held live messages `keep` accepts (the others are in history, or not after P). */
  filterHeld(keep: (msg: BrokerMessage) => boolean): void {
    if (!this.held) return;
    this.held = this.held.filter(keep);
    this.heldBytes = 0;
    for (const m of this.held) this.heldBytes += m.frame.length;
  }

  /** Ends the hold: delivers held live messages newer than `lastSeq`, then is live. */
  goLive(): void {
    if (this._state === 'closed') return;
    const held = this.held;
    this.held = undefined;
    this._state = 'live';
    this.heldBytes = 0;
    if (held) for (const msg of held) this.offer(msg);
    if (this.pending.length > 0 && !this.dirty) {
      // A long-poll's replayed frames: this turn's flush ends the answer with them.
      this.dirty = true;
      this.host.markDirty(this);
    }
  }

  /**
   * Resolves true once everything given to the connection so far has gone to the socket (the
   * replay reads its next page only then), false when the connection closed first.
   */
  drained(): Promise<boolean> {
    if (this._state === 'closed') return Promise.resolve(false);
    if (!this.dirty && !this.blocked) return Promise.resolve(true);
    this.settleDrained(false); // one waiter at a time
    return new Promise((resolve) => (this.onDrained = resolve));
  }

  private settleDrained(open: boolean): void {
    const settle = this.onDrained;
    if (settle === undefined) return;
    this.onDrained = undefined;
    settle(open);
  }

  // ---- writing ----

  /** Writes the status line, the headers and the first bytes of a stream. */
  open(first: Buffer): void {
    this.headersSent = true;
    const res = this.res;
    const headers = this.headers;
    res.cork(() => {
      res.writeStatus('200 OK');
      for (const [k, v] of headers) res.writeHeader(k, v);
      res.write(first);
    });
  }

  /**
   * Writes (or queues, while blocked) one buffer; true when it went to the socket. The caller
   * counts writes and bytes (the flush, once per turn). Settles a drain waiter once nothing waits.
   */
  write(bytes: Buffer, now: number): boolean {
    this.lastWriteAt = now;
    if (this.blocked) {
      this.queue.push(bytes);
      this.queuedBytes += bytes.length;
      if (this.queuedBytes > this.host.options.maxQueuedBytes) this.close('slow');
      else this.account();
      return false;
    }
    const sent = writeChunked(this.res, bytes);
    if (sent === SENT) {
      if (this.uwsBytes !== 0) {
        this.uwsBytes = 0; // a write went through: uWS's buffer was empty
        this.account();
      }
      this.settleDrained(true);
      return true;
    }
    this.blocked = true;
    this.host.metrics.backpressure.inc();
    this.keepRest(bytes, sent);
    return true;
  }

  /** After backpressure at `sent`: uWS holds at most the piece before it, the rest waits here. */
  private keepRest(bytes: Buffer, sent: number): void {
    this.uwsBytes = Math.min(sent, PIECE_BYTES);
    this.unsent = sent < bytes.length ? bytes.subarray(sent) : undefined;
    this.account();
  }

  /**
   * uWS onWritable: the socket drained some. With an onWritable handler registered, uWS does not
   * drain its own backpressure buffer by itself — only a write does (it flushes that buffer
   * first). So write what waits, or, when nothing does, a 2-byte comment line (harmless between
   * frames, which is where uWS's buffer always ends) to push uWS's buffer out.
   */
  writable(): boolean {
    const ok = this.drainQueue();
    if (ok && this._state !== 'closed' && !this.blocked) this.settleDrained(true);
    return ok;
  }

  /**
   * A write while uWS's own buffer is not empty is appended to that buffer whole, whatever the
   * kernel takes: handing uWS the queue on every onWritable would move a reader that is slower
   * than its channel into uWS's buffer, without bound, while our queue never reached its limit.
   * So a probe goes first: it flushes uWS's buffer and went through only when that buffer is
   * empty. Then the rest of the blocked write, then the queue, each up to the next backpressure;
   * what the socket does not take waits for the next onWritable (and what keeps coming meanwhile
   * fills the queue, up to --max-queued-bytes).
   */
  private drainQueue(): boolean {
    if (this._state === 'closed' || !this.blocked) return true;
    const res = this.res;
    if (!probe(res)) {
      this.uwsBytes += PROBE_BYTES;
      this.account();
      return false;
    }
    this.uwsBytes = 0;
    const unsent = this.unsent;
    if (unsent !== undefined) {
      const sent = writeChunked(res, unsent);
      if (sent !== SENT) {
        this.keepRest(unsent, sent);
        return false;
      }
      this.unsent = undefined;
    }
    if (this.queue.length > 0) {
      const bytes = this.queue.length === 1 ? (this.queue[0] as Buffer) : Buffer.concat(this.queue);
      this.queue = [];
      this.queuedBytes = 0;
      const metrics = this.host.metrics;
      metrics.writes.inc();
      metrics.bytesWritten.inc(bytes.length);
      const sent = writeChunked(res, bytes);
      if (sent !== SENT) {
        this.keepRest(bytes, sent);
        return false;
      }
    }
    this.blocked = false;
    this.account();
    return true;
  }

  /** Heartbeat, token expiry, lifetime and long-poll deadline: called by the hub's one timer. */
  tick(now: number, idleBefore: number): void {
    if (this.endAt !== 0 && now >= this.endAt) {
      this.close('token', tokenExpiredFrame(this.host.options.retry));
      return;
    }
    if (this.lifetimeEndAt !== 0 && now >= this.lifetimeEndAt) {
      this.close('lifetime', Buffer.from(this.host.options.retry.field() + '\n'));
      return;
    }
    if (this.longPoll) {
      if (now >= this.deadline && (this._state === 'live' || this._state === 'waiting')) this.finish(HEARTBEAT);
    } else if (
      this.lastWriteAt <= idleBefore &&
      !this.dirty &&
      (this._state === 'live' || (this._state === 'waiting' && this.headersSent))
    ) {
      const metrics = this.host.metrics;
      metrics.heartbeats.inc();
      if (this.write(HEARTBEAT, now)) {
        metrics.writes.inc();
        metrics.bytesWritten.inc(HEARTBEAT.length);
      }
    }
  }

  // ---- ending ----

  /** Ends a long-poll response with `body` (status, headers and body in one go). */
  finish(body: Buffer): void {
    const res = this.res;
    const headers = this.headers;
    this.host.detach(this, 'client');
    res.cork(() => {
      res.writeStatus('200 OK');
      for (const [k, v] of headers) res.writeHeader(k, v);
      res.end(body);
    });
    const metrics = this.host.metrics;
    metrics.writes.inc();
    metrics.bytesWritten.inc(body.length);
  }

  /** Ends a long-poll response now with what is pending, ignoring held live messages. */
  finishNow(): void {
    if (this._state === 'closed') return;
    this.held = undefined;
    const frames = this.takePending();
    this.finish(frames.length === 0 ? HEARTBEAT : Buffer.concat(frames));
  }

  /**
   * Ends the stream from the server side with an optional last chunk; 'slow' closes the socket
   * at once (its bytes would not get through anyway).
   */
  close(reason: CloseReason, last?: Buffer): void {
    if (this._state === 'closed') return;
    // Frames waiting for a deferred flush go out first (unless dropped bytes are ahead of them).
    const pending = this.queuedBytes === 0 && this.unsent === undefined && this.pending.length > 0 ? this.pending : undefined;
    const host = this.host;
    host.detach(this, reason);
    host.logger.debug('connection closed', { event: 'connection_closed', reason });
    const res = this.res;
    if (reason === 'slow') {
      res.close();
      return;
    }
    const headers = this.headersSent ? undefined : this.headers;
    const body = pending ? Buffer.concat(last ? [...pending, last] : pending) : (last ?? EMPTY);
    res.cork(() => {
      if (headers) {
        res.writeStatus('200 OK');
        for (const [k, v] of headers) res.writeHeader(k, v);
      }
      res.end(body);
    });
  }

  /** Closes the socket at once (an unexpected exception on this connection: its client resumes). */
  destroy(): void {
    if (this._state === 'closed') return;
    this.host.detach(this, 'error');
    try {
      this.res.close();
    } catch {
      // The response is already gone (that may be the very cause): nothing left to release.
    }
  }

  /**
   * Called by the hub's detach: drops everything still waiting, tells a drain waiter and returns
   * the reason to count. A client gone while bytes were still waiting for it (our queue,
   * or uWS's after a failed write) was not keeping up: uWS's stall timer cut it.
   */
  release(reason: CloseReason): CloseReason {
    if (reason === 'client' && (this.queuedBytes > 0 || this.blocked)) reason = 'slow';
    this.unsent = undefined;
    this.queuedBytes = 0;
    this.queue = [];
    this.uwsBytes = 0;
    this.held = undefined;
    this.heldBytes = 0;
    this.pending = [];
    this._state = 'closed';
    this.account(); // gives its bytes back to the hub's total
    this.settleDrained(false);
    return reason;
  }
}
