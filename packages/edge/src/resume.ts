import {
  OPEN_COMMENT,
  errorFields,
  formatId,
  isHubError,
  isPartitionedBroker,
  type Broker,
  type Cursor,
  type Logger,
  type ResetReason,
} from '@cyclone-sse/common';
import type { UwsSseConnection } from './uws-sse-connection.js';
import type { Hub } from './hub.js';
import type { EdgeMetrics } from './metrics.js';
import type { RetryHint } from './retry-hint.js';

/** Messages one replay page carries at most (bounds the history script's work per call). */
const PAGE_MESSAGES = 1000;

export interface ResumeOptions {
  retry: RetryHint;
  /** The per-connection byte budget: one page is at most this many frame bytes. */
  maxQueuedBytes: number;
  /** Frame bytes one resume replays at most before the rest is answered with a reset. */
  maxReplayBytes: number;
  longPollMaxEvents: number;
}

export interface ResumeDeps {
  hub: Hub;
  broker: Broker;
  metrics: EdgeMetrics;
  logger: Logger;
  options: ResumeOptions;
  /** Parks a stream while the broker is unreachable (`WaitingStreams.park`). */
  park(conn: UwsSseConnection, cursor: string): void;
}

/** The reset event: tells the client history cannot cover its gap, and moves its cursor to the top. */
export function resetFrame(channels: readonly string[], reason: ResetReason, id: Cursor | string): Buffer {
  const text = typeof id === 'string' ? id : formatId(id.epoch, id.seq);
  return Buffer.from(`id: ${text}\nevent: reset\ndata: ${JSON.stringify({ channels, reason })}\n\n`);
}

/**
 * Resume: a stream opened with a cursor gets its first bytes (a long-poll answers only at its
 * end), then history after the cursor, then the live stream. The connection was created
 * replaying, so live messages are held meanwhile. The replay is read and written in pages of at
 * most the per-connection byte budget; the next page is read only once the socket took the previous one,
 * so a client that does not read costs one page, not its whole history. Held live messages that
 * a page already covers are dropped; the rest are bounded by the connection (past the budget the
 * connection is closed as slow — safe, it resumes). Past --max-replay-bytes the channels not yet
 * replayed get `event: reset` (reason replay_limit): the client reloads state instead of pulling
 * gigabytes. The handover to live is gap-free and duplicate-free: each page is read atomically
 * with the top of the sequence, everything at or below the last page's top came from history and
 * every held message above it follows.
 *
 * A long-poll reads one page per partition of its channels, at most --long-poll-max-events and the
 * byte budget over all of them, and ends with what they held (one response).
 *
 * While the broker is unreachable (not ready, or the first read fails) the stream is parked
 * (waiting-streams.ts) and resumed from its cursor once the broker is back. A read that fails
 * after pages went out ends the stream with a `retry:` hint: its client resumes from the last id
 * it got.
 */
export class Resumer {
  constructor(private readonly deps: ResumeDeps) {}

  /** Call right after `hub.attach(conn)` for a connection created with `replaying: true`. */
  async open(conn: UwsSseConnection, cursor: string): Promise<void> {
    if (!this.deps.broker.isReady()) {
      this.deps.park(conn, cursor); // it writes the first bytes
      return;
    }
    // First bytes of a stream opened with a cursor: `retry:` and `:ok` (no priming id: it has one).
    if (!conn.longPoll) conn.open(Buffer.from(this.deps.options.retry.field() + OPEN_COMMENT));
    await this.run(conn, cursor);
  }

  /** Resumes a stream that waited for the broker (its first bytes went out when it was parked). */
  async release(conn: UwsSseConnection, cursor: string): Promise<void> {
    conn.hold(-1); // live messages are held from here on, as for a new resume
    await this.run(conn, cursor);
  }

  private async run(conn: UwsSseConnection, cursor: string): Promise<void> {
    const deps = this.deps;
    try {
      if ((await replay(conn, cursor, deps)) === 'unavailable') deps.park(conn, cursor);
    } catch (err) {
      if (conn.closed) return;
      if (isUnavailable(err)) {
        deps.logger.warn('history read failed', { event: 'history_failed', ...errorFields(err) });
        conn.close('error', Buffer.from(deps.options.retry.field()));
        return;
      }
      deps.hub.fail(conn, 'replay', err);
    }
  }
}

function isUnavailable(err: unknown): boolean {
  return isHubError(err) && err.code === 'BROKER_UNAVAILABLE';
}

/** The channels of a stream that share one partition (all of them, on a broker with one sequence). */
interface Group {
  channels: string[];
  partition: number | undefined;
}

function groupsOf(conn: UwsSseConnection, broker: Broker): Group[] {
  if (!isPartitionedBroker(broker)) return [{ channels: [...conn.channels], partition: undefined }];
  const byPartition = new Map<number, string[]>();
  for (const c of conn.channels) {
    const k = broker.partitionOf(c);
    const list = byPartition.get(k);
    if (list) list.push(c);
    else byPartition.set(k, [c]);
  }
  return [...byPartition.entries()].sort((a, b) => a[0] - b[0]).map(([partition, channels]) => ({ channels, partition }));
}

/** Replay state of one stream across its partition groups. */
interface ReplayRun {
  replayedBytes: number;
  replayedMessages: number;
  /** The replay limit was reached: the remaining channels are reset as replay_limit. */
  limited: boolean;
}

/** Replays history after the cursor, then goes live; 'unavailable' when the first read found the broker unreachable. */
async function replay(conn: UwsSseConnection, cursorText: string, deps: ResumeDeps): Promise<'done' | 'unavailable'> {
  const { broker, metrics } = deps;
  if (isPartitionedBroker(broker)) {
    // Reading a position before the subscriptions are confirmed could miss what comes in between.
    try {
      await broker.whenSubscribed(conn.channels);
    } catch (err) {
      if (isUnavailable(err)) return 'unavailable';
      throw err;
    }
    if (conn.closed) return 'done';
  }
  if (conn.multiPartition && isPartitionedBroker(broker)) {
    // Until a partition is replayed, the stream's id keeps the client's position there.
    for (const part of broker.codec.parse(cursorText)?.values() ?? []) conn.advance(part);
  }
  const run: ReplayRun = { replayedBytes: 0, replayedMessages: 0, limited: false };
  try {
    const groups = groupsOf(conn, broker);
    for (let g = 0; g < groups.length; g++) {
      if (conn.longPoll && g > 0 && longPollFull(run, deps.options)) {
        // The answer is full with the partitions before this one; the next poll, from its
        // last id, continues here.
        conn.finishNow();
        return 'done';
      }
      const outcome = await replayGroup(conn, cursorText, groups[g]!, g === 0, run, deps);
      if (outcome !== 'next') return outcome;
    }
  } finally {
    if (run.replayedMessages > 0) {
      metrics.replays.inc();
      metrics.replayedMessages.inc(run.replayedMessages);
      metrics.replayedBytes.inc(run.replayedBytes);
    }
  }
  conn.goLive();
  return 'done';
}

/**
 * The history of one partition's channels after the cursor, in pages; ends with the stream's
 * duplicate boundary in that partition at the top read. 'next' when the stream goes on.
 */
async function replayGroup(
  conn: UwsSseConnection,
  cursorText: string,
  group: Group,
  first: boolean,
  run: ReplayRun,
  deps: ResumeDeps,
): Promise<'done' | 'unavailable' | 'next'> {
  const { broker, options } = deps;
  // A long-poll answer holds at most --long-poll-max-events and the byte budget over all its
  // partitions: each one reads what the ones before left.
  const limits = conn.longPoll
    ? {
        maxMessages: options.longPollMaxEvents - run.replayedMessages,
        maxBytes: Math.max(1, options.maxQueuedBytes - run.replayedBytes),
      }
    : { maxMessages: PAGE_MESSAGES, maxBytes: options.maxQueuedBytes };
  let remaining = group.channels;
  const resets = new Map<ResetReason, string[]>();
  let position: Cursor | undefined;
  // Past the replay limit the rest is not read: one position read, and the channels are reset.
  let cursor = run.limited ? '' : cursorText;
  conn.rebase(-1, group.partition); // this partition's boundary is the replay's from here on
  const mine = (m: { partition?: number }): boolean => group.partition === undefined || (m.partition ?? 0) === group.partition;
  for (let n = 0; ; n++) {
    let page;
    try {
      page = await broker.history(remaining, cursor, limits);
    } catch (err) {
      if (first && n === 0 && isUnavailable(err)) return 'unavailable'; // nothing written yet
      throw err;
    }
    if (conn.closed) return 'done';
    position = page.position;
    if (page.reset) {
      const lost = new Set(page.reset.channels);
      const reason: ResetReason = run.limited ? 'replay_limit' : page.reset.reason;
      resets.set(reason, [...(resets.get(reason) ?? []), ...page.reset.channels]);
      remaining = remaining.filter((c) => !lost.has(c));
      // A new epoch (Redis lost its data between pages): continue from its top, not from the
      // old epoch's sequence numbers.
      if (page.reset.reason === 'epoch') conn.advance({ ...page.position, seq: -1 });
    }
    for (const msg of page.messages) {
      conn.appendMessage(msg);
      run.replayedBytes += msg.frame.length;
    }
    run.replayedMessages += page.messages.length;
    // Held live messages up to this top are in history (or reset): the next pages carry them.
    const top = page.position.seq;
    conn.filterHeld((m) => !mine(m) || m.seq > top);
    const last = page.messages[page.messages.length - 1];
    if (page.more && last !== undefined && resets.size > 0) {
      // More pages follow (or the long-poll answer ends here): the client's id will move past
      // this page before the replay ends, and a cut stream or the next poll would resume from
      // there — possibly past what the reset channels lost. So the reset goes out now, with
      // the id of the last message written (ids stay increasing).
      announce(conn, resets, conn.idText({ epoch: page.position.epoch, seq: last.seq, partition: group.partition }), deps);
    }
    if (conn.longPoll && page.more) {
      // The answer is full: end it now (live messages would leave a gap); the client comes back
      // with the last id it got.
      conn.finishNow();
      return 'done';
    }
    if (!page.more || remaining.length === 0 || conn.longPoll) break;
    if (run.replayedBytes >= options.maxReplayBytes) {
      resets.set('replay_limit', [...remaining]);
      run.limited = true;
      deps.logger.info('replay limit reached', { event: 'replay_limit', bytes: run.replayedBytes, channels: remaining.length });
      break;
    }
    if (last === undefined) break; // a cut page always carries a message; never spin on one that does not
    cursor = formatId(page.position.epoch, last.seq);
    if (!(await conn.drained())) return 'done';
  }
  if (position === undefined) return 'done';
  // The handover: everything at or below the top came from history; held messages above it follow.
  const reached = Math.max(conn.seqIn(group.partition), position.seq);
  conn.advance({ ...position, seq: reached });
  announce(conn, resets, conn.idText({ ...position, seq: reached }), deps);
  if (!run.limited && run.replayedBytes >= options.maxReplayBytes) run.limited = true;
  return 'next';
}

/** A long-poll answer has no room left for another partition's messages. */
function longPollFull(run: ReplayRun, options: ResumeOptions): boolean {
  return run.replayedMessages >= options.longPollMaxEvents || run.replayedBytes >= options.maxQueuedBytes;
}

/** Writes one reset event per reason (the channels history cannot cover), then forgets them. */
function announce(conn: UwsSseConnection, resets: Map<ResetReason, string[]>, id: string, deps: ResumeDeps): void {
  for (const [reason, affected] of resets) {
    conn.append(resetFrame(affected, reason, id));
    deps.metrics.resets.inc({ reason });
    deps.logger.debug('resume reset', { event: 'resume_reset', reason });
  }
  resets.clear();
}
