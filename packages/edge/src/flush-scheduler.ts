import { performance } from 'node:perf_hooks';

/** A flush requested within this long after the last one ended (ms), or ... */
const BACK_TO_BACK_MS = 1;
/** ... within this share of the last flush's duration, starts batching. */
const BUSY_SHARE = 0.25;

/**
 * When the hub's flush runs. A flush writes every dirty connection once (one cork + one write
 * each), so whatever reaches a connection before the flush leaves in one write.
 *
 * - Normally a flush runs at the end of the event-loop turn that asked for it: a lone message
 *   goes out at once.
 * - Flushes that come back to back — one is asked for within max(1 ms, a quarter of the last
 *   flush's duration) after the last ended, i.e. flushing keeps the process more than 80 % busy —
 *   start batching: each flush then waits as long as the last one took, bounded to
 *   [1 ms, maxDelayMs], so that publishes arriving one per turn (separate HTTP requests to the
 *   all-in-one; a pub/sub stream) share one write per connection, the way a busy edge behind
 *   Redis reads them in batches anyway. The wait is at most one flush's duration: about what the
 *   message would have queued behind the flushes before it.
 * - Batching stops when a deferred flush carried no more than one frame to any connection (the
 *   wait bought nothing) or after maxDelayMs without a flush request.
 *
 * It only decides when; what is written, and in which order, is the hub's flush.
 */
export class FlushScheduler {
  private scheduled = false;
  private deferred = false;
  private batching = false;
  private timer: NodeJS.Timeout | undefined;
  private immediate: NodeJS.Immediate | undefined;
  /** performance.now() when the last flush ended, and how long it took (ms). */
  private lastEnd = -Infinity;
  private lastCost = 0;
  private readonly runBound = () => this.run();

  /**
   * @param flush writes what is pending; returns how many writes carried more than one frame.
   * @param maxDelayMs longest a flush may be deferred (0: always at the end of the turn).
   */
  constructor(
    private readonly flush: () => number,
    private readonly maxDelayMs: number,
  ) {}

  /** Asks for a flush; one is scheduled at most once until it runs. */
  request(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    const delay = this.delay(performance.now());
    this.deferred = delay > 0;
    if (delay === 0) this.immediate = setImmediate(this.runBound);
    else this.timer = setTimeout(this.runBound, delay);
  }

  /** How long a flush asked for at `now` waits (ms; 0 = end of this turn). */
  private delay(now: number): number {
    if (this.maxDelayMs <= 0) return 0;
    const gap = now - this.lastEnd;
    if (gap >= this.maxDelayMs) this.batching = false;
    else if (gap < Math.max(BACK_TO_BACK_MS, this.lastCost * BUSY_SHARE)) this.batching = true;
    return this.batching ? Math.min(this.maxDelayMs, Math.max(1, this.lastCost)) : 0;
  }

  /** Runs a scheduled flush now (shutdown): nothing stays pending behind a timer. */
  flushNow(): void {
    if (!this.scheduled) return;
    if (this.timer !== undefined) clearTimeout(this.timer);
    if (this.immediate !== undefined) clearImmediate(this.immediate);
    this.run();
  }

  private run(): void {
    this.scheduled = false;
    this.timer = undefined;
    this.immediate = undefined;
    const start = performance.now();
    const multiFrame = this.flush();
    this.lastEnd = performance.now();
    this.lastCost = this.lastEnd - start;
    if (this.deferred && multiFrame === 0) this.batching = false;
  }
}
