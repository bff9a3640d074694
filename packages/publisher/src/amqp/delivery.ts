import type { Message } from 'amqplib';
import {
  HubError,
  assertDataSeparators,
  assertIdValue,
  assertPublishableEvent,
  validateChannel,
  type PublishInput,
} from '@cyclone-sse/common';

export interface DeliveryLimits {
  /** Largest channel name in bytes (a routing key is at most 255 bytes anyway). */
  maxChannelLength: number;
  /** Largest body in bytes. */
  maxBody: number;
}

const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * Maps a delivery to a publish (channel = routing key, data = body as UTF-8 text verbatim,
 * event = `type`, idempotency key = `messageId`). Throws a HubError when the message is poison
 * (dead-lettered and counted by code): a reserved event name, a splitlines-only separator in the
 * body, or anything else the HTTP API refuses. One channel per delivery, so the fan-out of a
 * delivery is its frame; a prefetched batch over --max-publish-fanout-bytes is retried one by one.
 */
export function toPublishInput(msg: Message, limits: DeliveryLimits): PublishInput {
  const channel = validateChannel(msg.fields.routingKey, Math.min(limits.maxChannelLength, 255));
  if (msg.content.length > limits.maxBody) {
    throw new HubError('PAYLOAD_TOO_LARGE', `body is ${msg.content.length} bytes; the limit is ${limits.maxBody}`);
  }
  let data: string;
  try {
    data = UTF8.decode(msg.content);
  } catch {
    throw new HubError('INVALID_BODY', 'body is not valid UTF-8');
  }
  assertDataSeparators(data); // VT, FF, FS-RS, U+0085, U+2028, U+2029: poison
  const input: PublishInput = { channels: [channel], data };
  // AMQP shortstr properties: amqplib decodes them as strings (typed `any`).
  const { type, messageId } = msg.properties as { type?: string | null; messageId?: string | null };
  if (type !== undefined && type !== null && type !== '') {
    assertPublishableEvent(type); // reset, token-expired, cyclone-*: poison
    input.event = type;
  }
  if (messageId !== undefined && messageId !== null && messageId !== '') {
    assertIdValue(messageId, 'messageId');
    input.idempotencyKey = messageId;
  }
  return input;
}

/** The validation error inside a publish failure (the service wraps broker errors), if any. */
export function validationError(err: unknown): HubError | undefined {
  const inner = err instanceof HubError && err.code === 'BROKER_UNAVAILABLE' ? err.cause : err;
  return inner instanceof HubError && inner.statusCode < 500 ? inner : undefined;
}
