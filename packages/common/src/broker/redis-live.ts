import type { EventEmitter } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../log/logger.js';
import { errorFields } from '../log/error-fields.js';
import type { BrokerMessage, BrokerSink, HistoryPageLimits, HistoryResult, ResetReason } from './broker.js';
import { formatId, type Cursor } from './cursor.js';
import type { RedisBrokerEvents, RedisBrokerStats } from './redis-broker-events.js';
import { frameHasEpoch, parsePubsubMessage, parseShardedMessage } from './redis-keys.js';
import { parseLostReport, RecentIds, type LostEntry } from './redis-lost.js';

/** Live messages held while a catch-up runs; past this, later ones are dropped and re-read. */
const MAX_HELD = 200_000;

/** Earlier epochs remembered (with how far this edge delivered them), as the lineage in Redis. */
const PAST_EPOCHS = 16;

/** Lost-reports held while a catch-up runs (each is at most 1000 entries). */
const MAX_HELD_REPORTS = 1000;

/** One history read of a catch-up: bounded, so a long outage is repaired in bounded steps. */
const REPAIR_PAGE = { maxMessages: 2000, maxBytes: 8 * 1024 * 1024 };

/** What a `LiveTracker` needs from the broker that owns it. */
export interface LiveTrackerOptions {
  /** Reads history after a cursor, atomically with the current position (`RedisBroker.history`). */
  history(channels: string[], cursor: string, limits?: HistoryPageLimits): Promise<HistoryResult>;
  /** Reads the current epoch and top of the sequence (`RedisBroker.position`). */
  position(): Promise<Cursor>;
  /** Length in bytes of the pub/sub channel prefix, cut off received channel names. */
  pubsubPrefixLength: number;
  log: Logger;
  /** The broker's counters; the tracker updates all but `resubscribes`. */
  stats: RedisBrokerStats;
  /** The broker's events; the tracker emits `gap_repaired` and `lost`. */
  events: EventEmitter<RedisBrokerEvents>;
  /** Called whenever a catch-up round ends with a known position (the broker's start completes). */
  onSynced(): void;
  /**
   * Tells Redis about messages of `epoch` this edge delivered that a failover lost (LOST_LUA);
   * fire and forget.
   */
  reportLost(epoch: string, entries: LostEntry[]): void;
  /**
   * Redis Cluster: messages come per channel from sharded pub/sub (`<seq> <prev> <ms> <frame>`),
   * so a gap is a `prev` above what this tracker delivered on the channel (or the partition's
   * position when the channel's subscription was confirmed), not a hole in the seq.
   */
  sharded?: boolean;
  /** The partition this tracker follows (set on every message and position it gives the sink). */
  partition?: number;
  /** The channels to repair (default: the sink's active channels): a partition's own. */
  channels?(): Iterable<string>;
}

/**
 * The live side of the Redis broker (docs/architecture.md#delivery-argument): takes the messages of the one PSUBSCRIBE, tracks
 * the epoch and last seq delivered to the sink, and repairs any jump — lost pub/sub messages, a
 * reconnect — from history before newer live messages, or tells the sink which channels it cannot
 * repair. Live messages that arrive while a catch-up runs are held and delivered after it.
 */
export class LiveTracker {
  /** The one sink (set by `RedisBroker.subscribe`). */
  sink: BrokerSink | undefined;
  private readonly log: Logger;
  private readonly stats: RedisBrokerStats;
  private readonly events: EventEmitter<RedisBrokerEvents>;
  private closed = false;
  // The epoch and last seq delivered to the sink (undefined until the first read).
  private epoch: string | undefined;
  private epochBytes = Buffer.alloc(0);
  private last: number | undefined;
  private held: BrokerMessage[] = [];
  private heldHead = 0;
  private repairNeeded = false;
  private repairRunning = false;
  /** The (seq, channel) of the messages delivered last, to report them should a failover lose them. */
  private readonly recent = new RecentIds();
  /** Earlier epochs → the last seq of theirs this edge delivered (lost-reports after it reset). */
  private readonly pastEpochs = new Map<string, number>();
  /** `<epoch> <channel>` already reset for the losses of that epoch. */
  private readonly resetForLoss = new Set<string>();
  private heldReports: { epoch: string; entries: LostEntry[] }[] = [];
  /** Sharded: per subscribed channel, the seq below which nothing of it is missing here. */
  private readonly floors = new Map<string, number>();
  /** Sharded: messages are held (the subscription is being re-established) until `unpause`. */
  private paused = false;
  private readonly sharded: boolean;
  private readonly partition: number | undefined;

  constructor(private readonly options: LiveTrackerOptions) {
    this.log = options.log;
    this.stats = options.stats;
    this.events = options.events;
    this.sharded = options.sharded === true;
    this.partition = options.partition;
  }

  /**
   * Sharded: holds live messages from now on (the subscriber connection is being re-established
   * or moved to another node); `unpause` then repairs from the last delivered seq.
   */
  pause(): void {
    this.paused = true;
    this.repairNeeded = true;
  }

  unpause(): void {
    if (!this.paused) return;
    this.paused = false;
    this.scheduleRepair();
  }

  /**
   * Sharded: the subscription of `channel` is confirmed. Messages of it from now on arrive in
   * order; the ones before were not seen here, and no stream expects them from this edge (a
   * stream reads its position only after the confirmation): its gap check starts at the
   * partition's current position.
   */
  channelSubscribed(channel: string): void {
    if (!this.floors.has(channel)) this.floors.set(channel, this.last ?? 0);
  }

  channelUnsubscribed(channel: string): void {
    this.floors.delete(channel);
  }

  /** True when the tracker knows its position and runs no catch-up (messages go straight to the sink). */
  get inSync(): boolean {
    return this.syncedPosition() !== undefined;
  }

  /**
   * Epoch and last seq delivered to the sink, only while in sync (no catch-up running or pending,
   * nothing held): then every later message reaches the sink after this call, in order.
   */
  syncedPosition(): Cursor | undefined {
    if (this.paused || this.repairRunning || this.repairNeeded || this.heldHead < this.held.length) return undefined;
    if (this.epoch === undefined || this.last === undefined) return undefined;
    return this.at({ epoch: this.epoch, seq: this.last });
  }

  /** Epoch and last seq delivered to the sink, in sync or not (undefined before the first read). */
  reachedPosition(): Cursor | undefined {
    return this.epoch === undefined || this.last === undefined ? undefined : this.at({ epoch: this.epoch, seq: this.last });
  }

  /** `position` with this tracker's partition, when it has one. */
  private at(position: Cursor): Cursor {
    return this.partition === undefined ? position : { ...position, partition: this.partition };
  }

  /** Stops catch-ups for good (the broker is closing). */
  close(): void {
    this.closed = true;
  }

  /** One pub/sub message (`<seq> <publish ms> <frame>`) on the pub/sub channel `channel`. */
  onPubsub(channel: Buffer, message: Buffer): void {
    const parsed = this.sharded ? parseShardedMessage(message) : parsePubsubMessage(message);
    if (!parsed) {
      if (this.stats.malformed++ % 1000 === 0) {
        this.log.warn('malformed pub/sub message', { event: 'malformed_pubsub_message', count: this.stats.malformed });
      }
      return;
    }
    const name = channel.toString('utf8', this.options.pubsubPrefixLength);
    // One object shape per kind of broker (the hub's and the connections' property reads stay monomorphic).
    const msg: BrokerMessage = this.sharded
      ? {
          seq: parsed.seq,
          channel: name,
          frame: parsed.frame,
          publishedAt: parsed.publishedAt,
          partition: this.partition ?? 0,
          prev: (parsed as { prev?: number }).prev ?? 0,
          epoch: this.epoch,
        }
      : { ...parsed, channel: name };
    if (this.paused || this.repairRunning || this.last === undefined) this.hold(msg);
    else if (this.accept(msg) === 'gap') {
      this.hold(msg);
      this.scheduleRepair();
    }
  }

  /**
   * A lost-report (`<p>:lost-reports`, LOST_LUA): messages of an earlier epoch that a failover
   * lost. The channels of those this edge did not deliver are reset (once per epoch and channel).
   * Held while a catch-up runs or while this edge has not yet seen the epoch end.
   */
  onLostReport(message: Buffer): void {
    const report = parseLostReport(message);
    if (!report) {
      this.stats.malformed++;
      return;
    }
    if (this.repairRunning || report.epoch === this.epoch) {
      if (this.heldReports.length < MAX_HELD_REPORTS) this.heldReports.push(report);
      return;
    }
    this.applyLostReport(report.epoch, report.entries);
  }

  private applyLostReport(epoch: string, entries: LostEntry[]): void {
    const delivered = this.pastEpochs.get(epoch);
    if (delivered === undefined || this.epoch === undefined || this.last === undefined) return;
    const active = new Set(this.activeChannels());
    const channels = new Set<string>();
    for (const [seq, channel] of entries) {
      const key = `${epoch} ${channel}`;
      if (seq <= delivered || !active.has(channel) || this.resetForLoss.has(key)) continue;
      this.resetForLoss.add(key);
      channels.add(channel);
    }
    if (channels.size > 0) this.signalLost([...channels], 'lost', { epoch: this.epoch, seq: this.last });
  }

  private drainHeldReports(): void {
    const reports = this.heldReports;
    this.heldReports = [];
    for (const r of reports) {
      if (r.epoch === this.epoch) this.heldReports.push(r);
      else this.applyLostReport(r.epoch, r.entries);
    }
  }

  /**
   * The epoch changed by a failover (the history read mapped the cursor of `this.epoch` through
   * the lineage: it ended at `split` here). What this edge delivered after `split` was lost by
   * Redis: report it so other edges reset those channels; continue from min(last, split) in the
   * new epoch (the catch-up then reads the new epoch's messages after it).
   */
  private switchEpoch(split: number, next: Cursor): void {
    const old = this.epoch!;
    const delivered = this.last!;
    this.pastEpochs.set(old, delivered);
    if (this.pastEpochs.size > PAST_EPOCHS) this.pastEpochs.delete(this.pastEpochs.keys().next().value!);
    if (this.resetForLoss.size > 100_000) this.resetForLoss.clear();
    if (delivered > split) {
      const { entries, complete } = this.recent.entriesAfter(split);
      if (entries.length > 0) this.options.reportLost(old, entries);
      if (!complete) {
        this.log.warn('delivered messages lost by the failover reach further back than the ids this edge keeps', {
          event: 'lost_tail_not_reported',
          epoch: old,
          split,
          delivered,
        });
      }
    }
    this.log.warn('the Redis primary changed: new epoch', {
      event: 'epoch_changed',
      cause: 'promotion',
      from: formatId(old, delivered),
      split,
      to: formatId(next.epoch, next.seq),
      lostHere: Math.max(0, delivered - split),
    });
    this.events.emit('epoch_changed', { cause: 'promotion' });
    this.setPosition({ epoch: next.epoch, seq: Math.min(delivered, split) });
    if (delivered > split) {
      try {
        this.sink?.rebase?.(split, this.partition);
      } catch (err) {
        this.log.error('sink failed on rebase', { event: 'sink_error', ...errorFields(err) });
      }
    }
    this.held = this.held.slice(this.heldHead).filter((m) => frameHasEpoch(m.frame, this.epochBytes));
    this.heldHead = 0;
  }

  /** Delivers `msg` when it is the next one; 'gap' when earlier ones are missing. */
  private accept(msg: BrokerMessage): 'delivered' | 'dropped' | 'gap' {
    if (!frameHasEpoch(msg.frame, this.epochBytes)) {
      // Another epoch: Redis lost its data (or this message is stale); the catch-up decides.
      this.stats.staleEpoch++;
      this.scheduleRepair();
      return 'dropped';
    }
    if (msg.seq <= this.last!) {
      this.stats.duplicates++;
      return 'dropped';
    }
    if (this.sharded) {
      const floor = this.floors.get(msg.channel);
      if (floor !== undefined && (msg.prev ?? 0) > floor) return 'gap';
    } else if (msg.seq !== this.last! + 1) return 'gap';
    this.deliver(msg);
    return 'delivered';
  }

  private deliver(msg: BrokerMessage): void {
    this.last = msg.seq;
    if (this.sharded) {
      if (this.floors.has(msg.channel)) this.floors.set(msg.channel, msg.seq);
      msg.epoch = this.epoch;
    }
    this.recent.add(this.epoch!, msg.seq, msg.channel);
    try {
      this.sink?.message(msg);
    } catch (err) {
      this.log.error('sink failed on a message', { event: 'sink_error', ...errorFields(err) });
    }
  }

  private hold(msg: BrokerMessage): void {
    // Dropping is safe: the hole it leaves is found when the queue drains and read from history.
    if (this.held.length - this.heldHead < MAX_HELD) this.held.push(msg);
  }

  /** Starts a catch-up from the last delivered seq, or a further round of the running one. */
  scheduleRepair(): void {
    this.repairNeeded = true;
    if (!this.repairRunning && !this.closed && !this.paused) void this.runRepair();
  }

  private async runRepair(): Promise<void> {
    this.repairRunning = true;
    let failures = 0;
    try {
      while (this.repairNeeded && !this.closed) {
        this.repairNeeded = false;
        try {
          await this.repairOnce();
          failures = 0;
        } catch (err) {
          this.repairNeeded = true;
          if (failures++ === 0) this.log.warn('catch-up failed, retrying', { event: 'catch_up_failed', ...errorFields(err) });
          await sleep(Math.min(25 * 2 ** failures, 1000), undefined, { ref: false });
        }
      }
    } finally {
      this.repairRunning = false;
    }
    if (this.closed) return;
    if (this.last !== undefined) this.options.onSynced();
    this.drainHeld();
    this.drainHeldReports();
  }

  /**
   * Reads (last, top] from the history of the active channels in pages (each atomically with
   * top), delivers it in order, tells the sink about channels history cannot cover, and moves
   * `last` to top. A live message that was already held when the read began and lies above top
   * cannot be real (Redis assigns the seq and publishes in one script): a forged PUBLISH on the
   * hub's pub/sub channel, or a write lost by a failover. It is dropped and its channel reset —
   * never waited for, which would loop on catch-ups for ever.
   */
  private async repairOnce(): Promise<void> {
    if (this.last === undefined || this.epoch === undefined) {
      const position = await this.options.position();
      this.setPosition(position);
      return;
    }
    const active = [...new Set(this.activeChannels())];
    const activeSet = new Set(active);
    const from = this.last;
    const heldEnd = this.held.length;
    const resets = new Map<ResetReason, Set<string>>();
    let channels = active;
    let cursor = from;
    let delivered = 0;
    let position: Cursor | undefined;
    let switchedFrom: string | undefined;
    for (let page = 0; ; page++) {
      const h = await this.options.history(channels, formatId(this.epoch, cursor), REPAIR_PAGE);
      position = h.position;
      if (position.epoch !== this.epoch && h.split !== undefined) {
        switchedFrom = this.epoch;
        this.switchEpoch(h.split, position);
        cursor = this.last;
      }
      if (position.epoch !== this.epoch) {
        // Redis lost its data: everything of the old epoch after \`from\` is gone. Tell the sink to
        // continue from the start of the new epoch, whose messages history still holds: the next
        // round replays them.
        const start = { epoch: position.epoch, seq: 0 };
        this.log.warn('history lost in Redis', {
          event: 'history_lost',
          reason: 'epoch',
          from: formatId(this.epoch, from),
          to: formatId(position.epoch, position.seq),
        });
        this.setPosition(start);
        this.held = this.held.slice(this.heldHead).filter((m) => frameHasEpoch(m.frame, this.epochBytes));
        this.heldHead = 0;
        this.signalLost(active, 'epoch', start);
        this.events.emit('epoch_changed', { cause: 'data_lost' });
        this.repairNeeded = true;
        return;
      }
      if (h.reset?.reason === 'future') {
        const reason: ResetReason = 'lost';
        this.log.warn('history lost in Redis', {
          event: 'history_lost',
          reason,
          from: formatId(this.epoch, from),
          to: formatId(position.epoch, position.seq),
        });
        this.setPosition(position);
        this.held = this.held.slice(this.heldHead).filter((m) => frameHasEpoch(m.frame, this.epochBytes));
        this.heldHead = 0;
        this.signalLost(active, reason, position);
        return;
      }
      if (page === 0) this.dropImpossible(heldEnd, position, activeSet, resets);
      if (h.reset) {
        const lost = new Set(h.reset.channels);
        const set = resets.get(h.reset.reason) ?? new Set<string>();
        for (const c of lost) set.add(c);
        resets.set(h.reset.reason, set);
        channels = channels.filter((c) => !lost.has(c));
      }
      const lastRead = h.messages[h.messages.length - 1];
      const bound = h.more && lastRead ? lastRead.seq : position.seq;
      // Held live messages of channels outside the snapshot were not read: merge them in.
      const extra = this.held
        .slice(this.heldHead)
        .filter((m) => m.seq > cursor && m.seq <= bound && !activeSet.has(m.channel) && frameHasEpoch(m.frame, this.epochBytes));
      const messages = extra.length === 0 ? h.messages : [...h.messages, ...extra].sort((a, b) => a.seq - b.seq);
      for (const m of messages) {
        if (m.seq <= this.last) continue;
        this.deliver(m);
        delivered++;
      }
      if (!h.more || !lastRead || this.closed) break;
      cursor = bound;
    }
    this.last = position.seq;
    if (this.sharded) for (const set of resets.values()) for (const c of set) if (this.floors.has(c)) this.floors.set(c, position.seq);
    for (const [reason, lost] of resets) {
      // Losses of the epoch left behind, reset here: its later lost-reports need no second reset.
      if (reason === 'lost' && switchedFrom !== undefined) for (const c of lost) this.resetForLoss.add(`${switchedFrom} ${c}`);
      this.signalLost([...lost], reason, position);
    }
    if (position.seq > from) {
      this.stats.repairs++;
      this.stats.repairedMessages += delivered;
      this.log.info('live gap repaired', { event: 'gap_repaired', from, to: position.seq, messages: delivered });
      this.events.emit('gap_repaired', { from, to: position.seq, messages: delivered });
    }
  }

  /**
   * Drops held messages that were received before the read at `position` began yet lie above
   * its top (see repairOnce); their active channels are reset as 'lost'.
   */
  private dropImpossible(heldEnd: number, position: Cursor, active: Set<string>, resets: Map<ResetReason, Set<string>>): void {
    let dropped = 0;
    for (let i = this.heldHead; i < heldEnd; i++) {
      const m = this.held[i];
      if (m === undefined || m.seq <= position.seq) continue;
      dropped++;
      if (active.has(m.channel)) {
        const set = resets.get('lost') ?? new Set<string>();
        set.add(m.channel);
        resets.set('lost', set);
      }
    }
    if (dropped === 0) return;
    const before = this.held.slice(this.heldHead, heldEnd).filter((m) => m.seq <= position.seq);
    this.held = [...before, ...this.held.slice(heldEnd)];
    this.heldHead = 0;
    if (this.stats.impossible === 0) {
      this.log.warn('live message above the top of the sequence dropped (forged, or lost by a failover)', {
        event: 'impossible_live_message',
        top: position.seq,
        dropped,
      });
    }
    this.stats.impossible += dropped;
  }

  private activeChannels(): Iterable<string> {
    if (this.options.channels) return this.options.channels();
    return this.sink?.activeChannels() ?? [];
  }

  private setPosition(position: Cursor): void {
    this.epoch = position.epoch;
    this.epochBytes = Buffer.from(position.epoch);
    this.last = position.seq;
  }

  private signalLost(channels: string[], reason: ResetReason, position: Cursor): void {
    if (channels.length === 0) return;
    position = this.at(position);
    this.stats.lost++;
    this.events.emit('lost', { channels, reason, position });
    try {
      this.sink?.lost(channels, reason, position);
    } catch (err) {
      this.log.error('sink failed on lost', { event: 'sink_error', ...errorFields(err) });
    }
  }

  private drainHeld(): void {
    while (this.heldHead < this.held.length && !this.repairRunning && !this.paused) {
      if (this.accept(this.held[this.heldHead]!) === 'gap') {
        this.scheduleRepair();
        break;
      }
      this.heldHead++;
    }
    if (this.heldHead === this.held.length) {
      this.held = [];
      this.heldHead = 0;
    } else if (this.heldHead > 4096 && this.heldHead * 2 > this.held.length) {
      this.held = this.held.slice(this.heldHead);
      this.heldHead = 0;
    }
  }
}
