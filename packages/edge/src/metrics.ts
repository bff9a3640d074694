import { Counter, Gauge, Histogram, RESET_REASONS, type Registry } from '@cyclone-sse/common';
import { CLOSE_REASONS, REFUSAL_REASONS } from './reasons.js';
import { ERROR_SITES } from './internal-errors.js';

export type EdgeMetrics = ReturnType<typeof createEdgeMetrics>;

/** Edge series; every one exists at zero from start. No channel names in labels. */
export function createEdgeMetrics(registry: Registry) {
  const p = 'cyclone_sse_edge_';
  const closed = new Counter({
    name: `${p}connections_closed_total`,
    help: 'SSE connections closed, by reason',
    labelNames: ['reason'] as const,
    registers: [registry],
  });
  for (const reason of CLOSE_REASONS) closed.inc({ reason }, 0);
  const resets = new Counter({
    name: `${p}resets_total`,
    help: 'reset events sent, by reason',
    labelNames: ['reason'] as const,
    registers: [registry],
  });
  for (const reason of RESET_REASONS) resets.inc({ reason }, 0);
  const internalErrors = new Counter({
    name: `${p}internal_errors_total`,
    help: 'unexpected exceptions contained to one connection or request (or caught by the process safety net), by where',
    labelNames: ['where'] as const,
    registers: [registry],
  });
  for (const where of ERROR_SITES) internalErrors.inc({ where }, 0);
  const refused = new Counter({
    name: `${p}connections_refused_total`,
    help: 'streams refused (ended at once with a retry: hint), by reason',
    labelNames: ['reason'] as const,
    registers: [registry],
  });
  for (const reason of REFUSAL_REASONS) refused.inc({ reason }, 0);
  let queuedBytesOf = (): number => 0;
  return {
    /** Where `queued_bytes` is read at scrape time (the hub's total). */
    reportQueuedBytes(read: () => number): void {
      queuedBytesOf = read;
    },
    refused,
    connections: new Gauge({ name: `${p}connections`, help: 'open SSE connections (streams and long-polls)', registers: [registry] }),
    opened: new Counter({ name: `${p}connections_opened_total`, help: 'SSE connections accepted', registers: [registry] }),
    waiting: new Gauge({
      name: `${p}connections_waiting`,
      help: 'streams accepted while Redis is unreachable, waiting for it (heartbeats only)',
      registers: [registry],
    }),
    waited: new Counter({
      name: `${p}connections_waited_total`,
      help: 'streams that had to wait for Redis (accepted during an outage, or their start found it unreachable)',
      registers: [registry],
    }),
    closed,
    rejected: new Counter({ name: `${p}requests_rejected_total`, help: 'subscribe requests answered with 4xx', registers: [registry] }),
    messagesReceived: new Counter({
      name: `${p}messages_received_total`,
      help: 'messages received from the broker',
      registers: [registry],
    }),
    deliveries: new Counter({ name: `${p}deliveries_total`, help: 'message deliveries to local subscribers', registers: [registry] }),
    writes: new Counter({ name: `${p}writes_total`, help: 'socket writes (coalesced frames count once)', registers: [registry] }),
    bytesWritten: new Counter({ name: `${p}bytes_written_total`, help: 'bytes written to subscribers', registers: [registry] }),
    backpressure: new Counter({
      name: `${p}backpressure_total`,
      help: 'writes that hit socket backpressure (later bytes queued until writable)',
      registers: [registry],
    }),
    queuedBytes: new Gauge({
      name: `${p}queued_bytes`,
      help: 'bytes queued for the connections of this edge (write queues and what uWS buffers after a failed write), bounded by --max-queued-bytes-total',
      registers: [registry],
      collect() {
        this.set(queuedBytesOf());
      },
    }),
    shed: new Counter({
      name: `${p}connections_shed_total`,
      help: 'connections closed as slow because the edge held more than --max-queued-bytes-total for its clients (also counted in connections_closed_total{reason="slow"})',
      registers: [registry],
    }),
    channels: new Gauge({ name: `${p}channels`, help: 'channels with local subscribers', registers: [registry] }),
    coalescedWrites: new Counter({
      name: `${p}coalesced_writes_total`,
      help: 'writes that carried more than one frame',
      registers: [registry],
    }),
    heartbeats: new Counter({ name: `${p}heartbeats_total`, help: 'heartbeat comments written', registers: [registry] }),
    replays: new Counter({ name: `${p}resume_replays_total`, help: 'resumes that replayed history', registers: [registry] }),
    replayedMessages: new Counter({
      name: `${p}resume_replayed_messages_total`,
      help: 'messages replayed from history',
      registers: [registry],
    }),
    replayedBytes: new Counter({
      name: `${p}resume_replayed_bytes_total`,
      help: 'frame bytes replayed from history (resume and long-poll)',
      registers: [registry],
    }),
    resets,
    internalErrors,
    deliveryLag: new Histogram({
      name: `${p}delivery_lag_seconds`,
      help: 'publish time to edge dispatch',
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
  };
}
