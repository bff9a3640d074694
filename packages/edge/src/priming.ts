import {
  OPEN_COMMENT,
  errorFields,
  formatId,
  isHubError,
  isPartitionedBroker,
  type Broker,
  type Cursor,
  type Logger,
} from '@cyclone-sse/common';
import type { UwsSseConnection } from './uws-sse-connection.js';
import type { RetryHint } from './retry-hint.js';

/** First bytes of a stream opened without a cursor: `retry:`, the priming id, `:ok`. */
export function primingBytes(retry: RetryHint, cursor: Cursor | string): Buffer {
  return Buffer.from(`${retry.field()}id: ${idOf(cursor)}\n${OPEN_COMMENT}`);
}

function idOf(cursor: Cursor | string): string {
  return typeof cursor === 'string' ? cursor : formatId(cursor.epoch, cursor.seq);
}

/** The priming id on its own, for a stream whose first bytes went out while it waited for the broker. */
function primingIdBlock(cursor: Cursor | string): Buffer {
  return Buffer.from(`id: ${idOf(cursor)}\n\n`);
}

/** `lastSeq` while P is read: below every position's seq. */
const HOLDING = -2;

/**
 * Where P comes from: one position on a single sequence, one per partition of the stream's
 * channels on a partitioned broker (Redis Cluster). The single sequence is the one-partition case.
 */
interface PositionSource {
  /** P taken synchronously, valid in the same turn as the attach (see `Primer`), else undefined. */
  live(conn: UwsSseConnection): Cursor[] | undefined;
  /** P read from the store. */
  read(conn: UwsSseConnection): Promise<Cursor[]>;
}

function positionSource(broker: Broker): PositionSource {
  if (isPartitionedBroker(broker)) {
    return {
      live: (conn) => broker.livePositions(conn.channels),
      // A message published before the subscriptions are confirmed may not reach this edge live.
      read: async (conn) => {
        await broker.whenSubscribed(conn.channels);
        return broker.positions(conn.channels);
      },
    };
  }
  return {
    live: () => {
      const now = broker.livePosition?.();
      return now === undefined ? undefined : [now];
    },
    read: async () => [await broker.position()],
  };
}

/**
 * The priming id (docs/protocol.md#priming-id, docs/architecture.md#resume-and-priming). A stream opened without a cursor
 * gets `id: P` before `:ok`, where P splits the messages of its channels exactly: every message
 * with seq > P reaches this connection, none with seq <= P does. Then a browser that loses the
 * stream before its first message reconnects with `Last-Event-ID: P`, on this edge or another,
 * and the replay (history after P) joins the live stream with no gap and no duplicate.
 *
 * Why P is exact. The connection is in the hub's index (attached) before P is taken, so whatever
 * the sink gets from then on is offered to it.
 * - `broker.livePosition()` (memory broker; Redis edge whose live tracker is in sync): every
 *   message <= P was passed to the sink before this call, i.e. before the connection could see
 *   it; every message > P comes to the sink later, so to the connection. Taken in the same turn as
 *   the attach: nothing runs in between.
 * - Otherwise P = `broker.position()`, the top of the sequence read from the store. The
 *   connection holds what the sink delivers meanwhile. A message > P was sequenced after the
 *   read, hence after the attach, so it reaches the sink after the attach: held or live. Held
 *   messages <= P (in flight, or a catch-up) are dropped. A `lost` call during the hold (the
 *   store lost data, a gap history cannot cover) makes P unprovable: the stream ends with a
 *   `retry:` hint instead.
 * - The broker unreachable (not ready, or the read fails): the stream is parked
 *   (waiting-streams.ts) and gets its priming id from the position the live stream reached, or,
 *   when the broker cannot tell, here again once the broker is back.
 *
 * On a partitioned broker (Redis Cluster) P has one position per partition of the stream's
 * channels (`livePositions`, `positions`), and each is exact as above, per partition — with one
 * more step: the channels' subscriptions are confirmed before a position is read (a message
 * published before the confirmation may not reach this edge live; one after it does).
 */
export class Primer {
  private failing = false;
  private readonly positions: PositionSource;

  constructor(
    private readonly broker: Broker,
    private readonly retry: RetryHint,
    private readonly logger: Logger,
    /** Parks a stream while the broker is unreachable (`WaitingStreams.park`). */
    private readonly park: (conn: UwsSseConnection) => void,
  ) {
    this.positions = positionSource(broker);
  }

  /**
   * Writes the status line, headers and the first bytes with the priming id, now or after one
   * broker read. Call right after `hub.attach(conn)`, in the same turn, on a live stream — or on
   * a stream released by the waiting streams, whose first bytes went out without a priming id:
   * it then gets `id: P` as a block of its own.
   */
  open(conn: UwsSseConnection): void {
    const now = this.positions.live(conn);
    if (now !== undefined) {
      this.start(conn, now);
      return;
    }
    if (!this.broker.isReady()) {
      this.park(conn);
      return;
    }
    conn.hold(HOLDING); // hold live messages until P is known
    conn.takeResetWhileHeld(); // a reset from before the hold; one during it makes P unprovable
    this.openAfterRead(conn).catch((err: unknown) => {
      // Not a read failure (handled inside): an unexpected exception while starting the stream.
      // Contained to this connection, which ends with a retry: hint and resumes.
      this.logger.error('priming failed', { event: 'priming_failed', ...errorFields(err) });
      if (!conn.closed) conn.destroy();
    });
  }

  private async openAfterRead(conn: UwsSseConnection): Promise<void> {
    let positions: Cursor[];
    try {
      positions = await this.positions.read(conn);
      if (this.failing) this.logger.info('priming position read again', { event: 'priming_position_restored' });
      this.failing = false;
    } catch (err) {
      if (!this.failing) this.logger.warn('priming position read failed', { event: 'priming_position_failed', ...errorFields(err) });
      this.failing = true;
      if (conn.closed) return;
      if (isHubError(err) && err.code === 'BROKER_UNAVAILABLE') this.park(conn);
      else conn.close('error', Buffer.from(this.retry.field()));
      return;
    }
    if (conn.closed) return;
    if (conn.takeResetWhileHeld()) {
      this.logger.debug('messages lost while priming', { event: 'priming_lost' });
      conn.close('error', Buffer.from(this.retry.field()));
      return;
    }
    // Held frames of another epoch than their partition's P are not after P (the tracker is
    // behind the store). A message without a partition is in partition 0 (the single sequence).
    const after = new Map(positions.map((p) => [p.partition ?? 0, { seq: p.seq, prefix: Buffer.from(`id: ${p.epoch}-`) }]));
    conn.filterHeld((m) => {
      const p = after.get(m.partition ?? 0);
      return p !== undefined && m.seq > p.seq && m.frame.subarray(0, p.prefix.length).equals(p.prefix);
    });
    this.start(conn, positions);
    conn.goLive();
  }

  private start(conn: UwsSseConnection, positions: Cursor[]): void {
    for (const p of positions) conn.advance(p);
    this.write(conn, conn.multiPartition ? conn.idText(positions[0]!) : positions[0]!);
  }

  private write(conn: UwsSseConnection, id: Cursor | string): void {
    if (!conn.opened) {
      conn.open(primingBytes(this.retry, id));
      return;
    }
    conn.append(primingIdBlock(id));
    conn.goLive(); // a released stream was waiting
  }
}
