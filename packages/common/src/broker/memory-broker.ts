import { HubError } from '../errors.js';
import { encodeFrameBody, frameWithId } from '../frame.js';
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

interface ChannelHistory {
  entries: BrokerMessage[];
  /** Largest seq ever removed from this channel's history (by the size cap or by expiry). */
  removedUpTo: number;
  /** Last seq published on this channel. */
  lastSeq: number;
  lastPublishAt: number;
  expired: boolean;
}

/** How much longer than the history the per-channel bookkeeping is kept. */
const META_TTL_FACTOR = 24;

/**
 * A broker for one process: sequence, bounded per-channel history and delivery in memory.
 * Messages are delivered to the sink synchronously, in publish order.
 */
export class MemoryBroker implements Broker {
  readonly kind = 'memory';
  readonly epoch = newEpoch();
  private seq = 0;
  private sink: BrokerSink | undefined;
  private readonly channels = new Map<string, ChannelHistory>();
  private readonly idempotency = new Map<string, { result: string[]; expiresAt: number }>();
  private sweepTimer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    private readonly options: HistoryOptions,
    private readonly now: () => number = Date.now,
  ) {}

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

  async publish(inputs: PublishInput[]): Promise<PublishResult[]> {
    if (this.closed) throw new HubError('BROKER_UNAVAILABLE', 'broker is closed');
    return inputs.map((input) => this.publishOne(input));
  }

  private publishOne(input: PublishInput): PublishResult {
    const now = this.now();
    if (input.idempotencyKey !== undefined) {
      const seen = this.idempotency.get(input.idempotencyKey);
      if (seen && seen.expiresAt > now) return { ids: seen.result, duplicate: true };
    }
    const body = encodeFrameBody(input.data, input.event);
    const ids: string[] = [];
    for (const channel of input.channels) {
      const seq = ++this.seq;
      const id = formatId(this.epoch, seq);
      const msg: BrokerMessage = { seq, channel, frame: Buffer.from(frameWithId(id, body)), publishedAt: now };
      this.append(channel, msg, now);
      ids.push(id);
      this.sink?.message(msg);
    }
    if (input.idempotencyKey !== undefined) {
      this.idempotency.set(input.idempotencyKey, {
        result: ids,
        expiresAt: now + this.options.idempotencyTtlSeconds * 1000,
      });
    }
    return { ids, duplicate: false };
  }

  private append(channel: string, msg: BrokerMessage, now: number): void {
    let h = this.channels.get(channel);
    if (!h) {
      h = { entries: [], removedUpTo: 0, lastSeq: 0, lastPublishAt: now, expired: false };
      this.channels.set(channel, h);
    }
    this.expireIfDue(h, now);
    h.expired = false;
    h.entries.push(msg);
    h.lastSeq = msg.seq;
    h.lastPublishAt = now;
    const excess = h.entries.length - this.options.historySize;
    if (excess > 0) {
      h.removedUpTo = h.entries[excess - 1]!.seq;
      h.entries.splice(0, excess);
    }
  }

  /** Drops the whole history of a channel idle past the TTL, remembering what was removed. */
  private expireIfDue(h: ChannelHistory, now: number): void {
    if (h.entries.length > 0 && now - h.lastPublishAt >= this.options.historyTtlSeconds * 1000) {
      h.removedUpTo = h.lastSeq;
      h.entries = [];
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
