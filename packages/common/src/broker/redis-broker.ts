import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { Redis, RedisOptions } from 'ioredis';
import { HubError } from '../errors.js';
import { createLogger, type Logger } from '../log/logger.js';
import { errorFields } from '../log/error-fields.js';
import type {
  Broker,
  BrokerMessage,
  BrokerSink,
  HistoryOptions,
  HistoryPageLimits,
  HistoryResult,
  ObservableBroker,
  PublishInput,
  PublishResult,
  ResetReason,
} from './broker.js';
import { newEpoch, parseId, type Cursor } from './cursor.js';
import { META_TTL_FACTOR, RedisKeys } from './redis-keys.js';
import { LiveTracker } from './redis-live.js';
import { observeRedisBroker } from './redis-broker-metrics.js';
import type { Registry } from 'prom-client';
import { preparePublish, publishLimits, type PreparedPublish, type PublishLimits } from './publish-prepare.js';
import { settlePublish, type Attempt } from './redis-settle.js';
import { FENCE_LUA, HISTORY_LUA, LOST_LUA, PUBLISH_LUA, RELEASE_LUA } from './redis-scripts.js';
import { RecentIds, type LostEntry } from './redis-lost.js';
import { createRedisClient, redisErrorHint, type RedisConnectionConfig } from './redis-connection.js';
import { WireScript } from './redis-wire-script.js';

export interface RedisBrokerOptions extends HistoryOptions {
  /** Where to connect: a URL, or Sentinel and TLS settings (redis-connection.ts); `connection` wins. */
  url?: string;
  connection?: RedisConnectionConfig;
  prefix: string;
  logger?: Logger;
  /** False for a publisher-only process: no subscriber connection. Default true. */
  subscribe?: boolean;
  /** Reply timeout of the command connection in ms (default 5000). */
  commandTimeoutMs?: number;
  /**
   * Every this many ms the edge publishes a probe to a channel only its own subscriber connection
   * listens to; when a probe is not echoed by the next one, the subscription is considered
   * silently dead (a connection that is up but no longer receives — e.g. after a failover) and is
   * re-established, which triggers the usual catch-up from history. Default 5000; 0 disables.
   */
  probeIntervalMs?: number;
  /**
   * --redis-wait-replicas: after each publish, `WAIT` for this many replicas before answering
   * 200 and before any subscriber can see it (0 = off, the default).
   */
  waitReplicas?: number;
  /** --redis-wait-timeout: ms a WAIT may take before the publish answers 503 REPLICATION_TIMEOUT. */
  waitTimeoutMs?: number;
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
  /** Probes not echoed in time (the subscriber connection was then re-established). */
  probeFailures: number;
  /** Live messages above the top of the sequence when read (forged, or lost by a failover): dropped. */
  impossible: number;
  /** Publishes whose WAIT for replicas timed out (answered 503 REPLICATION_TIMEOUT). */
  waitTimeouts: number;
}

export interface RedisBrokerEvents {
  gap_repaired: [{ from: number; to: number; messages: number }];
  lost: [{ channels: string[]; reason: ResetReason; position: Cursor }];
  state: [{ ready: boolean }];
  probe_failed: [];
  /** A new epoch was seen: 'promotion' (a new primary, history kept) or 'data_lost'. */
  epoch_changed: [{ cause: 'promotion' | 'data_lost' }];
  /** The command connection reached a different Redis server than before (failover, restart). */
  primary_changed: [];
  wait_timeout: [];
  /** Redis Cluster: a partition's slot is now served by another node (the edge moved its subscriptions). */
  partition_moved: [{ partition: number }];
}

type HistoryReply = [Buffer, Buffer | null, Buffer, number[], [number, Buffer, Buffer, Buffer][], number, number];
export interface ScriptCommands {
  cyclonePublish(...args: (string | number)[]): Promise<[number, string]>;
  cycloneFence(...args: (string | number)[]): Promise<string>;
  cycloneHistoryBuffer(...args: (string | number)[]): Promise<HistoryReply>;
  cycloneRelease(...args: (string | number)[]): Promise<number>;
  cycloneLost(...args: (string | number)[]): Promise<number>;
}

/**
 * The Redis broker (docs/architecture.md#redis-layout): Redis sequences every publish in one Lua script (redis-scripts.ts)
 * and keeps the history; an edge receives every message through one PSUBSCRIBE, tracks the last
 * seq and repairs any jump — lost pub/sub messages, a reconnect — from history before newer live
 * messages, or tells the sink which channels it cannot repair (that live side is `LiveTracker`,
 * redis-live.ts).
 *
 * Redis must not evict keys (maxmemory-policy noeviction): an evicted meta hash would make a
 * trimmed channel look complete.
 */
export class RedisBroker implements Broker, ObservableBroker {
  readonly kind = 'redis';
  readonly events = new EventEmitter<RedisBrokerEvents>();
  readonly stats: RedisBrokerStats = {
    repairs: 0,
    repairedMessages: 0,
    lost: 0,
    duplicates: 0,
    staleEpoch: 0,
    malformed: 0,
    resubscribes: 0,
    probeFailures: 0,
    impossible: 0,
    waitTimeouts: 0,
  };
  /** The ids this process was answered for, to report them should a failover lose them. */
  private readonly answered = new RecentIds();
  private serverRunId: string | undefined;
  private readonly keys: RedisKeys;
  private readonly limits: PublishLimits;
  /** A publish failed and the cause was logged; cleared (and logged) by the next success. */
  private publishFailing = false;
  private readonly log: Logger;
  private readonly wantSubscriber: boolean;
  private cmd: Redis | undefined;
  private sub: Redis | undefined;
  private readonly live: LiveTracker;
  private closed = false;
  private subscribed = false;
  private everSubscribed = false;
  private readyState = false;
  private started: { resolve: () => void; reject: (err: Error) => void } | undefined;
  private readonly probeChannel: string;
  private probeTimer: NodeJS.Timeout | undefined;
  private probeOutstanding = false;
  /** The command socket corked until the end of this event-loop turn (sendPublish). */
  private corked: Redis['stream'] | undefined;
  private readonly publishScript = new WireScript(PUBLISH_LUA);

  /** Registers the broker's series (gap repairs, losses, connection state, probes). */
  observe(registry: Registry, component: 'edge' | 'publisher' | 'all' = 'edge'): void {
    observeRedisBroker(this.events, registry, component);
  }

  constructor(private readonly options: RedisBrokerOptions) {
    this.keys = new RedisKeys(options.prefix);
    this.limits = publishLimits(options);
    this.log = (options.logger ?? createLogger()).child({ component: 'redis-broker' });
    this.wantSubscriber = options.subscribe !== false;
    this.probeChannel = this.keys.probe(newEpoch());
    this.live = new LiveTracker({
      history: (channels, cursor, limits) => this.history(channels, cursor, limits),
      position: () => this.position(),
      pubsubPrefixLength: this.keys.pubsubPrefixLength,
      log: this.log,
      stats: this.stats,
      events: this.events,
      onSynced: () => {
        this.started?.resolve();
        this.started = undefined;
      },
      reportLost: (epoch, entries) => void this.reportLost(epoch, entries),
    });
  }

  subscribe(sink: BrokerSink): void {
    this.live.sink = sink;
  }

  async start(): Promise<void> {
    const done = new Promise<void>((resolve, reject) => (this.started = { resolve, reject }));
    const cmd = this.connect('command', { commandTimeout: this.options.commandTimeoutMs ?? 5000 });
    cmd.defineCommand('cyclonePublish', { lua: PUBLISH_LUA });
    cmd.defineCommand('cycloneFence', { lua: FENCE_LUA, numberOfKeys: 1 });
    cmd.defineCommand('cycloneHistory', { lua: HISTORY_LUA });
    cmd.defineCommand('cycloneRelease', { lua: RELEASE_LUA });
    cmd.defineCommand('cycloneLost', { lua: LOST_LUA, numberOfKeys: 6 });
    cmd.on('ready', () => void this.notePrimary(cmd));
    this.cmd = cmd;
    if (!this.wantSubscriber) cmd.once('ready', () => this.started?.resolve());
    else cmd.once('ready', () => this.startSubscriber());
    cmd.connect().catch(() => {}); // failures are retried by ioredis and logged by connect()
    await done;
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.probeTimer) clearInterval(this.probeTimer);
    this.live.close();
    this.started?.reject(new HubError('BROKER_UNAVAILABLE', 'broker closed before it started'));
    await Promise.all(
      [this.sub, this.cmd].map(async (conn) => {
        if (!conn) return;
        if (conn.status === 'ready') await conn.quit().catch(() => conn.disconnect());
        else conn.disconnect();
      }),
    );
    this.updateState();
  }

  isReady(): boolean {
    return !this.closed && this.cmd?.status === 'ready' && (!this.wantSubscriber || this.subscribed);
  }

  /**
   * Validates the whole call (preparePublish), then runs one PUBLISH_LUA per input; a batch runs
   * in one MULTI/EXEC, so it is applied entirely or not at all. Every attempt carries an
   * idempotency record — the client's key, or an internal `i:<attempt>` record kept
   * INTERNAL_RECORD_TTL seconds — so when the answer is lost (a command timeout, a dropped
   * connection) `settlePublish` can learn from Redis whether it was applied, and fence it if
   * not: the caller gets 200 with the ids exactly when the publish was applied, and a 503 only
   * when it was not (and never will be).
   */
  async publish(inputs: PublishInput[]): Promise<PublishResult[]> {
    if (inputs.length === 0) return [];
    const prepared = preparePublish(inputs, this.limits); // the whole call, before anything is sent
    const candidate = newEpoch();
    const attempts: Attempt[] = prepared.map((p) => this.attempt(p, candidate));
    this.scripts(); // throws when not started or closed
    // Not connected: nothing can be sent (the offline queue is off), so nothing is applied.
    if (this.cmd?.status !== 'ready') {
      const err = new Error(`redis command connection is ${this.cmd?.status ?? 'absent'}`);
      this.publishFailed(err);
      throw unavailable(err);
    }
    let results: PublishResult[];
    try {
      let replies: ReturnType<typeof toPublishResult>[];
      if (attempts.length === 1) {
        replies = [toPublishResult(await this.sendPublish(this.cmd, attempts[0]!.args))];
      } else {
        const multi = this.cmd.multi();
        // Queued in the transaction (the typing says Promise; inside multi() it is the pipeline):
        // the replies come from exec().
        for (const a of attempts) void (multi as unknown as ScriptCommands).cyclonePublish(...a.args);
        const execReplies = await multi.exec();
        if (!execReplies) throw new Error('transaction aborted');
        replies = execReplies.map(([err, reply]) => {
          if (err) throw err;
          return toPublishResult(reply as [number, string]);
        });
      }
      if (replies.some((r) => r.fenced)) throw new Error('attempt fenced');
      results = replies.map(({ ids, duplicate }) => ({ ids, duplicate }));
    } catch (err) {
      this.publishFailed(err);
      const settled = await settlePublish(this.cmd, attempts, {
        deadlineMs: (this.options.commandTimeoutMs ?? 5000) * 2,
        fenceTtlSeconds: INTERNAL_RECORD_TTL,
      });
      if (!settled) throw unavailable(err);
      results = settled; // answered 200: Redis took the publish after all
    }
    if ((this.options.waitReplicas ?? 0) > 0) await this.awaitReplicas(results, prepared);
    this.publishRecovered();
    this.noteAnswered(results, prepared);
    return results;
  }

  /**
   * --redis-wait-replicas: WAIT on the connection that published, then release the messages
   * (RELEASE_LUA) so subscribers see them. A WAIT short of the replicas answers 503
   * REPLICATION_TIMEOUT; the messages stay unreleased until a later release or a promotion covers
   * them (so they may still be delivered; a retry with the idempotency key is answered the same
   * ids and released then).
   */
  private async awaitReplicas(results: PublishResult[], prepared: PreparedPublish[]): Promise<void> {
    const n = this.options.waitReplicas ?? 0;
    if (n <= 0 || !this.cmd) return;
    const cmd = this.cmd;
    let acked: number;
    try {
      acked = Number(await cmd.call('WAIT', n, Math.max(1, this.options.waitTimeoutMs ?? 1000)));
    } catch (err) {
      this.publishFailed(err);
      throw unavailable(err);
    }
    if (acked < n) {
      this.stats.waitTimeouts++;
      this.events.emit('wait_timeout');
      throw new HubError(
        'REPLICATION_TIMEOUT',
        `the message was not acknowledged by ${n} Redis replica(s) in time; retry with the same idempotency key (it is never applied twice)`,
      );
    }
    const byEpoch = new Map<string, { keys: string[]; args: (string | number)[] }>();
    results.forEach((r, i) => {
      const channels = prepared[i]!.channels;
      r.ids.forEach((id, k) => {
        const cursor = parseId(id);
        if (!cursor) return;
        const batch = byEpoch.get(cursor.epoch) ?? { keys: [], args: [] };
        batch.keys.push(this.keys.history(channels[k]!));
        batch.args.push(cursor.seq, channels[k]!);
        byEpoch.set(cursor.epoch, batch);
      });
    });
    const scripts = cmd as unknown as ScriptCommands;
    try {
      for (const [epoch, batch] of byEpoch) {
        const keys = [...this.keys.epochKeys, ...batch.keys];
        await scripts.cycloneRelease(keys.length, ...keys, epoch, this.keys.namespace, ...batch.args);
      }
    } catch (err) {
      // Replicated but not released: the next release or a promotion covers it (its seq is
      // below theirs); the client is told to retry, which is answered the same ids.
      this.publishFailed(err);
      throw unavailable(err);
    }
  }

  /**
   * Remembers the ids this process was answered for; when they come in a new epoch, reports the
   * ones of the old epoch that the failover lost (after its end on the new primary).
   */
  private noteAnswered(results: PublishResult[], prepared: PreparedPublish[]): void {
    results.forEach((r, i) => {
      if (r.duplicate) return;
      const channels = prepared[i]!.channels;
      r.ids.forEach((id, k) => {
        const cursor = parseId(id);
        if (!cursor) return;
        if (this.answered.epoch !== undefined && this.answered.epoch !== cursor.epoch) this.reportAnsweredLost(this.answered.epoch);
        this.answered.add(cursor.epoch, cursor.seq, channels[k]!);
      });
    });
  }

  private reportAnsweredLost(epoch: string): void {
    const { entries } = this.answered.entriesAfter(-1);
    this.answered.reset(undefined);
    void (async () => {
      const cmd = this.cmd;
      if (!cmd) return;
      try {
        const v = await cmd.hget(this.keys.epochs, epoch);
        const split = v === null ? undefined : Number(v.split(':')[0]);
        this.log.warn('the Redis epoch changed under the publisher', {
          event: 'epoch_changed',
          cause: split === undefined ? 'data_lost' : 'promotion',
          from: epoch,
        });
        this.events.emit('epoch_changed', { cause: split === undefined ? 'data_lost' : 'promotion' });
        if (split !== undefined)
          await this.reportLost(
            epoch,
            entries.filter(([seq]) => seq > split),
          );
      } catch (err) {
        this.log.warn('could not report the publishes a failover lost', { event: 'lost_report_failed', ...errorFields(err) });
      }
    })();
  }

  /** LOST_LUA in chunks, retried a few times (the new primary may still be settling). */
  private async reportLost(epoch: string, entries: LostEntry[]): Promise<void> {
    const ttl = ttlSeconds(this.options.historyTtlSeconds * META_TTL_FACTOR);
    for (let i = 0; i < entries.length; i += 1000) {
      const chunk = entries.slice(i, i + 1000).flat();
      for (let attempt = 0; ; attempt++) {
        try {
          await this.scripts().cycloneLost(...this.keys.epochKeys, epoch, ttl, this.keys.lostReports, 0, ...chunk);
          break;
        } catch (err) {
          if (attempt >= 20 || this.closed) {
            this.log.warn('could not report messages a failover lost', { event: 'lost_report_failed', epoch, ...errorFields(err) });
            return;
          }
          await new Promise((resolve) => setTimeout(resolve, 250));
        }
      }
    }
  }

  /** Counts a change of the Redis server behind the command connection (failover, restart). */
  private async notePrimary(cmd: Redis): Promise<void> {
    try {
      const info = await cmd.info('server');
      const runId = /run_id:(\w+)/.exec(info)?.[1];
      if (runId === undefined) return;
      if (this.serverRunId !== undefined && runId !== this.serverRunId) {
        this.log.warn('connected to a different Redis server than before', { event: 'redis_primary_changed' });
        this.events.emit('primary_changed');
      }
      this.serverRunId = runId;
    } catch {
      // not ready after all: the next 'ready' tries again
    }
  }

  private publishFailed(err: unknown): void {
    if (this.publishFailing || this.closed) return;
    this.publishFailing = true;
    this.log.warn('publish failed; answering 503 until a publish succeeds', { event: 'redis_publish_failed', ...errorFields(err) });
  }

  private publishRecovered(): void {
    if (!this.publishFailing) return;
    this.publishFailing = false;
    this.log.info('publishing again', { event: 'redis_publish_recovered' });
  }

  async history(channels: string[], cursorText: string, limits?: HistoryPageLimits): Promise<HistoryResult> {
    const all = [...new Set(channels)];
    const cursor = parseId(cursorText);
    const [epochBytes, topBytes, status, codes, page, more, split] = await this.readHistory(cursor ? all : [], cursor, limits);
    const position = { epoch: epochBytes.toString(), seq: Number(topBytes?.toString() ?? 0) };
    if (!cursor) return { position, messages: [], reset: { channels: all, reason: 'malformed' }, more: false };
    const state = status.toString();
    if (state !== 'ok') return { position, messages: [], reset: { channels: all, reason: state as ResetReason }, more: false };
    const lost: string[] = [];
    // One reason per answer: a failover's loss over expiry over trimming.
    let reason: 'trimmed' | 'expired' | 'lost' = 'trimmed';
    all.forEach((channel, i) => {
      if (codes[i] === 0) return;
      lost.push(channel);
      if (codes[i] === 3) reason = 'lost';
      else if (codes[i] === 2 && reason === 'trimmed') reason = 'expired';
    });
    const messages: BrokerMessage[] = page.map(([i, id, frame, t]) => ({
      seq: parseInt(id.toString('latin1'), 10),
      channel: all[i - 1]!,
      frame,
      publishedAt: Number(t.toString()),
    }));
    const result: HistoryResult = { position, messages, more: more === 1 };
    if (lost.length > 0) result.reset = { channels: lost, reason };
    if (split >= 0) result.split = split;
    return result;
  }

  async position(): Promise<Cursor> {
    const [epoch, top] = await this.readHistory([], undefined);
    return { epoch: epoch.toString(), seq: Number(top?.toString() ?? 0) };
  }

  /**
   * The last seq the live tracker passed to the sink, when it is in sync: subscribed, no catch-up
   * running or pending. PSUBSCRIBE sees every publish and the tracker delivers strictly in order
   * (repairing any jump from history), so everything above it is still to come and nothing at or
   * below it will come again.
   */
  livePosition(): Cursor | undefined {
    return this.subscribed && !this.closed ? this.live.syncedPosition() : undefined;
  }

  /** The last seq the live tracker passed to the sink, in sync or not (see `Broker.reachedPosition`). */
  reachedPosition(): Cursor | undefined {
    return this.closed ? undefined : this.live.reachedPosition();
  }

  // --- commands ---------------------------------------------------------------------------

  private scripts(): ScriptCommands {
    if (!this.cmd || this.closed) throw new HubError('BROKER_UNAVAILABLE', 'redis broker is not started');
    return this.cmd as unknown as ScriptCommands;
  }

  /**
   * One PUBLISH_LUA call, sent like any other (its own reply, error and command timeout, so
   * `settlePublish` works per attempt as always), but written into the command connection's
   * socket corked until `setImmediate`: the calls of one event-loop turn (every publish request
   * read in it) leave in one writev instead of one write syscall each, and Redis reads them in one
   * go too. Order is unchanged (one socket, written in call order).
   */
  private sendPublish(cmd: Redis, args: (string | number)[]): Promise<[number, string]> {
    const stream = cmd.stream;
    if (stream && stream !== this.corked && !stream.writableCorked) {
      stream.cork();
      this.corked = stream;
      setImmediate(() => {
        if (this.corked === stream) this.corked = undefined;
        stream.uncork();
      });
    }
    return this.publishScript.call(cmd, args) as Promise<[number, string]>;
  }

  private attempt(p: PreparedPublish, candidate: string): Attempt {
    const o = this.options;
    const token = randomUUID();
    const record = this.keys.idempotency(p.record ?? `i:${token}`);
    const keys = [...this.keys.epochKeys, record, this.keys.historyLru, this.keys.historyBytes, this.keys.historyTotal];
    for (const channel of p.channels) keys.push(this.keys.history(channel), this.keys.meta(channel));
    const recordTtl = p.record === undefined ? INTERNAL_RECORD_TTL : Math.max(1, Math.ceil(o.idempotencyTtlSeconds));
    const args = [
      keys.length,
      ...keys,
      candidate,
      Math.max(1, o.historySize),
      ttlSeconds(o.historyTtlSeconds),
      ttlSeconds(o.historyTtlSeconds * META_TTL_FACTOR),
      recordTtl,
      p.body,
      this.limits.historyMaxBytesPerChannel,
      this.limits.historyMaxBytes,
      this.keys.namespace,
      token,
      (o.waitReplicas ?? 0) > 0 ? 1 : 0,
      0,
      ...p.channels,
    ];
    return { record, token, args };
  }

  private readHistory(channels: string[], cursor: Cursor | undefined, limits?: HistoryPageLimits): Promise<HistoryReply> {
    const keys = [...this.keys.epochKeys];
    for (const channel of channels) keys.push(this.keys.history(channel), this.keys.meta(channel));
    const scripts = this.scripts();
    return unavailableOnError(
      scripts.cycloneHistoryBuffer(
        keys.length,
        ...keys,
        newEpoch(),
        cursor?.epoch ?? '',
        cursor?.seq ?? 0,
        pageLimit(limits?.maxMessages),
        pageLimit(limits?.maxBytes),
        ...channels,
      ),
    );
  }

  private connect(role: 'command' | 'subscriber', extra: RedisOptions): Redis {
    const conn = createRedisClient(this.options.connection ?? { url: this.options.url }, {
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
      if (!down && !this.closed) this.log.warn('redis error', { event: 'redis_error', role, ...redisErrorHint(err), ...errorFields(err) });
    });
    return conn;
  }

  private updateState(): void {
    const ready = this.isReady();
    if (ready === this.readyState) return;
    this.readyState = ready;
    this.events.emit('state', { ready });
  }

  // --- subscriber -------------------------------------------------------------------------

  private startSubscriber(): void {
    if (this.closed) return;
    const sub = this.connect('subscriber', {});
    sub.on('pmessageBuffer', (_pattern: string, channel: Buffer, message: Buffer) => this.live.onPubsub(channel, message));
    const lostReports = Buffer.from(this.keys.lostReports);
    sub.on('messageBuffer', (channel: Buffer, message: Buffer) => {
      if (channel.equals(lostReports)) this.live.onLostReport(message);
      else this.probeOutstanding = false; // the probe channel is the only other one SUBSCRIBEd
    });
    const interval = this.options.probeIntervalMs ?? 5000;
    if (interval > 0) {
      this.probeTimer = setInterval(() => this.probe(), interval);
      this.probeTimer.unref();
    }
    sub.on('ready', () => void this.resubscribe(sub));
    this.sub = sub;
    sub.connect().catch(() => {});
  }

  /** After every (re)connect: PSUBSCRIBE, await it, then catch up from the last delivered seq. */
  private async resubscribe(sub: Redis): Promise<void> {
    try {
      await sub.psubscribe(this.keys.pattern);
      await sub.subscribe(this.probeChannel, this.keys.lostReports);
    } catch (err) {
      if (sub.status === 'ready' && !this.closed) {
        this.log.warn('psubscribe failed, reconnecting', { event: 'redis_psubscribe_failed', ...errorFields(err) });
        sub.disconnect(true);
      }
      return;
    }
    if (sub.status !== 'ready' || this.closed) return;
    if (this.everSubscribed) this.stats.resubscribes++;
    this.everSubscribed = this.subscribed = true;
    this.probeOutstanding = false;
    this.updateState();
    this.live.scheduleRepair();
  }

  /**
   * One probe per interval. The previous one not echoed by now means the subscriber connection is
   * up but deaf: drop it; the reconnect re-subscribes and catches up from history.
   */
  private probe(): void {
    const sub = this.sub;
    if (this.closed || !sub || !this.subscribed || this.cmd?.status !== 'ready') return;
    if (this.probeOutstanding) {
      this.stats.probeFailures++;
      this.events.emit('probe_failed');
      this.log.warn('pub/sub probe not echoed: re-establishing the subscription', { event: 'redis_probe_failed' });
      this.subscribed = false;
      this.probeOutstanding = false;
      this.updateState();
      sub.disconnect(true);
      return;
    }
    this.probeOutstanding = true;
    this.cmd.publish(this.probeChannel, '1').catch(() => {
      this.probeOutstanding = false; // Redis unreachable: the connection events handle that
    });
  }
}

/** A page limit as the history script takes it: 0 = none. */
function pageLimit(n: number | undefined): number {
  return n === undefined || !Number.isFinite(n) || n <= 0 ? 0 : Math.floor(n);
}

function ttlSeconds(seconds: number): number {
  return Math.max(1, Math.ceil(seconds));
}

/** Seconds the internal record of a publish without a key lives (long enough to settle it). */
const INTERNAL_RECORD_TTL = 60;

function toPublishResult([status, ids]: [number, string]): PublishResult & { fenced?: boolean } {
  const result: PublishResult & { fenced?: boolean } = { ids: ids === '' ? [] : ids.split(' '), duplicate: status === 1 };
  if (status === 2) result.fenced = true;
  return result;
}

/**
 * The one 503 of the broker. Its text is fixed: Redis and ioredis error text (addresses,
 * internals) never reaches a client; the cause is kept for the log, written once per state
 * change by the broker.
 */
export const BROKER_UNAVAILABLE_MESSAGE =
  'the message broker is unavailable; retry later (a retry with the same idempotency key is never applied twice)';

function unavailable(err: unknown): HubError {
  if (err instanceof HubError) return err;
  return new HubError('BROKER_UNAVAILABLE', BROKER_UNAVAILABLE_MESSAGE, { cause: err });
}

async function unavailableOnError<T>(promise: Promise<T>): Promise<T> {
  try {
    return await promise;
  } catch (err) {
    throw unavailable(err);
  }
}
