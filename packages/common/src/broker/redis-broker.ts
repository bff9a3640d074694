import { EventEmitter } from 'node:events';
import type { Redis, RedisOptions } from 'ioredis';
import { HubError } from '../errors.js';
import { createLogger, type Logger } from '../log/logger.js';
import { errorFields } from '../log/error-fields.js';
import type {
  Broker,
  BrokerSink,
  HistoryOptions,
  HistoryPageLimits,
  HistoryResult,
  ObservableBroker,
  PublishInput,
  PublishResult,
} from './broker.js';
import { newEpoch, parseId, type Cursor } from './cursor.js';
import { unavailable } from './broker-unavailable.js';
import { PublishFailureLog } from './publish-failure-log.js';
import { RedisKeys } from './redis-keys.js';
import { LiveTracker } from './redis-live.js';
import { observeRedisBroker } from './redis-broker-metrics.js';
import {
  newRedisBrokerStats,
  ReadinessEvents,
  watchConnection,
  type RedisBrokerEvents,
  type RedisBrokerStats,
} from './redis-broker-events.js';
import type { Registry } from 'prom-client';
import { preparePublish, publishLimits, type PreparedPublish, type PublishLimits } from './publish-prepare.js';
import { settlePublish, type Attempt } from './redis-settle.js';
import { PUBLISH_LUA } from './redis-scripts.js';
import { brokerScripts, defineBrokerScripts, type HistoryReply, type ScriptCommands } from './redis-script-commands.js';
import { decodeHistory, historyPosition, readHistory } from './redis-history.js';
import { INTERNAL_RECORD_TTL, PublishArgs, publishResults } from './redis-publish.js';
import { PublishBatcher, type PublishLane } from './redis-publish-batch.js';
import { LostReporter, RecentIds } from './redis-lost.js';
import { BROKER_CLIENT_OPTIONS, closeRedis, createRedisClient, type RedisConnectionConfig } from './redis-connection.js';
import { WireScript } from './redis-wire-script.js';
import { releaseCalls, replicationTimeout } from './redis-wait.js';

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
  readonly stats: RedisBrokerStats = newRedisBrokerStats();
  private readonly readiness = new ReadinessEvents(this.events, () => this.isReady());
  /** The ids this process was answered for, to report them should a failover lose them. */
  private readonly answered = new RecentIds();
  private serverRunId: string | undefined;
  private readonly keys: RedisKeys;
  private readonly limits: PublishLimits;
  private readonly publishArgs: PublishArgs;
  private readonly failures: PublishFailureLog;
  private readonly lostReporter: LostReporter;
  private readonly log: Logger;
  private readonly wantSubscriber: boolean;
  private cmd: Redis | undefined;
  private sub: Redis | undefined;
  private readonly live: LiveTracker;
  private closed = false;
  private subscribed = false;
  private everSubscribed = false;
  private started: { resolve: () => void; reject: (err: Error) => void } | undefined;
  private readonly probeChannel: string;
  private probeTimer: NodeJS.Timeout | undefined;
  private probeOutstanding = false;
  private readonly publishScript = new WireScript(PUBLISH_LUA);
  private readonly batcher: PublishBatcher;
  /** The one lane of a standalone (or Sentinel) Redis: every publish on the command connection. */
  private readonly lane: PublishLane;

  /** Registers the broker's series (gap repairs, losses, connection state, probes). */
  observe(registry: Registry, component: 'edge' | 'publisher' | 'all' = 'edge'): void {
    observeRedisBroker(this.events, registry, component);
  }

  constructor(private readonly options: RedisBrokerOptions) {
    this.keys = new RedisKeys(options.prefix);
    this.limits = publishLimits(options);
    this.publishArgs = new PublishArgs(options, this.limits, {
      historyMaxBytes: this.limits.historyMaxBytes,
      holdForRelease: (options.waitReplicas ?? 0) > 0,
      sharded: false,
    });
    this.batcher = new PublishBatcher(this.publishArgs, this.limits.maxPublishFanoutBytes);
    this.lane = {
      keys: this.keys,
      candidate: newEpoch,
      send: (args) => {
        const cmd = this.cmd;
        if (!cmd) return Promise.reject(new Error('redis command connection is absent'));
        return this.publishScript.call(cmd, args);
      },
    };
    this.log = (options.logger ?? createLogger()).child({ component: 'redis-broker' });
    this.failures = new PublishFailureLog(this.log, () => this.closed);
    this.lostReporter = new LostReporter({
      scripts: () => this.scripts(),
      log: this.log,
      closed: () => this.closed,
      historyTtlSeconds: options.historyTtlSeconds,
      sharded: false,
    });
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
      reportLost: (epoch, entries) => void this.lostReporter.report(this.keys, epoch, entries),
    });
  }

  subscribe(sink: BrokerSink): void {
    this.live.sink = sink;
  }

  async start(): Promise<void> {
    const done = new Promise<void>((resolve, reject) => (this.started = { resolve, reject }));
    const cmd = this.connect('command', { commandTimeout: this.options.commandTimeoutMs ?? 5000 });
    defineBrokerScripts(cmd);
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
    await Promise.all([this.sub, this.cmd].map(async (conn) => conn && closeRedis(conn)));
    this.readiness.update();
  }

  isReady(): boolean {
    return !this.closed && this.cmd?.status === 'ready' && (!this.wantSubscriber || this.subscribed);
  }

  /**
   * Validates the whole call (preparePublish), then runs its inputs in one PUBLISH_LUA call
   * (redis-publish-batch.ts: with the other publishes of this event-loop turn), so a batch is
   * applied entirely or not at all. Every attempt carries an
   * idempotency record — the client's key, or an internal `i:<attempt>` record kept
   * INTERNAL_RECORD_TTL seconds — so when the answer is lost (a command timeout, a dropped
   * connection) `settlePublish` can learn from Redis whether it was applied, and fence it if
   * not: the caller gets 200 with the ids exactly when the publish was applied, and a 503 only
   * when it was not (and never will be).
   */
  async publish(inputs: PublishInput[]): Promise<PublishResult[]> {
    if (inputs.length === 0) return [];
    const prepared = preparePublish(inputs, this.limits); // the whole call, before anything is sent
    const attempts: Attempt[] = prepared.map((p) => this.publishArgs.attempt(this.keys, p, p.channels));
    this.scripts(); // throws when not started or closed
    // Not connected: nothing can be sent (the offline queue is off), so nothing is applied.
    if (this.cmd?.status !== 'ready') {
      const err = new Error(`redis command connection is ${this.cmd?.status ?? 'absent'}`);
      this.failures.failed(err);
      throw unavailable(err);
    }
    let results: PublishResult[];
    try {
      results = publishResults(await this.batcher.submit(this.lane, attempts));
    } catch (err) {
      this.failures.failed(err);
      const settled = await settlePublish(this.cmd, attempts, {
        deadlineMs: (this.options.commandTimeoutMs ?? 5000) * 2,
        fenceTtlSeconds: INTERNAL_RECORD_TTL,
      });
      if (!settled) throw unavailable(err);
      results = settled; // answered 200: Redis took the publish after all
    }
    if ((this.options.waitReplicas ?? 0) > 0) await this.awaitReplicas(results, prepared);
    this.failures.recovered();
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
      this.failures.failed(err);
      throw unavailable(err);
    }
    if (acked < n) {
      this.stats.waitTimeouts++;
      this.events.emit('wait_timeout');
      throw replicationTimeout(n);
    }
    const scripts = cmd as unknown as ScriptCommands;
    try {
      for (const call of releaseCalls(this.keys, results, (i) => prepared[i]!.channels, false)) await scripts.cycloneRelease(...call);
    } catch (err) {
      // Replicated but not released: the next release or a promotion covers it (its seq is
      // below theirs); the client is told to retry, which is answered the same ids.
      this.failures.failed(err);
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
          await this.lostReporter.report(
            this.keys,
            epoch,
            entries.filter(([seq]) => seq > split),
          );
      } catch (err) {
        this.log.warn('could not report the publishes a failover lost', { event: 'lost_report_failed', ...errorFields(err) });
      }
    })();
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

  async history(channels: string[], cursorText: string, limits?: HistoryPageLimits): Promise<HistoryResult> {
    const all = [...new Set(channels)];
    const cursor = parseId(cursorText);
    return decodeHistory(all, cursor !== undefined, await this.readHistory(cursor ? all : [], cursor, limits));
  }

  async position(): Promise<Cursor> {
    return historyPosition(await this.readHistory([], undefined));
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
    return brokerScripts(this.cmd, this.closed);
  }

  private readHistory(channels: string[], cursor: Cursor | undefined, limits?: HistoryPageLimits): Promise<HistoryReply> {
    return readHistory(this.scripts(), this.keys, newEpoch(), channels, cursor, limits);
  }

  private connect(role: 'command' | 'subscriber', extra: RedisOptions): Redis {
    const conn = createRedisClient(this.options.connection ?? { url: this.options.url }, {
      ...BROKER_CLIENT_OPTIONS,
      connectionName: `cyclone-sse-${role}`,
      ...extra,
    });
    // Before watchConnection's listener, so readiness is updated with the subscription gone.
    if (role === 'subscriber') conn.on('close', () => (this.subscribed = false));
    watchConnection(conn, { role, name: 'redis connection', log: this.log, closed: () => this.closed, readiness: this.readiness });
    return conn;
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
    this.readiness.update();
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
      this.readiness.update();
      sub.disconnect(true);
      return;
    }
    this.probeOutstanding = true;
    this.cmd.publish(this.probeChannel, '1').catch(() => {
      this.probeOutstanding = false; // Redis unreachable: the connection events handle that
    });
  }
}
