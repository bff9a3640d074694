import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { Cluster } from 'ioredis';
import type { Registry } from 'prom-client';
import { HubError } from '../errors.js';
import { createLogger, type Logger } from '../log/logger.js';
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
import { BROKER_UNAVAILABLE_MESSAGE, unavailable } from './broker-unavailable.js';
import type { Cursor } from './cursor.js';
import { PartitionCodec } from './partition-cursor.js';
import { partitionOf, partitionTags } from './partitions.js';
import { preparePublish, publishLimits, type PublishLimits } from './publish-prepare.js';
import { PublishFailureLog } from './publish-failure-log.js';
import { observeRedisBroker } from './redis-broker-metrics.js';
import {
  newRedisBrokerStats,
  ReadinessEvents,
  watchConnection,
  type RedisBrokerEvents,
  type RedisBrokerStats,
} from './redis-broker-events.js';
import { closeRedis, createRedisClusterClient, type RedisConnectionConfig } from './redis-connection.js';
import { decodeHistory, historyPosition, readHistory } from './redis-history.js';
import { RedisKeys } from './redis-keys.js';
import { LiveTracker } from './redis-live.js';
import { LostReporter } from './redis-lost.js';
import { INTERNAL_RECORD_TTL, PublishArgs, publishResults } from './redis-publish.js';
import { PublishBatcher, type PublishLane } from './redis-publish-batch.js';
import { brokerScripts, defineBrokerScripts, type HistoryReply, type ScriptCommands } from './redis-script-commands.js';
import { settlePublish, type Attempt } from './redis-settle.js';
import { ShardSubscriber } from './redis-shard-subscriber.js';
import { releaseCalls, replicationTimeout, waitForPartitionReplicas } from './redis-wait.js';
import type { Redis } from 'ioredis';

export interface RedisClusterBrokerOptions extends HistoryOptions {
  /** Seed nodes (`clusterNodes`), and user, password and TLS from `url`. */
  connection: RedisConnectionConfig;
  prefix: string;
  /** --redis-partitions (1..16384). */
  partitions: number;
  logger?: Logger;
  /** False for a publisher-only process: no subscriber connections. Default true. */
  subscribe?: boolean;
  /** Reply timeout of commands in ms (default 5000). */
  commandTimeoutMs?: number;
  /** Pub/sub probe period per node connection in ms (default 5000; 0 = off). */
  probeIntervalMs?: number;
  /** Slot map refresh period in ms (default 5000). */
  slotRefreshMs?: number;
  /**
   * --redis-wait-replicas: after each publish, `WAIT` for this many replicas of each partition's
   * primary before answering 200 and before any subscriber can see it (0 = off, the default).
   */
  waitReplicas?: number;
  /** --redis-wait-timeout: ms a WAIT may take before the publish answers 503 REPLICATION_TIMEOUT. */
  waitTimeoutMs?: number;
}

/** One segment of a PUBLISH_LUA call: the channels of one input that fall in one partition. */
interface Part {
  input: number;
  partition: number;
  channels: string[];
  attempt: Attempt;
}

/**
 * The Redis broker on a Redis Cluster (docs/architecture.md#redis-cluster): the sequence is cut
 * into `--redis-partitions` partitions, each with its own sequence, epoch, histories and
 * idempotency records under one hash tag (one slot), so every script stays single-slot and the
 * partitions spread over the shards. The scripts are the standalone broker's (redis-scripts.ts)
 * on the partition's keys, publishing with `SPUBLISH` per channel; the edge subscribes per
 * channel it serves (redis-shard-subscriber.ts) and runs one live tracker per partition, whose
 * gap check is the channel's previous seq carried by every message.
 *
 * Ids: a partition's epoch starts with its index (partition-cursor.ts); a stream over several
 * partitions gets a cursor with one position per partition. Order holds within a partition.
 */
export class RedisClusterBroker implements Broker, ObservableBroker {
  readonly kind = 'redis-cluster';
  readonly events = new EventEmitter<RedisBrokerEvents>();
  readonly stats: RedisBrokerStats = newRedisBrokerStats();
  private readonly readiness = new ReadinessEvents(this.events, () => this.isReady());
  readonly codec: PartitionCodec;
  readonly partitions: number;
  private readonly keys: RedisKeys[];
  private readonly trackers: LiveTracker[] = [];
  private readonly limits: PublishLimits;
  private readonly publishArgs: PublishArgs;
  private readonly batcher: PublishBatcher;
  /** One per partition: its publishes of an event-loop turn go in one script call (one slot). */
  private readonly lanes: PublishLane[];
  private readonly failures: PublishFailureLog;
  private readonly lostReporter: LostReporter;
  private readonly log: Logger;
  private readonly wantSubscriber: boolean;
  private cmd: Cluster | undefined;
  private shards: ShardSubscriber | undefined;
  private closed = false;
  private synced: Set<number> = new Set();
  private started: { resolve: () => void; reject: (err: Error) => void } | undefined;

  constructor(private readonly options: RedisClusterBrokerOptions) {
    this.partitions = options.partitions;
    this.codec = new PartitionCodec(options.partitions);
    this.keys = partitionTags(options.partitions).map((tag) => new RedisKeys(options.prefix, tag));
    this.limits = publishLimits(options);
    this.publishArgs = new PublishArgs(options, this.limits, {
      // The total history bound is the deployment's: each partition keeps its share.
      historyMaxBytes: Math.max(1, Math.floor(this.limits.historyMaxBytes / this.partitions)),
      holdForRelease: (options.waitReplicas ?? 0) > 0,
      sharded: true,
    });
    this.batcher = new PublishBatcher(this.publishArgs, this.limits.maxPublishFanoutBytes);
    this.lanes = this.keys.map((keys, k) => ({
      keys,
      candidate: () => this.codec.epochFor(k),
      send: (args) => {
        const cmd = this.cmd;
        if (!cmd) return Promise.reject(new Error('redis cluster connection is absent'));
        return (cmd as unknown as ScriptCommands).cyclonePublish(...args);
      },
    }));
    this.log = (options.logger ?? createLogger()).child({ component: 'redis-broker' });
    this.failures = new PublishFailureLog(this.log, () => this.closed);
    this.lostReporter = new LostReporter({
      scripts: () => this.scripts(),
      log: this.log,
      closed: () => this.closed,
      historyTtlSeconds: options.historyTtlSeconds,
      sharded: true,
    });
    this.wantSubscriber = options.subscribe !== false;
    if (this.wantSubscriber) {
      for (let k = 0; k < this.partitions; k++) {
        const tracker = new LiveTracker({
          history: (channels, cursor, limits) => this.history(channels, cursor, limits, k),
          position: () => this.partitionPosition(k),
          pubsubPrefixLength: this.keys[k]!.pubsubPrefixLength,
          log: this.log,
          stats: this.stats,
          events: this.events,
          onSynced: () => this.onSynced(k),
          reportLost: (epoch, entries) => void this.lostReporter.report(this.keys[k]!, epoch, entries),
          sharded: true,
          partition: k,
          channels: () => this.shards?.channelsOf(k) ?? [],
        });
        tracker.pause();
        this.trackers.push(tracker);
      }
    }
  }

  observe(registry: Registry, component: 'edge' | 'publisher' | 'all' = 'edge'): void {
    observeRedisBroker(this.events, registry, component);
  }

  subscribe(sink: BrokerSink): void {
    for (const t of this.trackers) t.sink = sink;
  }

  /** The partition of a channel (stable: partitions.ts). */
  partitionOf(channel: string): number {
    return partitionOf(channel, this.partitions);
  }

  async start(): Promise<void> {
    const done = new Promise<void>((resolve, reject) => (this.started = { resolve, reject }));
    const cmd = createRedisClusterClient(
      this.options.connection,
      {
        connectionName: 'cyclone-sse-command',
        commandTimeout: this.options.commandTimeoutMs ?? 5000,
        maxRetriesPerRequest: 0,
        autoResendUnfulfilledCommands: false,
      },
      { lazyConnect: true, enableOfflineQueue: false, slotsRefreshInterval: this.options.slotRefreshMs ?? 5000 },
    );
    defineBrokerScripts(cmd);
    watchConnection(cmd, {
      role: 'command',
      name: 'redis cluster connection',
      log: this.log,
      closed: () => this.closed,
      readiness: this.readiness,
    });
    this.cmd = cmd;
    cmd.once('ready', () => {
      if (!this.wantSubscriber) {
        this.started?.resolve();
        return;
      }
      this.shards = new ShardSubscriber({
        connection: this.options.connection,
        keys: this.keys,
        trackers: this.trackers,
        cmd,
        log: this.log,
        stats: this.stats,
        events: this.events,
        probeIntervalMs: this.options.probeIntervalMs ?? 5000,
        refreshMs: this.options.slotRefreshMs ?? 5000,
        onState: () => this.readiness.update(),
        token: randomUUID().replace(/-/g, '').slice(0, 12),
      });
      this.shards.start();
    });
    cmd.connect().catch(() => {});
    await done;
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const t of this.trackers) t.close();
    this.started?.reject(new HubError('BROKER_UNAVAILABLE', 'broker closed before it started'));
    await this.shards?.close();
    if (this.cmd) await closeRedis(this.cmd);
    this.readiness.update();
  }

  isReady(): boolean {
    return !this.closed && this.cmd?.status === 'ready' && (!this.wantSubscriber || (this.shards?.allLive() ?? false));
  }

  private onSynced(k: number): void {
    if (this.synced.has(k)) return;
    this.synced.add(k);
    if (this.synced.size === this.partitions) {
      this.started?.resolve();
      this.started = undefined;
    }
  }

  // --- the edge's channel set ----------------------------------------------------------------

  /** A channel got its first local subscriber (the hub calls this): subscribe to it. */
  watch(channel: string): void {
    this.shards?.add(channel);
  }

  /** A channel lost its last local subscriber. */
  unwatch(channel: string): void {
    this.shards?.remove(channel);
  }

  /** Resolves when every channel's subscription is confirmed (call before reading a stream's position). */
  whenSubscribed(channels: readonly string[]): Promise<void> {
    if (!this.shards) return Promise.reject(new HubError('BROKER_UNAVAILABLE', BROKER_UNAVAILABLE_MESSAGE));
    return this.shards.whenSubscribed(channels);
  }

  // --- publish -------------------------------------------------------------------------------

  /**
   * Validates the whole call, then runs its inputs' parts of each partition in one PUBLISH_LUA
   * call on that partition (redis-publish-batch.ts: with the partition's other publishes of this
   * event-loop turn), so a batch is atomic per partition; partitions in parallel. A lost answer
   * is settled per partition as on a standalone Redis (redis-settle.ts).
   * When some partitions applied and another did not, the answer is 503: a retry with the same
   * idempotency key is answered the ids already given and applies the rest.
   */
  async publish(inputs: PublishInput[]): Promise<PublishResult[]> {
    if (inputs.length === 0) return [];
    const prepared = preparePublish(inputs, this.limits);
    const cmd = this.cmd;
    if (cmd?.status !== 'ready') {
      const err = new Error(`redis cluster connection is ${cmd?.status ?? 'absent'}`);
      this.failures.failed(err);
      throw unavailable(err);
    }
    const parts: Part[] = [];
    prepared.forEach((p, i) => {
      const byPartition = new Map<number, string[]>();
      for (const c of p.channels) {
        const k = this.partitionOf(c);
        const list = byPartition.get(k);
        if (list) list.push(c);
        else byPartition.set(k, [c]);
      }
      for (const [k, channels] of byPartition)
        parts.push({
          input: i,
          partition: k,
          channels,
          attempt: this.publishArgs.attempt(this.keys[k]!, p, channels),
        });
    });
    const groups = new Map<number, Part[]>();
    for (const part of parts) {
      const g = groups.get(part.partition);
      if (g) g.push(part);
      else groups.set(part.partition, [part]);
    }
    const outcomes = await Promise.all([...groups.values()].map((g) => this.publishGroup(cmd, g)));
    const failures = outcomes.filter((o): o is Error => o instanceof Error);
    const failed = failures.find((e) => !(e instanceof HubError && e.code === 'REPLICATION_TIMEOUT'));
    if (failed) throw unavailable(failed);
    if (failures.length > 0) {
      this.stats.waitTimeouts++;
      this.events.emit('wait_timeout');
      throw failures[0]!;
    }
    const idsOf = new Map<Part, { ids: string[]; duplicate: boolean }>();
    [...groups.values()].forEach((g, gi) => (outcomes[gi] as PublishResult[]).forEach((r, j) => idsOf.set(g[j]!, r)));
    this.failures.recovered();
    return prepared.map((p, i) => {
      const byChannel = new Map<string, string>();
      let duplicate = true;
      for (const part of parts) {
        if (part.input !== i) continue;
        const r = idsOf.get(part)!;
        duplicate &&= r.duplicate;
        part.channels.forEach((c, j) => byChannel.set(c, r.ids[j]!));
      }
      return { ids: p.channels.map((c) => byChannel.get(c)!), duplicate };
    });
  }

  private async publishGroup(cmd: Cluster, group: Part[]): Promise<PublishResult[] | Error> {
    let results: PublishResult[];
    try {
      results = publishResults(
        await this.batcher.submit(
          this.lanes[group[0]!.partition]!,
          group.map((part) => part.attempt),
        ),
      );
    } catch (err) {
      this.failures.failed(err);
      const settled = await settlePublish(
        cmd as unknown as Redis,
        group.map((p) => p.attempt),
        { deadlineMs: (this.options.commandTimeoutMs ?? 5000) * 2, fenceTtlSeconds: INTERNAL_RECORD_TTL },
      );
      if (!settled) return err instanceof Error ? err : new Error(String(err));
      results = settled; // applied after all
    }
    return (this.options.waitReplicas ?? 0) > 0 ? ((await this.awaitReplicas(cmd, group, results)) ?? results) : results;
  }

  /**
   * --redis-wait-replicas, per partition: WAIT for the replicas of the partition's primary
   * (redis-wait.ts says how the WAIT is routed and why it covers the group's messages), then
   * release the group's messages (RELEASE_LUA on the partition's keys, SPUBLISH). Answers the
   * failure, if any: REPLICATION_TIMEOUT when the WAIT came back short. The messages then stay
   * unreleased until a later release in the partition or a promotion covers them; a retry with
   * the same idempotency key is answered the same ids, waited for and released (in every
   * partition of the publish: those released already publish their messages again, which edges
   * drop as already delivered).
   */
  private async awaitReplicas(cmd: Cluster, group: Part[], results: PublishResult[]): Promise<Error | undefined> {
    const n = this.options.waitReplicas ?? 0;
    const keys = this.keys[group[0]!.partition]!;
    try {
      const acked = await waitForPartitionReplicas(cmd, keys, results, n, this.options.waitTimeoutMs ?? 1000);
      if (acked < n) return replicationTimeout(n);
      const scripts = cmd as unknown as ScriptCommands;
      for (const call of releaseCalls(keys, results, (j) => group[j]!.channels, true)) await scripts.cycloneRelease(...call);
      return undefined;
    } catch (err) {
      // Not known to be replicated, or replicated but not released: 503, and a retry with the
      // idempotency key is answered the same ids (never applied twice).
      this.failures.failed(err);
      return err instanceof Error ? err : new Error(String(err));
    }
  }

  // --- history and positions -----------------------------------------------------------------

  /**
   * History after the cursor on channels of one partition (the edge splits a stream's channels
   * by partition: `partitionOf`). The cursor may be a multi-partition cursor: its position in
   * this partition is used; a cursor without one resets the channels as malformed.
   */
  async history(channels: string[], cursorText: string, limits?: HistoryPageLimits, partition?: number): Promise<HistoryResult> {
    const all = [...new Set(channels)];
    const k = partition ?? (all.length > 0 ? this.partitionOf(all[0]!) : 0);
    if (all.some((c) => this.partitionOf(c) !== k)) throw new Error('history: channels of several partitions in one read');
    const cursor = this.codec.parse(cursorText)?.get(k);
    return decodeHistory(all, cursor !== undefined, await this.readHistory(k, cursor ? all : [], cursor, limits), k);
  }

  /** The position of partition 0 (a stream's positions are `positions(channels)`). */
  position(): Promise<Cursor> {
    return this.partitionPosition(0);
  }

  /** The current position of each partition of `channels`, in partition order. */
  async positions(channels: readonly string[]): Promise<Cursor[]> {
    const ks = [...new Set(channels.map((c) => this.partitionOf(c)))].sort((a, b) => a - b);
    return Promise.all(ks.map((k) => this.partitionPosition(k)));
  }

  /**
   * Synchronous: the delivered position of each partition of `channels` when every one of them
   * is in sync and every channel's subscription is confirmed (a valid priming split, as
   * `Broker.livePosition`), else undefined.
   */
  livePositions(channels: readonly string[]): Cursor[] | undefined {
    if (this.closed || !this.shards) return undefined;
    const ks = new Set<number>();
    for (const c of channels) {
      if (!this.shards.isConfirmed(c)) return undefined;
      ks.add(this.partitionOf(c));
    }
    const out: Cursor[] = [];
    for (const k of [...ks].sort((a, b) => a - b)) {
      const p = this.trackers[k]?.syncedPosition();
      if (!p) return undefined;
      out.push(p);
    }
    return out;
  }

  /** Synchronous: the position partition `k`'s live stream has reached here (every message up to it was given to the sink). */
  deliveredPosition(k: number): Cursor | undefined {
    return this.trackers[k]?.reachedPosition();
  }

  private async partitionPosition(k: number): Promise<Cursor> {
    return historyPosition(await this.readHistory(k, [], undefined), k);
  }

  private scripts(): ScriptCommands {
    return brokerScripts(this.cmd, this.closed);
  }

  private readHistory(k: number, channels: string[], cursor: Cursor | undefined, limits?: HistoryPageLimits): Promise<HistoryReply> {
    return readHistory(this.scripts(), this.keys[k]!, this.codec.epochFor(k), channels, cursor, limits);
  }
}

/** A broker whose sequence is partitioned (the edge splits streams by partition). */
export interface PartitionedBroker {
  readonly codec: PartitionCodec;
  readonly partitions: number;
  partitionOf(channel: string): number;
  watch(channel: string): void;
  unwatch(channel: string): void;
  whenSubscribed(channels: readonly string[]): Promise<void>;
  positions(channels: readonly string[]): Promise<Cursor[]>;
  livePositions(channels: readonly string[]): Cursor[] | undefined;
  deliveredPosition(partition: number): Cursor | undefined;
}

export function isPartitionedBroker(broker: Broker): broker is Broker & PartitionedBroker {
  return typeof (broker as Partial<PartitionedBroker>).livePositions === 'function';
}
