import { randomUUID } from 'node:crypto';
import type { HistoryOptions, PublishResult } from './broker.js';
import type { PreparedPublish, PublishLimits } from './publish-prepare.js';
import { META_TTL_FACTOR, ttlSeconds, type RedisKeys } from './redis-keys.js';
import type { Attempt } from './redis-settle.js';

/** Seconds the internal record of a publish without a key lives (long enough to settle it). */
export const INTERNAL_RECORD_TTL = 60;

/** What differs between a standalone Redis's PUBLISH_LUA calls and a cluster partition's. */
export interface PublishScriptMode {
  /** Frame bytes all histories under one `RedisKeys` keep together (a partition keeps its share). */
  historyMaxBytes: number;
  /** --redis-wait-replicas: messages stay unreleased until RELEASE_LUA. */
  holdForRelease: boolean;
  /** Redis Cluster: SPUBLISH per channel, each message carrying the channel's previous seq. */
  sharded: boolean;
}

/**
 * Builds the arguments of PUBLISH_LUA calls (redis-scripts.ts): per publish (and partition) its
 * segment — the idempotency record, the channels' keys, the token and the body — and per call the
 * part every publish of the batch shares, computed from the options once.
 */
export class PublishArgs {
  /** ARGV 2..6 of PUBLISH_LUA: history size, ttl, meta ttl, bytes per channel, bytes in total. */
  private readonly bounds: number[];
  private readonly hold: 0 | 1;
  private readonly sharded: 0 | 1;
  private readonly keyedRecordTtl: number;

  constructor(options: HistoryOptions, limits: PublishLimits, mode: PublishScriptMode) {
    this.keyedRecordTtl = ttlSeconds(options.idempotencyTtlSeconds);
    this.bounds = [
      Math.max(1, options.historySize),
      ttlSeconds(options.historyTtlSeconds),
      ttlSeconds(options.historyTtlSeconds * META_TTL_FACTOR),
      limits.historyMaxBytesPerChannel,
      mode.historyMaxBytes,
    ];
    this.hold = mode.holdForRelease ? 1 : 0;
    this.sharded = mode.sharded ? 1 : 0;
  }

  /**
   * One attempt of `p` on `channels` (all of them, or those of one partition) under `keys`.
   * Every attempt carries an idempotency record — the client's key, or an internal `i:<token>`
   * kept INTERNAL_RECORD_TTL seconds — so a lost answer can be settled (redis-settle.ts).
   */
  attempt(keys: RedisKeys, p: PreparedPublish, channels: readonly string[]): Attempt {
    const token = randomUUID();
    const record = keys.idempotency(p.record ?? `i:${token}`);
    const keyList = [record];
    for (const channel of channels) keyList.push(keys.history(channel), keys.meta(channel));
    const argv = [p.record === undefined ? INTERNAL_RECORD_TTL : this.keyedRecordTtl, token, p.body, channels.length, ...channels];
    return { record, token, keys: keyList, argv, bytes: p.frameBytes * channels.length };
  }

  /** The arguments of one PUBLISH_LUA call running `attempts` in order, all under `keys`. */
  call(keys: RedisKeys, candidate: string, attempts: readonly Attempt[]): (string | number)[] {
    const args: (string | number)[] = keys.epochKeys; // a new array on every call
    args.push(keys.historyLru, keys.historyBytes, keys.historyTotal);
    for (const a of attempts) for (const k of a.keys) args.push(k);
    args.unshift(args.length);
    args.push(candidate, ...this.bounds, keys.namespace, this.hold, this.sharded, attempts.length);
    for (const a of attempts) for (const x of a.argv) args.push(x);
    return args;
  }
}

/**
 * A PUBLISH_LUA reply (two elements per publish) as `[status, ids]` pairs: 0 applied, 1 a
 * duplicate of an applied record, 2 fenced; throws when it does not have `count` publishes.
 */
export function publishReplies(reply: unknown, count: number): [number, string][] {
  if (!Array.isArray(reply) || reply.length !== 2 * count) throw new Error('unexpected reply to the publish script');
  const out: [number, string][] = [];
  for (let i = 0; i < reply.length; i += 2) out.push([Number(reply[i]), String(reply[i + 1])]);
  return out;
}

/**
 * `[status, ids]` pairs as results; throws when an attempt was fenced (its publish was given up
 * by a settle).
 */
export function publishResults(replies: [number, string][]): PublishResult[] {
  if (replies.some(([status]) => status === 2)) throw new Error('attempt fenced');
  return replies.map(([status, ids]) => ({ ids: ids === '' ? [] : ids.split(' '), duplicate: status === 1 }));
}
