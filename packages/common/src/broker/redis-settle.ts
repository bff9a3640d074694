import type { Redis } from 'ioredis';
import type { PublishResult } from './broker.js';
import type { ScriptCommands } from './redis-script-commands.js';

/**
 * One publish (of one partition) as a segment of a PUBLISH_LUA call: its idempotency record key,
 * its attempt token, its KEYS (record, then history and meta per channel) and its ARGV (record
 * ttl, token, body, channel count, channel names); `bytes` is its fan-out (frame bytes ×
 * channels), what it writes to history and pub/sub.
 */
export interface Attempt {
  record: string;
  token: string;
  keys: string[];
  argv: (string | number)[];
  bytes: number;
}

/**
 * After a publish whose answer was lost (command timeout, connection dropped, any error), learns
 * from Redis whether it was applied: FENCE_LUA on each attempt's record returns the ids when it
 * was, and otherwise fences the attempt so it can never apply later. Waits for the command
 * connection up to `deadlineMs`. Returns the results when every attempt was applied, undefined
 * when none was (a publish's attempts of one partition run in one script call, so never only some) or Redis stayed unreachable.
 */
export async function settlePublish(
  cmd: Redis | undefined,
  attempts: Attempt[],
  opts: { deadlineMs: number; fenceTtlSeconds: number },
): Promise<PublishResult[] | undefined> {
  if (!cmd) return undefined;
  const deadline = Date.now() + opts.deadlineMs;
  const scripts = cmd as unknown as ScriptCommands;
  while (Date.now() < deadline) {
    if (cmd.status !== 'ready') {
      await waitReady(cmd, deadline - Date.now());
      continue;
    }
    try {
      const answers = await Promise.all(attempts.map((a) => scripts.cycloneFence(a.record, a.token, opts.fenceTtlSeconds)));
      if (answers.length > 0 && answers.every((ids) => ids !== '')) {
        return answers.map((ids) => ({ ids: ids.split(' '), duplicate: false }));
      }
      return undefined;
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  return undefined;
}

function waitReady(cmd: Redis, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      cmd.off('ready', done);
      resolve();
    };
    const timer = setTimeout(done, Math.max(0, Math.min(ms, 250)));
    cmd.once('ready', done);
  });
}
