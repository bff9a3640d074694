import { Counter, HubError, Histogram, type ErrorCode, type Registry } from '@cyclone-sse/common';

export type PublisherMetrics = ReturnType<typeof createPublisherMetrics>;

export const SOURCES = ['http', 'amqp', 'redis'] as const;
export const OUTCOMES = ['ok', 'duplicate', 'rejected', 'unavailable', 'error'] as const;

/** The limit a refused publish hit, by error code: the `limit` label of refusals_total. */
const REFUSAL_LIMITS: Partial<Record<ErrorCode, string>> = {
  TOO_MANY_CHANNELS: 'channels',
  FANOUT_TOO_LARGE: 'fanout_bytes',
  RESERVED_EVENT: 'reserved_event',
  INVALID_DATA: 'separator',
  INVALID_ID: 'idempotency_key',
  PAYLOAD_TOO_LARGE: 'body_bytes',
};
export const REFUSAL_LABELS = [...new Set(Object.values(REFUSAL_LIMITS))];

/** Counts a refusal by the limit it hit (other errors are not counted here). */
export function countRefusal(metrics: PublisherMetrics, err: unknown): void {
  const limit = err instanceof HubError ? REFUSAL_LIMITS[err.code] : undefined;
  if (limit !== undefined) metrics.refusals.inc({ limit });
}

export function createPublisherMetrics(registry: Registry) {
  const p = 'cyclone_sse_publisher_';
  const publishes = new Counter({
    name: `${p}publishes_total`,
    help: 'messages published, by source and outcome',
    labelNames: ['source', 'outcome'] as const,
    registers: [registry],
  });
  for (const source of SOURCES) for (const outcome of OUTCOMES) publishes.inc({ source, outcome }, 0);
  const refusals = new Counter({
    name: `${p}refusals_total`,
    help: 'publishes refused by a bound (channels, fanout_bytes, reserved_event, separator, idempotency_key, body_bytes)',
    labelNames: ['limit'] as const,
    registers: [registry],
  });
  for (const limit of REFUSAL_LABELS) refusals.inc({ limit }, 0);
  return {
    publishes,
    refusals,
    duration: new Histogram({
      name: `${p}publish_duration_seconds`,
      help: 'time to sequence a publish request in the broker',
      labelNames: ['source'] as const,
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers: [registry],
    }),
  };
}
