import type { BrokerMessage, HistoryPageLimits, HistoryResult, ResetReason } from './broker.js';
import type { Cursor } from './cursor.js';
import { unavailableOnError } from './broker-unavailable.js';
import type { RedisKeys } from './redis-keys.js';
import type { HistoryReply, ScriptCommands } from './redis-script-commands.js';

/**
 * One HISTORY_LUA read (redis-scripts.ts) on the keys of `keys` (a standalone Redis's, or one
 * cluster partition's): the top of the sequence, and with a cursor the page of `channels` after
 * it. `candidate` is the epoch a new epoch would get. A failure is the broker's 503.
 */
export function readHistory(
  scripts: ScriptCommands,
  keys: RedisKeys,
  candidate: string,
  channels: string[],
  cursor: Cursor | undefined,
  limits?: HistoryPageLimits,
): Promise<HistoryReply> {
  const list = keys.epochKeys; // a new array on every call
  for (const channel of channels) list.push(keys.history(channel), keys.meta(channel));
  return unavailableOnError(
    scripts.cycloneHistoryBuffer(
      list.length,
      ...list,
      candidate,
      cursor?.epoch ?? '',
      cursor?.seq ?? 0,
      pageLimit(limits?.maxMessages),
      pageLimit(limits?.maxBytes),
      ...channels,
    ),
  );
}

/** The top of the sequence in a HISTORY_LUA answer; `partition` on a Redis Cluster. */
export function historyPosition([epochBytes, top]: HistoryReply, partition?: number): Cursor {
  const epoch = epochBytes.toString();
  const seq = Number(top?.toString() ?? 0);
  return partition === undefined ? { epoch, seq } : { epoch, seq, partition };
}

/**
 * A HISTORY_LUA answer as a `HistoryResult`. `all`: the requested channels without repeats, in
 * the order sent; `cursor`: whether the cursor parsed (without one every channel resets as
 * malformed). On a Redis Cluster the messages carry their `partition` and the fields of a live
 * sharded message (`prev`, `epoch`), so both have one shape.
 */
export function decodeHistory(all: string[], cursor: boolean, reply: HistoryReply, partition?: number): HistoryResult {
  const [, , status, codes, page, more, split] = reply;
  const position = historyPosition(reply, partition);
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
  const messages: BrokerMessage[] =
    partition === undefined
      ? page.map(([i, id, frame, t]) => ({
          seq: parseInt(id.toString('latin1'), 10),
          channel: all[i - 1]!,
          frame,
          publishedAt: Number(t.toString()),
        }))
      : page.map(([i, id, frame, t]) => ({
          seq: parseInt(id.toString('latin1'), 10),
          channel: all[i - 1]!,
          frame,
          publishedAt: Number(t.toString()),
          partition,
          prev: 0,
          epoch: undefined,
        }));
  const result: HistoryResult = { position, messages, more: more === 1 };
  if (lost.length > 0) result.reset = { channels: lost, reason };
  if (split >= 0) result.split = split;
  return result;
}

/** A page limit as the history script takes it: 0 = none. */
function pageLimit(n: number | undefined): number {
  return n === undefined || !Number.isFinite(n) || n <= 0 ? 0 : Math.floor(n);
}
