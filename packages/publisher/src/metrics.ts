import { Counter, Histogram, type Registry } from '@cyclone-sse/common';

export type PublisherMetrics = ReturnType<typeof createPublisherMetrics>;

export const SOURCES = ['http', 'amqp', 'redis'] as const;
export const OUTCOMES = ['ok', 'duplicate', 'rejected', 'unavailable', 'error'] as const;

export function createPublisherMetrics(registry: Registry) {
  const p = 'cyclone_sse_publisher_';
  const publishes = new Counter({ name: `${p}publishes_total`, help: 'messages published, by source and outcome', labelNames: ['source', 'outcome'] as const, registers: [registry] });
  for (const source of SOURCES) for (const outcome of OUTCOMES) publishes.inc({ source, outcome }, 0);
  return {
    publishes,
    duration: new Histogram({
      name: `${p}publish_duration_seconds`,
      help: 'time to sequence a publish request in the broker',
      labelNames: ['source'] as const,
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers: [registry],
    }),
  };
}
