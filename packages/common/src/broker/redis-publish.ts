import { randomUUID } from 'node:crypto';
import type { ChainableCommander, Cluster, Redis } from 'ioredis';
import type { HistoryOptions, PublishResult } from './broker.js';
import type { PreparedPublish, PublishLimits } from './publish-prepare.js';
import { META_TTL_FACTOR, ttlSeconds, type RedisKeys } from './redis-keys.js';
import type { ScriptCommands } from './redis-script-commands.js';
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
 * Builds the arguments of PUBLISH_LUA calls (redis-scripts.ts), one per input (and partition):
 * what comes from the options is computed once, per call only the keys, the token and the body.
 */
export class PublishArgs {
  private readonly historySize: number;
  private readonly historyTtl: number;
  private readonly metaTtl: number;
  private readonly keyedRecordTtl: number;
  private readonly historyMaxBytesPerChannel: number;
  private readonly historyMaxBytes: number;
  private readonly hold: 0 | 1;
  private readonly sharded: 0 | 1;

  constructor(options: HistoryOptions, limits: PublishLimits, mode: PublishScriptMode) {
    this.historySize = Math.max(1, options.historySize);
    this.historyTtl = ttlSeconds(options.historyTtlSeconds);
    this.metaTtl = ttlSeconds(options.historyTtlSeconds * META_TTL_FACTOR);
    this.keyedRecordTtl = ttlSeconds(options.idempotencyTtlSeconds);
    this.historyMaxBytesPerChannel = limits.historyMaxBytesPerChannel;
    this.historyMaxBytes = mode.historyMaxBytes;
    this.hold = mode.holdForRelease ? 1 : 0;
    this.sharded = mode.sharded ? 1 : 0;
  }

  /**
   * One attempt of `p` on `channels` (all of them, or those of one partition) under `keys`.
   * Every attempt carries an idempotency record — the client's key, or an internal `i:<token>`
   * kept INTERNAL_RECORD_TTL seconds — so a lost answer can be settled (redis-settle.ts).
   */
  attempt(keys: RedisKeys, p: PreparedPublish, channels: readonly string[], candidate: string): Attempt {
    const token = randomUUID();
    const record = keys.idempotency(p.record ?? `i:${token}`);
    const list = keys.epochKeys; // a new array on every call
    list.push(record, keys.historyLru, keys.historyBytes, keys.historyTotal);
    for (const channel of channels) list.push(keys.history(channel), keys.meta(channel));
    const args = [
      list.length,
      ...list,
      candidate,
      this.historySize,
      this.historyTtl,
      this.metaTtl,
      p.record === undefined ? INTERNAL_RECORD_TTL : this.keyedRecordTtl,
      p.body,
      this.historyMaxBytesPerChannel,
      this.historyMaxBytes,
      keys.namespace,
      token,
      this.hold,
      this.sharded,
      ...channels,
    ];
    return { record, token, args };
  }
}

/** Queues one PUBLISH_LUA per attempt in one MULTI/EXEC (applied entirely or not at all); send it with `exec()`. */
export function publishTransaction(cmd: Redis | Cluster, attempts: readonly Attempt[]): ChainableCommander {
  const multi = cmd.multi();
  // Queued in the transaction (the typing says Promise; inside multi() it is the pipeline):
  // the replies come from exec().
  for (const a of attempts) void (multi as unknown as ScriptCommands).cyclonePublish(...a.args);
  return multi;
}

/** The PUBLISH_LUA replies of an `exec()`; throws when the transaction was aborted or a call failed. */
export function transactionReplies(exec: [Error | null, unknown][] | null): [number, string][] {
  if (!exec) throw new Error('transaction aborted');
  return exec.map(([err, reply]) => {
    if (err) throw err;
    return reply as [number, string];
  });
}

/**
 * PUBLISH_LUA replies (`[status, ids]`: 0 applied, 1 a duplicate of an applied record, 2 fenced)
 * as results; throws when an attempt was fenced (its publish was given up by a settle).
 */
export function publishResults(replies: [number, string][]): PublishResult[] {
  if (replies.some(([status]) => status === 2)) throw new Error('attempt fenced');
  return replies.map(([status, ids]) => ({ ids: ids === '' ? [] : ids.split(' '), duplicate: status === 1 }));
}
