import type { Broker, Logger } from '@cyclone-sse/common';
import type { Hub } from './hub.js';
import type { EdgeMetrics } from './metrics.js';
import { Primer } from './priming.js';
import { Resumer, type ResumeOptions } from './resume.js';
import type { UwsSseConnection } from './uws-sse-connection.js';
import { WaitingStreams } from './waiting-streams.js';

export interface StreamStartDeps {
  hub: Hub;
  broker: Broker;
  metrics: EdgeMetrics;
  logger: Logger;
  options: ResumeOptions;
}

/**
 * How a stream starts once it is in the hub: with a cursor, the resume (resume.ts); without one,
 * the priming id (priming.ts); while the broker is unreachable, either waits (waiting-streams.ts)
 * and starts when the broker is back. One per edge, shared by its HTTP and HTTPS apps.
 */
export class StreamStart {
  readonly waiting: WaitingStreams;
  private readonly primer: Primer;
  private readonly resumer: Resumer;

  constructor(deps: StreamStartDeps) {
    const { hub, broker, metrics, logger, options } = deps;
    const park = (conn: UwsSseConnection, cursor?: string) => this.waiting.park(conn, cursor);
    this.primer = new Primer(broker, options.retry, logger, park);
    this.resumer = new Resumer({ hub, broker, metrics, logger, options, park });
    this.waiting = new WaitingStreams({
      broker,
      retry: options.retry,
      metrics,
      logger,
      release: (conn, cursor) => {
        if (cursor === undefined) this.primer.open(conn);
        else void this.resumer.release(conn, cursor); // contains its own failures
      },
      fail: (conn, err) => hub.fail(conn, 'replay', err),
    });
  }

  /** A stream (or long-poll) with a cursor: history after it, then live. Call right after `hub.attach`. */
  resume(conn: UwsSseConnection, cursor: string): Promise<void> {
    return this.resumer.open(conn, cursor);
  }

  /** A stream without a cursor: first bytes with the priming id. Call right after `hub.attach`, in the same turn. */
  prime(conn: UwsSseConnection): void {
    this.primer.open(conn);
  }

  /** Forgets waiting streams (drain closes them). */
  stop(): void {
    this.waiting.stop();
  }
}
