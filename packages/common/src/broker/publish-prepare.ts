import { createHash } from 'node:crypto';
import { HubError } from '../errors.js';
import { assertDataSeparators, assertIdValue, assertPublishableEvent, encodeFrameBody } from '../frame.js';
import type { HistoryOptions, PublishInput } from './broker.js';

/**
 * Defaults of the publish and history bounds (docs/security.md, "Publishing"):
 * - 64 channels per message, the same as a subscriber may name (--max-channels-per-connection);
 * - 8 MiB of fan-out per request: a 1 MiB body to 8 channels, and a quarter of Redis's default
 *   hard `client-output-buffer-limit pubsub` (32 MiB) and equal to its soft limit (8 MiB over 60
 *   s), so one request can never make Redis drop an edge's subscriber connection;
 * - 8 MiB of history per channel: one maximal request fits into one channel's history;
 * - 256 MiB of history in total: comfortable next to the all-in-one's heap and a small Redis;
 * - 100 000 idempotency records in memory (about 30 MiB at 64 channels each).
 */
export const DEFAULT_PUBLISH_LIMITS = {
  historyMaxBytesPerChannel: 8 * 1024 * 1024,
  historyMaxBytes: 256 * 1024 * 1024,
  idempotencyMaxKeys: 100_000,
  maxChannelsPerPublish: 64,
  maxPublishFanoutBytes: 8 * 1024 * 1024,
} as const;

export type PublishLimits = { -readonly [K in keyof typeof DEFAULT_PUBLISH_LIMITS]: number };

export function publishLimits(o: HistoryOptions): PublishLimits {
  const d = DEFAULT_PUBLISH_LIMITS;
  return {
    historyMaxBytesPerChannel: o.historyMaxBytesPerChannel ?? d.historyMaxBytesPerChannel,
    historyMaxBytes: o.historyMaxBytes ?? d.historyMaxBytes,
    idempotencyMaxKeys: o.idempotencyMaxKeys ?? d.idempotencyMaxKeys,
    maxChannelsPerPublish: o.maxChannelsPerPublish ?? d.maxChannelsPerPublish,
    maxPublishFanoutBytes: o.maxPublishFanoutBytes ?? d.maxPublishFanoutBytes,
  };
}

/** The broker limits of a parsed configuration (for `new MemoryBroker` / `new RedisBroker`). */
export function brokerLimits(config: {
  historyMaxBytesPerChannel: number;
  historyMaxBytes: number;
  idempotencyMaxKeys: number;
  maxChannelsPerPublish: number;
  maxPublishFanoutBytes: number;
}): PublishLimits {
  return {
    historyMaxBytesPerChannel: config.historyMaxBytesPerChannel,
    historyMaxBytes: config.historyMaxBytes,
    idempotencyMaxKeys: config.idempotencyMaxKeys,
    maxChannelsPerPublish: config.maxChannelsPerPublish,
    maxPublishFanoutBytes: config.maxPublishFanoutBytes,
  };
}

/** `id: <epoch>-<seq>\n` at its longest (32-character epoch, 16-digit seq): counted per frame. */
export const ID_LINE_BYTES = 54;
/** Bookkeeping charged per history entry on top of its frame bytes (seq, time, predecessor). */
export const ENTRY_OVERHEAD_BYTES = 64;

/** One validated input: distinct channels, the encoded frame body and its idempotency record. */
export interface PreparedPublish {
  input: PublishInput;
  /** Distinct channels in order of first appearance. */
  channels: string[];
  /** Everything after the id line (`encodeFrameBody`). */
  body: string;
  /** Bytes of one frame of this input, id line counted at its longest. */
  frameBytes: number;
  /** Idempotency record name (scope, key and channel list hashed), when a key was given. */
  record?: string;
}

/**
 * Validates a whole publish call before anything of it is applied — every broker calls this
 * first. Refuses (4xx HubError): more channels than `maxChannelsPerPublish` as written, a
 * reserved or malformed event, data with a splitlines-only separator, a non-string key, and a
 * call whose Σ frame bytes × distinct channels exceeds `maxPublishFanoutBytes`.
 */
export function preparePublish(inputs: PublishInput[], limits: PublishLimits): PreparedPublish[] {
  let fanout = 0;
  const batch = inputs.length > 1;
  return inputs.map((input, i) => {
    const at = batch ? `[${i}] ` : '';
    if (input.channels.length > limits.maxChannelsPerPublish) {
      throw new HubError(
        'TOO_MANY_CHANNELS',
        `${at}names ${input.channels.length} channels; the limit is ${limits.maxChannelsPerPublish} (--max-channels-per-publish)`,
      );
    }
    const channels = [...new Set(input.channels)];
    if (channels.length === 0) throw new HubError('MISSING_CHANNEL', `${at}at least one channel is required`);
    if (input.event !== undefined) assertPublishableEvent(input.event);
    assertDataSeparators(input.data);
    const key = input.idempotencyKey as unknown;
    if (key !== undefined && typeof key !== 'string') throw new HubError('INVALID_ID', `${at}the idempotency key must be a string`);
    if (key !== undefined) assertIdValue(key, 'idempotency key');
    const body = encodeFrameBody(input.data, input.event);
    const frameBytes = ID_LINE_BYTES + Buffer.byteLength(body);
    fanout += frameBytes * channels.length;
    if (fanout > limits.maxPublishFanoutBytes) {
      throw new HubError(
        'FANOUT_TOO_LARGE',
        `the request would write more than ${limits.maxPublishFanoutBytes} bytes (frame bytes × channels over every message; --max-publish-fanout-bytes)`,
      );
    }
    const prepared: PreparedPublish = { input, channels, body, frameBytes };
    if (key !== undefined) prepared.record = idempotencyRecord(input.idempotencyScope ?? 'open', key, channels);
    return prepared;
  });
}

/**
 * The name of an idempotency record: a hash of the publisher scope, the key and the channel
 * list, so two tenants (or one tenant on two channel lists) never share a record, and a record
 * name has a fixed size whatever the key.
 */
export function idempotencyRecord(scope: string, key: string, channels: string[]): string {
  const h = createHash('sha256');
  h.update(scope).update('\0').update(key);
  for (const c of channels) h.update('\0').update(c);
  return h.digest('base64url');
}
