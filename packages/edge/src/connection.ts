import type { BrokerMessage, HeaderList, HttpResponse } from '@cyclone-sse/common';

export type CloseReason = 'client' | 'slow' | 'shutdown' | 'error' | 'limit' | 'token' | 'lifetime';

/** Every close reason (metrics create one series per reason at zero). */
export const CLOSE_REASONS: readonly CloseReason[] = ['client', 'slow', 'shutdown', 'error', 'limit', 'token', 'lifetime'];
export type ConnectionState = 'replaying' | 'live' | 'closed';

/**
 * One subscriber's response stream. The hub appends frames to `pending` during an event-loop
 * turn and flushes them with one cork + one write; after `write()` returns false the bytes go to
 * `queue` until `onWritable`.
 */
export class SseConnection {
  state: ConnectionState;
  /** Highest seq written (or covered by a reset); frames at or below it are duplicates. */
  lastSeq = -1;
  /** Live messages that arrived while replaying history. */
  held: BrokerMessage[] | undefined;
  /** Frame bytes in `held` (bounded by the hub like the write queue). */
  heldBytes = 0;
  /** Settles the replay's wait for the socket to drain (true) or for the close (false). */
  onDrained: ((open: boolean) => void) | undefined;
  /** Frames for this turn (one entry in the common case: shared buffers, no copy). */
  pending: Buffer[] = [];
  dirty = false;
  /** True after write() returned false until onWritable drains the queue. */
  blocked = false;
  queue: Buffer[] = [];
  queuedBytes = 0;
  lastWriteAt: number;
  /** Long-poll: the response ends with the first flush (or at `deadline`). */
  readonly longPoll: boolean;
  deadline = 0;
  headersSent = false;
  closeReason: CloseReason | undefined;
  /** When the stream must end because its token expires (ms since the epoch; 0 = never). */
  endAt = 0;
  /** When the stream ends because of --max-stream-seconds (ms since the epoch; 0 = never). */
  lifetimeEndAt = 0;
  /** Client address (for the per-IP limit). */
  ip = '';

  constructor(
    readonly res: HttpResponse,
    readonly channels: readonly string[],
    readonly headers: HeaderList,
    longPoll: boolean,
    now: number,
  ) {
    this.longPoll = longPoll;
    this.lastWriteAt = now;
    this.state = 'live';
  }

  get closed(): boolean {
    return this.state === 'closed';
  }

  /** Accepts a live message; returns true when the connection became dirty (needs a flush). */
  offer(msg: BrokerMessage): boolean {
    if (this.state !== 'live') {
      if (this.state === 'replaying') {
        (this.held ??= []).push(msg);
        this.heldBytes += msg.frame.length;
      }
      return false;
    }
    if (msg.seq <= this.lastSeq) return false;
    this.lastSeq = msg.seq;
    this.pending.push(msg.frame);
    if (this.dirty) return false;
    this.dirty = true;
    return true;
  }

  /** Forgets held live messages at or below `seq` (the replay reads them from history). */
  pruneHeld(seq: number): void {
    if (!this.held) return;
    this.held = this.held.filter((m) => m.seq > seq);
    this.heldBytes = 0;
    for (const m of this.held) this.heldBytes += m.frame.length;
  }

  /** Appends raw bytes (replay, reset, heartbeat) to this turn's output. */
  append(bytes: Buffer): boolean {
    this.pending.push(bytes);
    if (this.dirty) return false;
    this.dirty = true;
    return true;
  }
}
