import type { Cluster } from 'ioredis';
import { HubError } from '../errors.js';
import type { PublishResult } from './broker.js';
import { parseId } from './cursor.js';
import type { RedisKeys } from './redis-keys.js';
import { WAIT_MARK_LUA } from './redis-scripts.js';

/**
 * --redis-wait-replicas (docs/delivery.md, I3 and the partitions of a Redis Cluster):
 * what RedisBroker and RedisClusterBroker share. A publish is stored unreleased (PUBLISH_LUA with
 * hold), a `WAIT` covers it, then RELEASE_LUA publishes it and moves `<p>:top`.
 */

/** The 503 of a WAIT that came back short of `n` replicas. */
export function replicationTimeout(n: number): HubError {
  return new HubError(
    'REPLICATION_TIMEOUT',
    `the message was not acknowledged by ${n} Redis replica(s) in time; retry with the same idempotency key (it is never applied twice)`,
  );
}

/**
 * The RELEASE_LUA calls (numkeys, keys, then ARGV) for the messages of `results` under `keys`,
 * one per epoch of their ids (a retry's duplicate answer may carry an older one).
 * `channels(i)` are the channels of `results[i]`, in the order of its ids.
 */
export function releaseCalls(
  keys: RedisKeys,
  results: readonly PublishResult[],
  channels: (i: number) => readonly string[],
  sharded: boolean,
): (string | number)[][] {
  const byEpoch = new Map<string, { keys: string[]; args: (string | number)[] }>();
  results.forEach((r, i) => {
    const names = channels(i);
    r.ids.forEach((id, k) => {
      const cursor = parseId(id);
      if (!cursor) return;
      const batch = byEpoch.get(cursor.epoch) ?? { keys: [], args: [] };
      batch.keys.push(keys.history(names[k]!));
      batch.args.push(cursor.seq, names[k]!);
      byEpoch.set(cursor.epoch, batch);
    });
  });
  return [...byEpoch].map(([epoch, batch]) => {
    const all = [...keys.epochKeys, ...batch.keys];
    return [all.length, ...all, epoch, keys.namespace, sharded ? '1' : '0', ...batch.args];
  });
}

/**
 * WAIT for `n` replicas of the primary that owns the slot of `keys` (a Redis Cluster partition)
 * in a way that covers the messages of `results` — applied by PUBLISH_LUA calls whose replies
 * came back before this is called. Answers how many replicas acknowledged; throws when it cannot
 * tell (a reply error, or the server now owning the slot may lack a message: a failover since).
 *
 * Why the WAIT covers the messages. Redis's WAIT waits for the replication offset of the calling
 * connection's last write. One pipeline carries a mark per epoch of the ids (WAIT_MARK_LUA: a
 * replicated write that changes nothing) and then the WAIT. ioredis Cluster sends a pipeline to
 * the one node serving its keys' slot, on that node's single connection (its pool keeps one
 * `Redis` per node and never reconnects it: a lost node connection is dropped and replaced), in
 * order, and Redis runs a connection's commands in order: the WAIT waits for the marks' offset.
 * A mark writes only on a server that holds the message (the epoch's own primary in its current
 * term, or a later one whose lineage kept it), and it runs after the message was applied, so its
 * offset is past the message's and a replica that acknowledged the mark has the message. This
 * holds whichever connection applied the message: on this node's connection (the usual case, the
 * script was routed by the same slot map), on a connection since replaced, or in another process
 * (a retry answered as a duplicate of what another publisher applied).
 */
export async function waitForPartitionReplicas(
  cmd: Cluster,
  keys: RedisKeys,
  results: readonly PublishResult[],
  n: number,
  timeoutMs: number,
): Promise<number> {
  const top = new Map<string, number>();
  for (const r of results)
    for (const id of r.ids) {
      const cursor = parseId(id);
      if (cursor && cursor.seq > (top.get(cursor.epoch) ?? 0)) top.set(cursor.epoch, cursor.seq);
    }
  if (top.size === 0) return n; // nothing was published
  const mark = keys.epochKeys;
  const pipeline = cmd.pipeline();
  // EVAL, not EVALSHA: a NOSCRIPT answer would be sent again outside the pipeline, after the WAIT.
  for (const [epoch, seq] of top) pipeline.eval(WAIT_MARK_LUA, mark.length, ...mark, epoch, seq);
  pipeline.call('WAIT', n, Math.max(1, timeoutMs));
  const replies = await pipeline.exec();
  if (!replies || replies.length !== top.size + 1) throw new Error('WAIT pipeline aborted');
  for (const [err, marked] of replies.slice(0, -1)) {
    if (err) throw err;
    if (Number(marked) !== 1) throw new Error("the partition's primary changed since the publish: it may not hold it");
  }
  const [err, acked] = replies[replies.length - 1]!;
  if (err) throw err;
  return Number(acked);
}
