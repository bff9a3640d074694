import type { RedisKeys } from './redis-keys.js';
import { publishReplies, type PublishArgs } from './redis-publish.js';
import type { Attempt } from './redis-settle.js';

/** Publishes one PUBLISH_LUA call may carry: bounds the time the script holds Redis (~20 µs each). */
export const MAX_PUBLISHES_PER_CALL = 64;

/** Where a batch goes: one Redis (standalone, Sentinel) or one partition of a Redis Cluster. */
export interface PublishLane {
  /** The keys of the lane's sequence (a partition's all hash to one slot). */
  readonly keys: RedisKeys;
  /** An epoch candidate for the call (ENSURE_EPOCH's ARGV[1]). */
  candidate(): string;
  /** Sends one PUBLISH_LUA call; resolves with its reply. */
  send(args: (string | number)[]): Promise<unknown>;
}

interface Pending {
  attempts: readonly Attempt[];
  bytes: number;
  resolve(replies: [number, string][]): void;
  reject(err: unknown): void;
}

/**
 * Runs the publishes a process has ready in one event-loop turn as one PUBLISH_LUA call per lane:
 * every publish request read in a turn (uWS, AMQP) is queued, and at `setImmediate` each lane's
 * queue leaves as calls of at most MAX_PUBLISHES_PER_CALL publishes and `maxFanoutBytes` (the
 * `--max-publish-fanout-bytes` of one request: so one call still writes no more to history and
 * pub/sub than one request may, docs/security.md), in the order queued. The per-call work — the
 * command and its reply in the publisher, the script call, the epoch check, TIME and the history
 * bounds in Redis — is then paid once per batch instead of once per publish, which is what bounds a publisher under load
 * (docs/benchmarks.md). A quiet publisher sends each publish alone, as before: the wait is to the
 * end of the current turn, not for more publishes.
 *
 * A caller's attempts stay together in one call, so a multi-input publish (of one partition) is
 * still applied atomically. Each caller gets its own replies; when the call fails (a lost answer,
 * a dropped connection, a script error) every caller of it gets the error and settles its own
 * attempts (redis-settle.ts): each publish of the call has its own idempotency record, written
 * by its own segment of the script, so a settle learns exactly which of them were applied.
 */
export class PublishBatcher {
  private queues = new Map<PublishLane, Pending[]>();
  private scheduled = false;

  constructor(
    private readonly args: PublishArgs,
    private readonly maxFanoutBytes: number,
  ) {}

  /** Queues `attempts` on `lane`; resolves with their `[status, ids]` replies, in order. */
  submit(lane: PublishLane, attempts: readonly Attempt[]): Promise<[number, string][]> {
    return new Promise((resolve, reject) => {
      let bytes = 0;
      for (const a of attempts) bytes += a.bytes;
      const queue = this.queues.get(lane);
      const pending = { attempts, bytes, resolve, reject };
      if (queue) queue.push(pending);
      else this.queues.set(lane, [pending]);
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(this.flush);
      }
    });
  }

  private readonly flush = (): void => {
    this.scheduled = false;
    const queues = this.queues;
    this.queues = new Map();
    for (const [lane, queue] of queues) {
      let start = 0;
      while (start < queue.length) {
        let end = start;
        let publishes = 0;
        let bytes = 0;
        while (end < queue.length) {
          const p = queue[end]!;
          const over = publishes + p.attempts.length > MAX_PUBLISHES_PER_CALL || bytes + p.bytes > this.maxFanoutBytes;
          if (end > start && over) break;
          publishes += p.attempts.length;
          bytes += p.bytes;
          end++;
        }
        this.send(lane, queue.slice(start, end));
        start = end;
      }
    }
  };

  private send(lane: PublishLane, group: Pending[]): void {
    const attempts = group.length === 1 ? group[0]!.attempts : group.flatMap((p) => p.attempts);
    let sent: Promise<unknown>;
    try {
      sent = lane.send(this.args.call(lane.keys, lane.candidate(), attempts));
    } catch (err) {
      for (const p of group) p.reject(err);
      return;
    }
    sent.then(
      (reply) => {
        let replies: [number, string][];
        try {
          replies = publishReplies(reply, attempts.length);
        } catch (err) {
          for (const p of group) p.reject(err);
          return;
        }
        let at = 0;
        for (const p of group) {
          p.resolve(replies.slice(at, at + p.attempts.length));
          at += p.attempts.length;
        }
      },
      (err: unknown) => {
        for (const p of group) p.reject(err);
      },
    );
  }
}
