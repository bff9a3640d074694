import type { EventEmitter } from 'node:events';
import type { Cluster, Redis } from 'ioredis';
import { HubError } from '../errors.js';
import { errorFields } from '../log/error-fields.js';
import type { Logger } from '../log/logger.js';
import { hashSlot, partitionOf } from './partitions.js';
import { BROKER_CLIENT_OPTIONS, closeRedis, createRedisNodeClient, type RedisConnectionConfig } from './redis-connection.js';
import type { RedisKeys } from './redis-keys.js';
import type { LiveTracker } from './redis-live.js';
import type { RedisBrokerEvents, RedisBrokerStats } from './redis-broker-events.js';

export interface ShardSubscriberOptions {
  connection: RedisConnectionConfig;
  /** Per partition: its keys (tagged) and its live tracker. */
  keys: readonly RedisKeys[];
  trackers: readonly LiveTracker[];
  /** The command client: slot map reads (`CLUSTER SLOTS`) and probes (`SPUBLISH`). */
  cmd: Cluster;
  log: Logger;
  stats: RedisBrokerStats;
  events: EventEmitter<RedisBrokerEvents>;
  /** Probe period per node connection (ms, 0 = off): a probe not echoed by the next one drops the connection. */
  probeIntervalMs: number;
  /** Slot map refresh period (ms); a quarter of it while a partition has no subscriber connection. */
  refreshMs: number;
  /** The state changed (a partition (un)subscribed). */
  onState(): void;
  /** Random token of this process (its probe channels). */
  token: string;
}

/** One subscriber connection to one node, and the partitions it carries. */
interface NodeSub {
  address: string;
  redis: Redis;
  partitions: Set<number>;
  /** The partitions whose subscriptions are confirmed on this connection. */
  live: Set<number>;
  probe: { channel: string; outstanding: boolean } | undefined;
  down: boolean;
}

/** How long `whenSubscribed` waits before it answers BROKER_UNAVAILABLE. */
const SUBSCRIBE_WAIT_MS = 5000;

/**
 * The edge's sharded pub/sub on a Redis Cluster (docs/architecture.md#redis-cluster): one plain
 * subscriber connection per node that owns a partition in use, `SSUBSCRIBE` per channel this edge
 * serves (so its ingress is its own subscribers' traffic), plus per partition its lost-report
 * channel. The slot map is followed: re-read on a `MOVED` answer, on the bare `moved` event
 * ioredis emits for a `sunsubscribe` push (the end of a slot migration), on a lost connection and
 * on a timer; a partition that changes node is paused (its messages held), subscribed on the new
 * owner and repaired from history by its tracker. Not ioredis's `Cluster` pub/sub: without
 * `shardedSubscribers` it drops sharded messages (ioredis#1759), and this code must know which
 * partition a lost connection carried.
 */
export class ShardSubscriber {
  private readonly nodes = new Map<string, NodeSub>();
  /** Per partition: the node address that owns its slot (undefined until the map is read). */
  private readonly owner: (string | undefined)[];
  /** Per partition: the channels this edge serves. */
  private readonly wanted: Set<string>[];
  /** Channels whose subscription is confirmed on their partition's current owner. */
  private readonly confirmed = new Set<string>();
  private readonly pendingAdd = new Map<number, Set<string>>();
  private readonly pendingRemove = new Map<number, Set<string>>();
  private flushScheduled = false;
  private waiters: { channels: string[]; resolve: () => void; reject: (e: Error) => void; timer: NodeJS.Timeout }[] = [];
  private refreshTimer: NodeJS.Timeout | undefined;
  private probeTimer: NodeJS.Timeout | undefined;
  private refreshing: Promise<void> | undefined;
  private refreshAgain = false;
  private closed = false;
  private readonly partitions: number;
  /** Tag `p<n>` → partition, by n (read off the channel name's bytes, no string made). */
  private readonly tagIndex = new Map<number, number>();
  private readonly prefixBytes: number;

  constructor(private readonly o: ShardSubscriberOptions) {
    this.partitions = o.keys.length;
    this.owner = new Array<string | undefined>(this.partitions).fill(undefined);
    this.wanted = Array.from({ length: this.partitions }, () => new Set<string>());
    o.keys.forEach((k, i) => this.tagIndex.set(Number((k.tag ?? '').slice(1)), i));
    this.prefixBytes = Buffer.byteLength(`${o.keys[0]!.prefix}:`);
  }

  start(): void {
    const tick = (): void => {
      if (this.closed) return;
      void this.refresh();
      const degraded = this.owner.some((_, k) => !this.isLive(k));
      this.refreshTimer = setTimeout(tick, degraded ? Math.max(100, this.o.refreshMs / 4) : this.o.refreshMs);
      this.refreshTimer.unref();
    };
    tick();
    if (this.o.probeIntervalMs > 0) {
      this.probeTimer = setInterval(() => this.probe(), this.o.probeIntervalMs);
      this.probeTimer.unref();
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.refreshTimer) clearTimeout(this.refreshTimer);
    if (this.probeTimer) clearInterval(this.probeTimer);
    for (const w of this.waiters) {
      clearTimeout(w.timer);
      w.reject(new HubError('BROKER_UNAVAILABLE', 'broker closed'));
    }
    this.waiters = [];
    await Promise.all([...this.nodes.values()].map((n) => closeRedis(n.redis)));
    this.nodes.clear();
  }

  /** Every partition has a connection with its subscriptions confirmed. */
  allLive(): boolean {
    for (let k = 0; k < this.partitions; k++) if (!this.isLive(k)) return false;
    return true;
  }

  isLive(k: number): boolean {
    const address = this.owner[k];
    return address !== undefined && this.nodes.get(address)?.live.has(k) === true;
  }

  /** Partition `k`'s subscriptions are confirmed and `channel` is among them. */
  isConfirmed(channel: string): boolean {
    return this.confirmed.has(channel);
  }

  /** The channels of `k` this edge serves (its tracker repairs these). */
  channelsOf(k: number): Iterable<string> {
    return this.wanted[k]!;
  }

  /** A channel got its first local subscriber: SSUBSCRIBE it (batched per partition at the end of the turn). */
  add(channel: string): void {
    const k = partitionOf(channel, this.partitions);
    if (this.wanted[k]!.has(channel)) return;
    this.wanted[k]!.add(channel);
    if (!this.pendingRemove.get(k)?.delete(channel)) this.pending(this.pendingAdd, k).add(channel);
    this.scheduleFlush();
  }

  /** A channel lost its last local subscriber: SUNSUBSCRIBE it. */
  remove(channel: string): void {
    const k = partitionOf(channel, this.partitions);
    if (!this.wanted[k]!.delete(channel)) return;
    if (!this.pendingAdd.get(k)?.delete(channel)) this.pending(this.pendingRemove, k).add(channel);
    this.scheduleFlush();
  }

  /**
   * Resolves once every channel's subscription is confirmed (a stream reads its position only
   * then, so no message after that position can pass this edge unseen); rejects with
   * BROKER_UNAVAILABLE after a few seconds without.
   */
  whenSubscribed(channels: readonly string[]): Promise<void> {
    if (channels.every((c) => this.confirmed.has(c))) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const w = {
        channels: [...channels],
        resolve,
        reject,
        timer: setTimeout(() => {
          this.waiters = this.waiters.filter((x) => x !== w);
          reject(new HubError('BROKER_UNAVAILABLE', 'the Redis Cluster subscription was not confirmed in time'));
        }, SUBSCRIBE_WAIT_MS),
      };
      w.timer.unref();
      this.waiters.push(w);
    });
  }

  private pending(map: Map<number, Set<string>>, k: number): Set<string> {
    let set = map.get(k);
    if (!set) map.set(k, (set = new Set()));
    return set;
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      this.flush();
    });
  }

  private flush(): void {
    for (const [k, set] of this.pendingRemove) {
      this.pendingRemove.delete(k);
      const node = this.ownerNode(k);
      const names: string[] = [];
      for (const c of set) {
        this.confirmed.delete(c);
        this.o.trackers[k]!.channelUnsubscribed(c);
        names.push(this.o.keys[k]!.pubsub(c));
      }
      if (node?.live.has(k) && names.length > 0) node.redis.sunsubscribe(...names).catch(() => {});
    }
    for (const [k, set] of this.pendingAdd) {
      this.pendingAdd.delete(k);
      const node = this.ownerNode(k);
      // Not live yet: the partition's (re)subscription takes every wanted channel.
      if (!node?.live.has(k)) continue;
      const channels = [...set].filter((c) => this.wanted[k]!.has(c));
      if (channels.length > 0) void this.subscribeChannels(node, k, channels);
    }
  }

  private ownerNode(k: number): NodeSub | undefined {
    const address = this.owner[k];
    return address === undefined ? undefined : this.nodes.get(address);
  }

  private async subscribeChannels(node: NodeSub, k: number, channels: string[]): Promise<void> {
    const keys = this.o.keys[k]!;
    try {
      await node.redis.ssubscribe(...channels.map((c) => keys.pubsub(c)));
    } catch (err) {
      this.subscribeFailed(node, k, err);
      return;
    }
    if (this.ownerNode(k) !== node || !node.live.has(k)) return;
    for (const c of channels) if (this.wanted[k]!.has(c)) this.confirm(k, c);
    this.notifyWaiters();
  }

  private confirm(k: number, channel: string): void {
    this.o.trackers[k]!.channelSubscribed(channel);
    this.confirmed.add(channel);
  }

  private notifyWaiters(): void {
    if (this.waiters.length === 0) return;
    this.waiters = this.waiters.filter((w) => {
      if (!w.channels.every((c) => this.confirmed.has(c))) return true;
      clearTimeout(w.timer);
      w.resolve();
      return false;
    });
  }

  /** An SSUBSCRIBE failed: MOVED means the slot map changed; anything else drops the connection. */
  private subscribeFailed(node: NodeSub, k: number, err: unknown): void {
    if (this.closed) return;
    const message = (err as Error).message ?? '';
    if (message.startsWith('MOVED') || message.startsWith('ASK') || message.startsWith('CLUSTERDOWN')) {
      this.o.log.info('sharded subscription redirected: reading the slot map', { event: 'redis_cluster_moved', partition: k });
      this.requestRefresh();
      return;
    }
    if (node.redis.status === 'ready') {
      this.o.log.warn('ssubscribe failed, reconnecting', { event: 'redis_ssubscribe_failed', ...errorFields(err) });
      node.redis.disconnect(true);
    }
  }

  /** Subscribes everything of partition `k` on `node` (after a (re)connect or a move), then lets its tracker repair. */
  private async subscribePartition(node: NodeSub, k: number): Promise<void> {
    const keys = this.o.keys[k]!;
    const channels = [...this.wanted[k]!];
    const names = [keys.lostReports, ...channels.map((c) => keys.pubsub(c))];
    if (node.probe && node.probe.channel.startsWith(keys.namespace)) names.push(node.probe.channel);
    try {
      for (let i = 0; i < names.length; i += 1000) await node.redis.ssubscribe(...names.slice(i, i + 1000));
    } catch (err) {
      this.subscribeFailed(node, k, err);
      return;
    }
    if (this.closed || this.ownerNode(k) !== node || node.redis.status !== 'ready' || !node.partitions.has(k)) return;
    node.live.add(k);
    for (const c of channels) if (this.wanted[k]!.has(c)) this.confirm(k, c);
    // Channels added while this ran: their own SSUBSCRIBE follows.
    const missed = [...this.wanted[k]!].filter((c) => !this.confirmed.has(c));
    if (missed.length > 0) void this.subscribeChannels(node, k, missed);
    this.o.trackers[k]!.unpause();
    this.notifyWaiters();
    this.o.onState();
  }

  /** Partition `k` stops being live on its connection: messages are held until it is subscribed again. */
  private unlive(node: NodeSub, k: number): void {
    node.live.delete(k);
    for (const c of this.wanted[k]!) this.confirmed.delete(c);
    this.o.trackers[k]!.pause();
  }

  private requestRefresh(): void {
    if (this.refreshing) {
      this.refreshAgain = true;
      return;
    }
    void this.refresh();
  }

  /** Reads the slot map and moves partitions whose owner changed. */
  private refresh(): Promise<void> {
    if (this.refreshing) return this.refreshing;
    this.refreshing = (async () => {
      do {
        this.refreshAgain = false;
        let map: unknown;
        try {
          map = await this.o.cmd.call('CLUSTER', 'SLOTS');
        } catch (err) {
          this.o.log.debug('slot map read failed', { event: 'redis_cluster_slots_failed', ...errorFields(err) });
          return;
        }
        if (!this.closed) this.apply(parseSlots(map, this.o.connection.clusterNodes?.[0]?.host ?? '127.0.0.1'));
      } while (this.refreshAgain && !this.closed);
    })().finally(() => (this.refreshing = undefined));
    return this.refreshing;
  }

  private apply(ranges: SlotOwner[]): void {
    if (ranges.length === 0) return;
    let changed = false;
    for (let k = 0; k < this.partitions; k++) {
      const slot = hashSlot(this.o.keys[k]!.tag ?? '');
      const address = ranges.find((r) => slot >= r.first && slot <= r.last)?.address;
      if (address === undefined || address === this.owner[k]) continue;
      changed = true;
      const old = this.ownerNode(k);
      if (old) {
        if (old.live.has(k) && old.redis.status === 'ready') {
          const keys = this.o.keys[k]!;
          old.redis.sunsubscribe(keys.lostReports, ...[...this.wanted[k]!].map((c) => keys.pubsub(c))).catch(() => {});
        }
        this.unlive(old, k);
        old.partitions.delete(k);
      } else this.o.trackers[k]!.pause();
      if (this.owner[k] !== undefined) {
        this.o.log.info('partition moved to another Redis node', {
          event: 'redis_partition_moved',
          partition: k,
          from: this.owner[k],
          to: address,
        });
        this.o.events.emit('partition_moved', { partition: k });
      }
      this.owner[k] = address;
      const node = this.node(address);
      node.partitions.add(k);
      if (node.redis.status === 'ready' && !node.down) void this.subscribePartition(node, k);
    }
    if (!changed) return;
    for (const [address, node] of this.nodes) {
      if (node.partitions.size > 0) {
        this.setProbe(node);
        continue;
      }
      this.nodes.delete(address);
      node.redis.disconnect();
    }
    this.o.onState();
  }

  private setProbe(node: NodeSub): void {
    const k = Math.min(...node.partitions);
    const channel = this.o.keys[k]!.probe(this.o.token);
    if (node.probe?.channel === channel) return;
    const before = node.probe;
    node.probe = { channel, outstanding: false };
    if (node.redis.status === 'ready' && node.live.has(k)) {
      if (before) node.redis.sunsubscribe(before.channel).catch(() => {});
      node.redis.ssubscribe(channel).catch(() => {});
    }
  }

  private node(address: string): NodeSub {
    const existing = this.nodes.get(address);
    if (existing) return existing;
    const colon = address.lastIndexOf(':');
    const redis = createRedisNodeClient(
      this.o.connection,
      { host: address.slice(0, colon).replace(/^\[|\]$/g, ''), port: Number(address.slice(colon + 1)) },
      { ...BROKER_CLIENT_OPTIONS, connectionName: 'cyclone-sse-subscriber' },
    );
    const node: NodeSub = { address, redis, partitions: new Set(), live: new Set(), probe: undefined, down: true };
    this.nodes.set(address, node);
    redis.on('smessageBuffer', (channel: Buffer, message: Buffer) => this.onMessage(node, channel, message));
    redis.on('ready', () => {
      if (node.down && this.nodes.get(address) === node)
        this.o.log.info('redis node connection ready', { event: 'redis_node_ready', node: address });
      node.down = false;
      if (node.probe) node.probe.outstanding = false;
      for (const k of node.partitions) void this.subscribePartition(node, k);
    });
    redis.on('close', () => {
      if (!node.down && !this.closed) {
        this.o.log.warn('redis node connection lost', { event: 'redis_connection_lost', role: 'subscriber', node: address });
        this.o.stats.resubscribes++;
      }
      node.down = true;
      for (const k of [...node.live]) this.unlive(node, k);
      this.o.onState();
      if (!this.closed) this.requestRefresh();
    });
    redis.on('error', () => {
      /* logged once per state change on 'close' */
    });
    // ioredis reports a `sunsubscribe` push (the end of a slot migration) as a bare 'moved' event.
    redis.on('moved', () => this.requestRefresh());
    redis.connect().catch(() => {});
    return node;
  }

  private onMessage(node: NodeSub, channel: Buffer, message: Buffer): void {
    // `<p>:{p<n>}:<rest>`: the tag names the partition.
    let i = this.prefixBytes + 2; // past `{p`
    let n = 0;
    for (; i < channel.length && channel[i] !== 0x7d; i++) n = n * 10 + channel[i]! - 0x30;
    const k = this.tagIndex.get(n);
    if (k === undefined || i >= channel.length) return;
    const keys = this.o.keys[k]!;
    // `}:ch:` — a message of a channel
    if (channel[i + 2] === 0x63 && channel[i + 3] === 0x68 && channel[i + 4] === 0x3a) this.o.trackers[k]!.onPubsub(channel, message);
    else if (node.probe !== undefined && channel.toString() === node.probe.channel) node.probe.outstanding = false;
    else if (channel.toString() === keys.lostReports) this.o.trackers[k]!.onLostReport(message);
  }

  /** One probe per node and interval; the previous one not echoed means the connection is deaf: drop it. */
  private probe(): void {
    if (this.closed) return;
    for (const node of this.nodes.values()) {
      const p = node.probe;
      if (!p || node.down || node.live.size === 0) continue;
      if (p.outstanding) {
        p.outstanding = false;
        this.o.stats.probeFailures++;
        this.o.events.emit('probe_failed');
        this.o.log.warn('pub/sub probe not echoed: re-establishing the subscription', { event: 'redis_probe_failed', node: node.address });
        node.redis.disconnect(true);
        continue;
      }
      p.outstanding = true;
      this.o.cmd.call('SPUBLISH', p.channel, '1').catch(() => {
        p.outstanding = false; // the command side is unreachable: its own events tell
      });
    }
  }
}

interface SlotOwner {
  first: number;
  last: number;
  address: string;
}

/** `CLUSTER SLOTS` → each range's primary as `host:port` (an empty host is the seed's). */
function parseSlots(reply: unknown, fallbackHost: string): SlotOwner[] {
  if (!Array.isArray(reply)) return [];
  const out: SlotOwner[] = [];
  for (const r of reply as unknown[][]) {
    const primary = r[2] as unknown[] | undefined;
    if (!primary) continue;
    const raw = primary[0];
    const host = (typeof raw === 'string' || Buffer.isBuffer(raw) ? raw.toString() : '') || fallbackHost;
    const address = host.includes(':') ? `[${host}]:${String(primary[1])}` : `${host}:${String(primary[1])}`;
    out.push({ first: Number(r[0]), last: Number(r[1]), address });
  }
  return out;
}
