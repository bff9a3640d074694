import { HubError } from '../errors.js';
import { frameWithId } from '../frame.js';
import type {
  Broker,
  BrokerMessage,
  BrokerSink,
  HistoryOptions,
  HistoryPageLimits,
  HistoryResult,
  PublishInput,
  PublishResult,
} from './broker.js';
import { formatId, newEpoch, parseId, type Cursor } from './cursor.js';
import { ENTRY_OVERHEAD_BYTES, preparePublish, publishLimits, type PreparedPublish, type PublishLimits } from './publish-prepare.js';

interface ChannelHistory {
  entries: BrokerMessage[];
  /** Largest seq ever removed from this channel's history (by a size cap or by expiry). */
  removedUpTo: number;
  /** Last seq published on this channel. */
  lastSeq: number;
  lastPublishAt: number;
  expired: boolean;
  /** Bytes charged for `entries` (frame bytes + ENTRY_OVERHEAD_BYTES each). */
  bytes: number;
}

/** How much longer than the history the per-channel bookkeeping is kept. */
const META_TTL_FACTOR = 24;

const entryBytes = (msg: BrokerMessage): number => msg.frame.length + ENTRY_OVERHEAD_BYTES;

/**
 * A broker for one process: sequence, bounded per-channel history and delivery in memory.
 * Messages are delivered to the sink synchronously, in publish order.
 *
 * History is bounded by count (`historySize`) and bytes per channel, and by bytes in total:
 * past the total, the least recently published channel loses its oldest entries first
 * (`filled` keeps the channels holding entries in publish-recency order). Every removal raises
 * the channel's `removedUpTo`, so a resume past removed entries answers reset, never a gap.
 */
export class MemoryBroker implements Broker {
  readonly kind = 'memory';
  readonly epoch = newEpoch();
  private seq = 0;
  private sink: BrokerSink | undefined;
  private readonly channels = new Map<string, ChannelHistory>();
  /** Channels holding entries, least recently published first (Map insertion order). */
  private readonly filled = new Map<string, ChannelHistory>();
  private totalBytes = 0;
  /** Idempotency records, oldest first (Map insertion order); at most `idempotencyMaxKeys`. */
  private readonly idempotency = new Map<string, { result: string[]; expiresAt: number }>();
  private readonly limits: PublishLimits;
  private sweepTimer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    private readonly options: HistoryOptions,
    private readonly now: () => number = Date.now,
  ) {
    this.limits = publishLimits(options);
  }

  async start(): Promise<void> {
    this.sweepTimer = setInterval(() => this.sweep(), 10_000);
    this.sweepTimer.unref();
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.sweepTimer) clearInterval(this.sweepTimer);
  }

  isReady(): boolean {
    return !this.closed;
  }

  subscribe(sink: BrokerSink): void {
    this.sink = sink;
  }

  async position(): Promise<Cursor> {
    return { epoch: this.epoch, seq: this.seq };
  }

  /** Always known: a publish passes its messages to the sink synchronously, before it returns. */
  livePosition(): Cursor {
    return { epoch: this.epoch, seq: this.seq };
  }

  /** Bytes the histories hold together (for tests and metrics). */
  get historyBytes(): number {
    return this.totalBytes;
  }

  async publish(inputs: PublishInput[]): Promise<PublishResult[]> {
    if (this.closed) throw new HubError('BROKER_UNAVAILABLE', 'broker is closed');
    const prepared = preparePublish(inputs, this.limits); // the whole call, before anything is applied
    return prepared.map((p) => this.publishOne(p));
  }

  private publishOne(p: PreparedPublish): PublishResult {
    const now = this.now();
    if (p.record !== undefined) {
      const seen = this.idempotency.get(p.record);
      if (seen && seen.expiresAt > now) return { ids: seen.result, duplicate: true };
    }
    const ids: string[] = [];
    for (const channel of p.channels) {
      const seq = ++this.seq;
      const id = formatId(this.epoch, seq);
      const msg: BrokerMessage = { seq, channel, frame: Buffer.from(frameWithId(id, p.body)), publishedAt: now };
      this.append(channel, msg, now);
      ids.push(id);
      this.sink?.message(msg);
    }
    this.evictOverTotal();
    if (p.record !== undefined) this.remember(p.record, ids, now);
    return { ids, duplicate: false };
  }

  private remember(record: string, ids: string[], now: number): void {
    this.idempotency.delete(record);
    this.idempotency.set(record, { result: ids, expiresAt: now + this.options.idempotencyTtlSeconds * 1000 });
    for (const key of this.idempotency.keys()) {
      if (this.idempotency.size <= this.limits.idempotencyMaxKeys) break;
      this.idempotency.delete(key);
    }
  }

  private append(channel: string, msg: BrokerMessage, now: number): void {
    let h = this.channels.get(channel);
    if (!h) {
      h = { entries: [], removedUpTo: 0, lastSeq: 0, lastPublishAt: now, expired: false, bytes: 0 };
      this.channels.set(channel, h);
    }
    this.expireIfDue(h, now);
    h.expired = false;
    h.entries.push(msg);
    h.bytes += entryBytes(msg);
    this.totalBytes += entryBytes(msg);
    h.lastSeq = msg.seq;
    h.lastPublishAt = now;
    this.filled.delete(channel); // most recently published last
    this.filled.set(channel, h);
    let excess = 0;
    let bytes = h.bytes;
    while (
      excess < h.entries.length &&
      (h.entries.length - excess > this.options.historySize || bytes > this.limits.historyMaxBytesPerChannel)
    ) {
      bytes -= entryBytes(h.entries[excess]!);
      excess++;
    }
    if (excess > 0) this.dropOldest(channel, h, excess);
  }

  /** Removes the `n` oldest entries of a channel, keeping removedUpTo and the byte counts true. */
  private dropOldest(channel: string, h: ChannelHistory, n: number): void {
    let freed = 0;
    for (let i = 0; i < n; i++) freed += entryBytes(h.entries[i]!);
    h.removedUpTo = Math.max(h.removedUpTo, h.entries[n - 1]!.seq);
    h.entries.splice(0, n);
    h.bytes -= freed;
    this.totalBytes -= freed;
    if (h.entries.length === 0) this.filled.delete(channel);
  }

  /** Past the total, the least recently published channels lose their oldest entries. */
  private evictOverTotal(): void {
    while (this.totalBytes > this.limits.historyMaxBytes) {
      const first = this.filled.entries().next();
      if (first.done) break;
      const [channel, h] = first.value;
      let n = 0;
      let over = this.totalBytes - this.limits.historyMaxBytes;
      while (n < h.entries.length && over > 0) over -= entryBytes(h.entries[n++]!);
      this.dropOldest(channel, h, n);
    }
  }

  /** Drops the whole history of a channel idle past the TTL, remembering what was removed. */
  private expireIfDue(h: ChannelHistory, now: number): void {
    if (h.entries.length > 0 && now - h.lastPublishAt >= this.options.historyTtlSeconds * 1000) {
      h.removedUpTo = h.lastSeq;
      const channel = h.entries[0]!.channel;
      h.entries = [];
      this.totalBytes -= h.bytes;
      h.bytes = 0;
      this.filled.delete(channel);
      h.expired = true;
    }
  }

  async history(channels: string[], cursorText: string, limits?: HistoryPageLimits): Promise<HistoryResult> {
    const position = { epoch: this.epoch, seq: this.seq };
    const all = [...new Set(channels)];
    const cursor = parseId(cursorText);
    if (!cursor) return { position, messages: [], reset: { channels: all, reason: 'malformed' }, more: false };
    if (cursor.epoch !== this.epoch) return { position, messages: [], reset: { channels: all, reason: 'epoch' }, more: false };
    if (cursor.seq > this.seq) return { position, messages: [], reset: { channels: all, reason: 'future' }, more: false };

    const now = this.now();
    const runs: BrokerMessage[][] = [];
    const lost: string[] = [];
    let reason: 'trimmed' | 'expired' = 'trimmed';
    for (const channel of all) {
      const h = this.channels.get(channel);
      if (!h) continue;
      this.expireIfDue(h, now);
      if (h.removedUpTo > cursor.seq) {
        lost.push(channel);
        if (h.expired) reason = 'expired';
        continue;
      }
      const from = firstAfter(h.entries, cursor.seq);
      if (from < h.entries.length) runs.push(h.entries.slice(from));
    }
    const { messages, more } = mergePage(runs, limits);
    return lost.length > 0 ? { position, messages, reset: { channels: lost, reason }, more } : { position, messages, more };
  }

  private sweep(): void {
    const now = this.now();
    const metaTtl = this.options.historyTtlSeconds * 1000 * META_TTL_FACTOR;
    for (const [channel, h] of this.channels) {
      this.expireIfDue(h, now);
      if (now - h.lastPublishAt >= metaTtl) this.channels.delete(channel);
    }
    for (const [key, rec] of this.idempotency) if (rec.expiresAt <= now) this.idempotency.delete(key);
  }
}

/** Index of the first entry with a seq above `seq` (entries are in increasing seq order). */
function firstAfter(entries: BrokerMessage[], seq: number): number {
  let lo = 0;
  let hi = entries.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (entries[mid]!.seq > seq) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

/** Merges per-channel runs (each in seq order) into one page within `limits`. */
function mergePage(runs: BrokerMessage[][], limits: HistoryPageLimits | undefined): { messages: BrokerMessage[]; more: boolean } {
  const maxMessages = limits?.maxMessages ?? Infinity;
  const maxBytes = limits?.maxBytes ?? Infinity;
  const heads = runs.map(() => 0);
  const messages: BrokerMessage[] = [];
  let bytes = 0;
  for (;;) {
    let best = -1;
    for (let i = 0; i < runs.length; i++) {
      const m = runs[i]![heads[i]!];
      if (m !== undefined && (best < 0 || m.seq < runs[best]![heads[best]!]!.seq)) best = i;
    }
    if (best < 0) return { messages, more: false };
    const m = runs[best]![heads[best]!]!;
    if (messages.length > 0 && (messages.length >= maxMessages || bytes + m.frame.length > maxBytes)) return { messages, more: true };
    messages.push(m);
    bytes += m.frame.length;
    heads[best] = heads[best]! + 1;
  }
}
