import { errorFields } from '../log/error-fields.js';
import type { Logger } from '../log/logger.js';
import { META_TTL_FACTOR, ttlSeconds, type RedisKeys } from './redis-keys.js';
import type { ScriptCommands } from './redis-script-commands.js';

/**
 * What a failover lost, and who tells (docs/delivery.md, "What a failover can lose"): replication
 * is asynchronous, so a promoted replica can lack the last messages of the old primary. Those
 * messages were delivered live by the edges that received them and answered 200 to the
 * publisher that sent them; the new primary has no trace of them. So every edge and every
 * publisher remembers the ids it handled most recently (`RecentIds`), and when it finds the epoch
 * changed under it, it reports those of the old epoch to the new primary (LOST_LUA), which keeps
 * the ones after the old epoch's end and announces them: each edge then resets the channels of
 * the lost messages it did not deliver, and a resume from before them resets too.
 */

/** Ids remembered per process: the lost tail of a failover is the replication lag, far below this. */
export const RECENT_IDS = 65_536;

/** One lost message as reported: its seq and channel. */
export type LostEntry = [seq: number, channel: string];

/**
 * A ring of the last `capacity` (seq, channel) of one epoch, in the order they were handled.
 * Starting another epoch clears it; `entriesAfter` tells whether it still reaches back far enough.
 */
export class RecentIds {
  private readonly seqs: Float64Array;
  private readonly channels: (string | undefined)[];
  private next = 0;
  private size = 0;
  epoch: string | undefined;

  constructor(readonly capacity = RECENT_IDS) {
    this.seqs = new Float64Array(capacity);
    this.channels = new Array<string | undefined>(capacity);
  }

  add(epoch: string, seq: number, channel: string): void {
    if (epoch !== this.epoch) this.reset(epoch);
    this.seqs[this.next] = seq;
    this.channels[this.next] = channel;
    this.next = (this.next + 1) % this.capacity;
    if (this.size < this.capacity) this.size++;
  }

  reset(epoch: string | undefined): void {
    this.epoch = epoch;
    this.next = 0;
    this.size = 0;
    this.channels.fill(undefined);
  }

  /**
   * The entries with seq > `after`, oldest first, and whether the ring covers everything after
   * `after` (false when entries after it may have been overwritten).
   */
  entriesAfter(after: number): { entries: LostEntry[]; complete: boolean } {
    const entries: LostEntry[] = [];
    let oldest = Infinity;
    for (let k = 0; k < this.size; k++) {
      const i = (this.next - this.size + k + this.capacity) % this.capacity;
      const seq = this.seqs[i]!;
      oldest = Math.min(oldest, seq);
      if (seq > after) entries.push([seq, this.channels[i]!]);
    }
    return { entries, complete: this.size < this.capacity || oldest <= after + 1 };
  }
}

/** A lost-report as published on `<p>:lost-reports`: `{"e": epoch, "l": [[seq, channel], …]}`. */
export function parseLostReport(message: Buffer): { epoch: string; entries: LostEntry[] } | undefined {
  try {
    const parsed = JSON.parse(message.toString('utf8')) as { e?: unknown; l?: unknown };
    if (typeof parsed.e !== 'string' || !Array.isArray(parsed.l)) return undefined;
    const entries: LostEntry[] = [];
    for (const item of parsed.l as unknown[]) {
      if (!Array.isArray(item) || typeof item[0] !== 'number' || typeof item[1] !== 'string') return undefined;
      entries.push([item[0], item[1]]);
    }
    return { epoch: parsed.e, entries };
  } catch {
    return undefined;
  }
}

/** Entries per LOST_LUA call, and how often (every 250 ms) a call is retried. */
const REPORT_CHUNK = 1000;
const REPORT_RETRIES = 20;

/**
 * Reports lost messages of `epoch` to the new primary: LOST_LUA in chunks, each retried a few
 * times (the new primary may still be settling); a report that still fails is logged and given up.
 */
export class LostReporter {
  private readonly metaTtl: number;

  constructor(
    private readonly o: {
      /** The command connection's scripts; throws when the broker is not started or closed. */
      scripts: () => ScriptCommands;
      log: Logger;
      closed: () => boolean;
      historyTtlSeconds: number;
      /** Redis Cluster: the report is SPUBLISHed to the partition's `lost-reports` channel. */
      sharded: boolean;
    },
  ) {
    this.metaTtl = ttlSeconds(o.historyTtlSeconds * META_TTL_FACTOR);
  }

  async report(keys: RedisKeys, epoch: string, entries: LostEntry[]): Promise<void> {
    for (let i = 0; i < entries.length; i += REPORT_CHUNK) {
      const chunk = entries.slice(i, i + REPORT_CHUNK).flat();
      for (let attempt = 0; ; attempt++) {
        try {
          await this.o.scripts().cycloneLost(...keys.epochKeys, epoch, this.metaTtl, keys.lostReports, this.o.sharded ? 1 : 0, ...chunk);
          break;
        } catch (err) {
          if (attempt >= REPORT_RETRIES || this.o.closed()) {
            this.o.log.warn('could not report messages a failover lost', { event: 'lost_report_failed', epoch, ...errorFields(err) });
            return;
          }
          await new Promise((resolve) => setTimeout(resolve, 250));
        }
      }
    }
  }
}
