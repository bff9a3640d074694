import { retryField } from '@cyclone-sse/common';

/**
 * The `retry:` fields an edge sends (docs/protocol.md#reconnect-delay). A browser reconnects after
 * the last `retry:` it got, so streams that all got the same value reconnect in the same instant
 * when their edge dies (a crash, an OOM kill): each stream gets its own delay, drawn uniformly
 * from [ms, ms × (1 + jitter)]. With jitter 0 every stream gets exactly `ms`.
 */
export class RetryHint {
  constructor(
    /** --retry: the smallest delay sent. */
    readonly ms: number,
    /** --retry-jitter. */
    readonly jitter: number,
  ) {}

  /** `retry: <ms>\n` for one stream: its first bytes, or the hint before the edge ends it. */
  field(): string {
    return retryField(this.jitter === 0 ? this.ms : this.ms * (1 + this.jitter * Math.random()));
  }

  /**
   * The drain's hint: the edge is going away and all its clients come back at once, so it spreads
   * at least over [ms, 2 × ms] (and over the streams' own spread when that is wider), whatever the
   * jitter. The close times are spread over --drain-seconds too.
   */
  drainField(): string {
    return retryField(this.ms * (1 + Math.max(1, this.jitter) * Math.random()));
  }

  /** A refused stream (a connection limit, the drain): come back later, in [2 × ms, 3 × ms]. */
  refusalField(): string {
    return retryField(this.ms * (2 + Math.random()));
  }
}

/** Last bytes of a stream whose token expired: `event: token-expired` and a `retry:` hint. */
export function tokenExpiredFrame(retry: RetryHint): Buffer {
  return Buffer.from(`event: token-expired\ndata: {"reason":"token expired"}\n\n${retry.field()}\n`);
}
