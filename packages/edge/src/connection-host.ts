import type { BrokerMessage, Logger } from '@cyclone-sse/common';
import type { StreamCursor } from './stream-cursor.js';
import type { EdgeMetrics } from './metrics.js';
import type { CloseReason } from './reasons.js';
import type { RetryHint } from './retry-hint.js';
import type { UwsSseConnection } from './uws-sse-connection.js';

/** What a connection needs from the hub it is attached to (Hub implements it). */
export interface ConnectionHost {
  readonly options: {
    /** The per-connection byte budget: write queue and held live frames each. */
    readonly maxQueuedBytes: number;
    /** The `retry:` hints (token expiry, --max-stream-seconds). */
    readonly retry: RetryHint;
  };
  readonly metrics: EdgeMetrics;
  readonly logger: Logger;
  /** Queues the connection for the end-of-turn flush (called once per turn, when it turns dirty). */
  markDirty(conn: UwsSseConnection): void;
  /** Takes the connection out of the hub (index, per-IP count, gauges); calls `release`. */
  detach(conn: UwsSseConnection, reason: CloseReason): void;
  /**
   * The bytes the connection holds for its client (its queue and what uWS buffers for it) went
   * from `before` to `after`: the edge's budget (`Hub.charge`). Growth past the budget closes the
   * connections holding the most, this one included when it is the largest.
   */
  charge(conn: UwsSseConnection, before: number, after: number): void;
  /**
   * A live message's frame with the id line shared by every stream over `cursor`'s partitions
   * (built once per message and partition set), or undefined when this stream's own positions
   * do not allow it (it then writes its own cursor).
   */
  sharedFrame(msg: BrokerMessage, cursor: StreamCursor): Buffer | undefined;
}

function notAttached(): never {
  throw new Error('connection used before Hub.attach');
}

/** A connection's host until `Hub.attach` gives it the real one: any use is a programming error. */
export const NOT_ATTACHED: ConnectionHost = {
  get options() {
    return notAttached();
  },
  get metrics() {
    return notAttached();
  },
  get logger() {
    return notAttached();
  },
  markDirty: notAttached,
  detach: notAttached,
  charge: notAttached,
  sharedFrame: notAttached,
};

/** What a stream is opened with besides its response (all optional: a plain live stream). */
export interface ConnectionTerms {
  /** Client address (for the per-IP limit). */
  ip?: string;
  /** When the stream must end because its token expires (ms since the epoch; 0 = never). */
  endAt?: number;
  /** When the stream ends because of --max-stream-seconds (ms since the epoch; 0 = never). */
  lifetimeEndAt?: number;
  /** Long-poll: when the response ends with a heartbeat if nothing came (ms since the epoch). */
  deadline?: number;
  /** Opened with a cursor: live messages are held until the replay hands over. */
  replaying?: boolean;
}
