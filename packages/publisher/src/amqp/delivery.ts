import type { Message } from 'amqplib';
import { HubError, assertEventName, assertIdValue, validateChannel, type PublishInput } from '@cyclone-sse/common';

export interface DeliveryLimits {
  /** Largest channel name in bytes (a routing key is at most 255 bytes anyway). */
  maxChannelLength: number;
  /** Largest body in bytes. */
  maxBody: number;
}

const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * Maps a delivery to a publish (channel = routing key, data = body as UTF-8 text verbatim,
 * event = `type`, idempotency key = `messageId`). Throws a HubError when the message is poison.
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
  const input: PublishInput = { channels: [channel], data };
  const { type, messageId } = msg.properties as { type?: unknown; messageId?: unknown };
  if (type !== undefined && type !== null && type !== '') {
    assertEventName(String(type));
    input.event = String(type);
  }
  if (messageId !== undefined && messageId !== null && messageId !== '') {
    assertIdValue(String(messageId), 'messageId');
    input.idempotencyKey = String(messageId);
  }
  return input;
}

/** The validation error inside a publish failure (the service wraps broker errors), if any. */
export function validationError(err: unknown): HubError | undefined {
  const inner = err instanceof HubError && err.code === 'BROKER_UNAVAILABLE' ? err.cause : err;
  return inner instanceof HubError && inner.statusCode < 500 ? inner : undefined;
}
