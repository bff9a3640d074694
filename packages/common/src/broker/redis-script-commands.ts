import type { Cluster, Redis } from 'ioredis';
import { HubError } from '../errors.js';
import { FENCE_LUA, HISTORY_LUA, LOST_LUA, PUBLISH_LUA, RELEASE_LUA } from './redis-scripts.js';

/**
 * HISTORY_LUA's answer, read as buffers: epoch, top seq, status, one completeness code per
 * channel (0 complete, 1 trimmed, 2 expired, 3 lost), the page (channel index from 1, id, frame,
 * publish time), more (1 when cut by a limit), split (-1 when none).
 */
export type HistoryReply = [Buffer, Buffer | null, Buffer, number[], [number, Buffer, Buffer, Buffer][], number, number];

/** The scripts of redis-scripts.ts as commands of a connection (`defineBrokerScripts`). */
export interface ScriptCommands {
  cyclonePublish(...args: (string | number)[]): Promise<unknown>;
  cycloneFence(...args: (string | number)[]): Promise<string>;
  cycloneHistoryBuffer(...args: (string | number)[]): Promise<HistoryReply>;
  cycloneRelease(...args: (string | number)[]): Promise<number>;
  cycloneLost(...args: (string | number)[]): Promise<number>;
}

/** Defines the broker's scripts on a command connection (a standalone one or a cluster's). */
export function defineBrokerScripts(cmd: Redis | Cluster): void {
  cmd.defineCommand('cyclonePublish', { lua: PUBLISH_LUA });
  cmd.defineCommand('cycloneFence', { lua: FENCE_LUA, numberOfKeys: 1 });
  cmd.defineCommand('cycloneHistory', { lua: HISTORY_LUA });
  cmd.defineCommand('cycloneRelease', { lua: RELEASE_LUA });
  cmd.defineCommand('cycloneLost', { lua: LOST_LUA, numberOfKeys: 6 });
}

/** The scripts of a started broker's command connection; BROKER_UNAVAILABLE before `start` and after `close`. */
export function brokerScripts(cmd: Redis | Cluster | undefined, closed: boolean): ScriptCommands {
  if (!cmd || closed) throw new HubError('BROKER_UNAVAILABLE', 'redis broker is not started');
  return cmd as unknown as ScriptCommands;
}
