import { EventEmitter } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis, type RedisOptions } from 'ioredis';
import { HubError } from '../errors.js';
import { encodeFrameBody } from '../frame.js';
import { createLogger, type Logger } from '../log/logger.js';
import type {
  Broker,
  BrokerMessage,
  BrokerSink,
  HistoryOptions,
  HistoryResult,
  PublishInput,
  PublishResult,
  ResetReason,
} from './broker.js';
import { formatId, newEpoch, parseId, type Cursor } from './cursor.js';
import { META_TTL_FACTOR, RedisKeys, frameHasEpoch, parsePubsubMessage } from './redis-keys.js';
import { HISTORY_LUA, PUBLISH_LUA } from './redis-scripts.js';

export interface RedisBrokerOptions extends HistoryOptions {
  url: string;
  prefix: string;
  logger?: Logger;
  /** False for a publisher-only process: no subscriber connection. Default true. */
  subscribe?: boolean;
  /** Reply timeout of the command connection in ms (default 5000). */
  commandTimeoutMs?: number;
}

/** Counters for metrics; they only grow. */
export interface RedisBrokerStats {
  /** Catch-ups that found and filled a gap in the live stream (jump, reconnect). */
  repairs: number;
  /** Messages delivered from history by those repairs. */
  repairedMessages: number;
  /** `sink.lost` calls (history could not cover a gap). */
  lost: number;
  /** Live messages dropped because their seq was already delivered. */
  duplicates: number;
  /** Live messages of another epoch (they trigger a catch-up). */
  staleEpoch: number;
  /** Pub/sub messages that could not be parsed. */
  malformed: number;
  /** Subscriptions re-established after a lost subscriber connection. */
  resubscribes: number;
}

export interface RedisBrokerEvents {
  gap_repaired: [{ from: number; to: number; messages: number }];
  lost: [{ channels: string[]; reason: ResetReason; position: Cursor }];
  state: [{ ready: boolean }];
}

type HistoryReply = [Buffer, Buffer | null, Buffer, number[], [Buffer, Buffer[]][][]];
interface ScriptCommands {
  cyclonePublish(...args: (string | number)[]): Promise<[number, string]>;
  cycloneHistoryBuffer(...args: (string | number)[]): Promise<HistoryReply>;
}

/** Live messages held while a catch-up runs; past this, later ones are dropped and re-read. */
const MAX_HELD = 200_000;

/**
 * The Redis broker (DESIGN §5): Redis sequences every publish in one Lua script (redis-scripts.ts)
 * and keeps the history; an edge receives every message through one PSUBSCRIBE, tracks the last
 * seq and repairs any jump — lost pub/sub messages, a reconnect — from history before newer live
 * messages, or tells the sink which channels it cannot repair.
 *
 * Redis must not evict keys (maxmemory-policy noeviction): an evicted meta hash would make a
 * trimmed channel look complete.
 */
export class RedisBroker implements Broker {
  readonly kind = 'redis';
  readonly events = new EventEmitter<RedisBrokerEvents>();
  readonly stats: RedisBrokerStats = {
    repairs: 0, repairedMessages: 0, lost: 0, duplicates: 0, staleEpoch: 0, malformed: 0, resubscribes: 0,
  };
  private readonly keys: RedisKeys;
  private readonly log: Logger;
  private readonly wantSubscriber: boolean;
  private cmd: Redis | undefined;
  private sub: Redis | undefined;
  private sink: BrokerSink | undefined;
  private closed = false;
  private subscribed = false;
  private everSubscribed = false;
  private readyState = false;
  private started: { resolve: () => void; reject: (err: Error) => void } | undefined;
  // Live tracking: the epoch and last seq delivered to the sink (undefined until the first read).
  private epoch: string | undefined;
  private epochBytes = Buffer.alloc(0);
  private last: number | undefined;
  private held: BrokerMessage[] = [];
  private heldHead = 0;
  private repairNeeded = false;
  private repairRunning = false;

  constructor(private readonly options: RedisBrokerOptions) {
    this.keys = new RedisKeys(options.prefix);
    this.log = (options.logger ?? createLogger()).child({ component: 'redis-broker' });
    this.wantSubscriber = options.subscribe !== false;
  }

  /** The last seq delivered to the sink (for tests and diagnostics). */
  get lastSeq(): number | undefined {
    return this.last;
  }

  subscribe(sink: BrokerSink): void {
    this.sink = sink;
  }

  async start(): Promise<void> {
    const done = new Promise<void>((resolve, reject) => (this.started = { resolve, reject }));
    const cmd = this.connect('command', { commandTimeout: this.options.commandTimeoutMs ?? 5000 });
    cmd.defineCommand('cyclonePublish', { lua: PUBLISH_LUA });
    cmd.defineCommand('cycloneHistory', { lua: HISTORY_LUA });
    this.cmd = cmd;
    if (!this.wantSubscriber) cmd.once('ready', () => this.started?.resolve());
    else cmd.once('ready', () => this.startSubscriber());
    cmd.connect().catch(() => {}); // failures are retried by ioredis and logged by connect()
    await done;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.started?.reject(new HubError('BROKER_UNAVAILABLE', 'broker closed before it started'));
    await Promise.all([this.sub, this.cmd].map(async (conn) => {
      if (!conn) return;
      if (conn.status === 'ready') await conn.quit().catch(() => conn.disconnect());
      else conn.disconnect();
    }));
    this.updateState();
  }

  isReady(): boolean {
    return !this.closed && this.cmd?.status === 'ready' && (!this.wantSubscriber || this.subscribed);
  }

  async publish(inputs: PublishInput[]): Promise<PublishResult[]> {
    if (inputs.length === 0) return [];
    const candidate = newEpoch();
    const calls = inputs.map((input) => this.publishArgs(input, candidate)); // validates first
    const scripts = this.scripts();
    if (calls.length === 1) return [toPublishResult(await unavailableOnError(scripts.cyclonePublish(...calls[0]!)))];
    const pipeline = this.cmd!.pipeline();
    for (const args of calls) (pipeline as unknown as ScriptCommands).cyclonePublish(...args);
    const replies = await unavailableOnError(pipeline.exec());
    return (replies ?? []).map(([err, reply]) => {
      if (err) throw unavailable(err);
      return toPublishResult(reply as [number, string]);
    });
  }

  async history(channels: string[], cursorText: string): Promise<HistoryResult> {
    const all = [...new Set(channels)];
    const cursor = parseId(cursorText);
    const [epochBytes, topBytes, status, codes, ranges] = await this.readHistory(cursor ? all : [], cursor);
    const position = { epoch: epochBytes.toString(), seq: Number(topBytes?.toString() ?? 0) };
    if (!cursor) return { position, messages: [], reset: { channels: all, reason: 'malformed' } };
    const state = status.toString();
    if (state !== 'ok') return { position, messages: [], reset: { channels: all, reason: state as ResetReason } };
    const messages: BrokerMessage[] = [];
    const lost: string[] = [];
    let reason: 'trimmed' | 'expired' = 'trimmed';
    all.forEach((channel, i) => {
      if (codes[i] !== 0) {
        lost.push(channel);
        if (codes[i] === 2) reason = 'expired';
        return;
      }
      for (const [id, fields] of ranges[i]!) {
        messages.push({ seq: parseInt(id.toString('latin1'), 10), channel, frame: fields[1]!, publishedAt: Number(fields[3]!.toString()) });
      }
    });
    if (all.length > 1) messages.sort((a, b) => a.seq - b.seq);
    return lost.length > 0 ? { position, messages, reset: { channels: lost, reason } } : { position, messages };
  }

  async position(): Promise<Cursor> {
    const [epoch, top] = await this.readHistory([], undefined);
    return { epoch: epoch.toString(), seq: Number(top?.toString() ?? 0) };
  }

  // --- commands ---------------------------------------------------------------------------

  private scripts(): ScriptCommands {
    if (!this.cmd || this.closed) throw new HubError('BROKER_UNAVAILABLE', 'redis broker is not started');
    return this.cmd as unknown as ScriptCommands;
  }

  private publishArgs(input: PublishInput, candidate: string): (string | number)[] {
    const body = encodeFrameBody(input.data, input.event);
    const o = this.options;
    const idem = input.idempotencyKey;
    const keys = [this.keys.seq, this.keys.epoch, this.keys.idempotency(idem ?? '')];
    for (const channel of input.channels) keys.push(this.keys.history(channel), this.keys.meta(channel));
    const idemTtl = idem === undefined || o.idempotencyTtlSeconds <= 0 ? 0 : Math.ceil(o.idempotencyTtlSeconds);
    return [
      keys.length, ...keys,
      candidate, Math.max(1, o.historySize), ttlSeconds(o.historyTtlSeconds),
      ttlSeconds(o.historyTtlSeconds * META_TTL_FACTOR), idemTtl, body,
      ...input.channels.map((c) => this.keys.pubsub(c)),
    ];
  }

  private readHistory(channels: string[], cursor: Cursor | undefined): Promise<HistoryReply> {
    const keys = [this.keys.seq, this.keys.epoch];
    for (const channel of channels) keys.push(this.keys.history(channel), this.keys.meta(channel));
    const scripts = this.scripts();
    return unavailableOnError(
      scripts.cycloneHistoryBuffer(keys.length, ...keys, newEpoch(), cursor?.epoch ?? '', cursor?.seq ?? 0),
    );
  }

  private connect(role: 'command' | 'subscriber', extra: RedisOptions): Redis {
    const conn = new Redis(this.options.url, {
      protocol: 2,
      lazyConnect: true,
      connectionName: `cyclone-sse-${role}`,
      // Never queue: a command while Redis is away fails at once (publish answers 503 instead of
      // hanging and being applied late); one sent before a disconnect fails at the disconnect.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
      autoResubscribe: false,
      retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 6), 2000) + Math.floor(Math.random() * 100),
      ...extra,
    });
    let down = false;
    conn.on('ready', () => {
      if (down) this.log.info('redis connection restored', { event: 'redis_ready', role });
      down = false;
      this.updateState();
    });
    conn.on('close', () => {
      if (role === 'subscriber') this.subscribed = false;
      if (!down && !this.closed) this.log.warn('redis connection lost', { event: 'redis_connection_lost', role });
      down = true;
      this.updateState();
    });
    conn.on('error', (err: Error) => {
      if (!down && !this.closed) this.log.warn('redis error', { event: 'redis_error', role, error: err.message });
    });
    return conn;
  }

  private updateState(): void {
    const ready = this.isReady();
    if (ready === this.readyState) return;
    this.readyState = ready;
    this.events.emit('state', { ready });
  }

  // --- subscriber and gap repair ----------------------------------------------------------

  private startSubscriber(): void {
    if (this.closed) return;
    const sub = this.connect('subscriber', {});
    sub.on('pmessageBuffer', (_pattern: string, channel: Buffer, message: Buffer) => this.onPubsub(channel, message));
    sub.on('ready', () => void this.resubscribe(sub));
    this.sub = sub;
    sub.connect().catch(() => {});
  }

  /** After every (re)connect: PSUBSCRIBE, await it, then catch up from the last delivered seq. */
  private async resubscribe(sub: Redis): Promise<void> {
    try {
      await sub.psubscribe(this.keys.pattern);
    } catch (err) {
      if (sub.status === 'ready' && !this.closed) {
        this.log.warn('psubscribe failed, reconnecting', { event: 'redis_psubscribe_failed', error: String(err) });
        sub.disconnect(true);
      }
      return;
    }
    if (sub.status !== 'ready' || this.closed) return;
    if (this.everSubscribed) this.stats.resubscribes++;
    this.everSubscribed = this.subscribed = true;
    this.updateState();
    this.scheduleRepair();
  }

  private onPubsub(channel: Buffer, message: Buffer): void {
    const parsed = parsePubsubMessage(message);
    if (!parsed) {
      if (this.stats.malformed++ % 1000 === 0) {
        this.log.warn('malformed pub/sub message', { event: 'malformed_pubsub_message', count: this.stats.malformed });
      }
      return;
    }
    const msg: BrokerMessage = { ...parsed, channel: channel.toString('utf8', this.keys.pubsubPrefixLength) };
    if (this.repairRunning || this.last === undefined) this.hold(msg);
    else if (this.accept(msg) === 'gap') {
      this.hold(msg);
      this.scheduleRepair();
    }
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
    if (msg.seq !== this.last! + 1) return 'gap';
    this.deliver(msg);
    return 'delivered';
  }

  private deliver(msg: BrokerMessage): void {
    this.last = msg.seq;
    try {
      this.sink?.message(msg);
    } catch (err) {
      this.log.error('sink failed on a message', { event: 'sink_error', error: err });
    }
  }

  private hold(msg: BrokerMessage): void {
    // Dropping is safe: the hole it leaves is found when the queue drains and read from history.
    if (this.held.length - this.heldHead < MAX_HELD) this.held.push(msg);
  }

  private scheduleRepair(): void {
    this.repairNeeded = true;
    if (!this.repairRunning && !this.closed) void this.runRepair();
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
          if (failures++ === 0) this.log.warn('catch-up failed, retrying', { event: 'catch_up_failed', error: String(err) });
          await sleep(Math.min(25 * 2 ** failures, 1000), undefined, { ref: false });
        }
      }
    } finally {
      this.repairRunning = false;
    }
    if (this.closed) return;
    if (this.last !== undefined && this.started) {
      this.started.resolve();
      this.started = undefined;
    }
    this.drainHeld();
  }

  /**
   * Reads (last, top] from the history of the active channels (atomically with top), delivers it
   * in order, tells the sink about channels history cannot cover, and moves `last` to top.
   */
  private async repairOnce(): Promise<void> {
    if (this.last === undefined || this.epoch === undefined) {
      const position = await this.position();
      this.setPosition(position);
      return;
    }
    const active = this.sink ? [...new Set(this.sink.activeChannels())] : [];
    const from = this.last;
    const h = await this.history(active, formatId(this.epoch, from));
    const { position } = h;
    if (position.epoch !== this.epoch) {
      // Redis lost its data: everything of the old epoch after `from` is gone. Tell the sink to
      // continue from the start of the new epoch, whose messages history still holds: the next
      // round replays them.
      const start = { epoch: position.epoch, seq: 0 };
      this.log.warn('history lost in Redis', { event: 'history_lost', reason: 'epoch', from: formatId(this.epoch, from), to: formatId(position.epoch, position.seq) });
      this.setPosition(start);
      this.held = this.held.slice(this.heldHead).filter((m) => frameHasEpoch(m.frame, this.epochBytes));
      this.heldHead = 0;
      this.signalLost(active, 'epoch', start);
      this.repairNeeded = true;
      return;
    }
    if (h.reset?.reason === 'future') {
      const reason: ResetReason = 'lost';
      this.log.warn('history lost in Redis', { event: 'history_lost', reason, from: formatId(this.epoch, from), to: formatId(position.epoch, position.seq) });
      this.setPosition(position);
      this.held = this.held.slice(this.heldHead).filter((m) => frameHasEpoch(m.frame, this.epochBytes));
      this.heldHead = 0;
      this.signalLost(active, reason, position);
      return;
    }
    // Held live messages up to top of channels outside the snapshot were not read: merge them in.
    const activeSet = new Set(active);
    const extra = this.held.slice(this.heldHead).filter(
      (m) => m.seq > from && m.seq <= position.seq && !activeSet.has(m.channel) && frameHasEpoch(m.frame, this.epochBytes),
    );
    const messages = extra.length === 0 ? h.messages : [...h.messages, ...extra].sort((a, b) => a.seq - b.seq);
    let delivered = 0;
    for (const m of messages) {
      if (m.seq <= this.last) continue;
      this.deliver(m);
      delivered++;
    }
    this.last = position.seq;
    if (h.reset) this.signalLost(h.reset.channels, h.reset.reason, position);
    if (position.seq > from) {
      this.stats.repairs++;
      this.stats.repairedMessages += delivered;
      this.log.info('live gap repaired', { event: 'gap_repaired', from, to: position.seq, messages: delivered });
      this.events.emit('gap_repaired', { from, to: position.seq, messages: delivered });
    }
  }

  private setPosition(position: Cursor): void {
    this.epoch = position.epoch;
    this.epochBytes = Buffer.from(position.epoch);
    this.last = position.seq;
  }

  private signalLost(channels: string[], reason: ResetReason, position: Cursor): void {
    if (channels.length === 0) return;
    this.stats.lost++;
    this.events.emit('lost', { channels, reason, position });
    try {
      this.sink?.lost(channels, reason, position);
    } catch (err) {
      this.log.error('sink failed on lost', { event: 'sink_error', error: err });
    }
  }

  private drainHeld(): void {
    while (this.heldHead < this.held.length && !this.repairRunning) {
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

function ttlSeconds(seconds: number): number {
  return Math.max(1, Math.ceil(seconds));
}

function toPublishResult([duplicate, ids]: [number, string]): PublishResult {
  return { ids: ids === '' ? [] : ids.split(' '), duplicate: duplicate === 1 };
}

function unavailable(err: unknown): HubError {
  if (err instanceof HubError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new HubError('BROKER_UNAVAILABLE', `redis unavailable: ${message}`, { cause: err });
}

async function unavailableOnError<T>(promise: Promise<T>): Promise<T> {
  try {
    return await promise;
  } catch (err) {
    throw unavailable(err);
  }
}
