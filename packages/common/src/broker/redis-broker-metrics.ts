import { Counter, Gauge, type Registry } from 'prom-client';
import type { EventEmitter } from 'node:events';
import type { RedisBrokerEvents } from './redis-broker-events.js';

/**
 * The Redis broker's series, fed by its events: epoch changes by cause, primary changes seen and
 * WAIT timeouts for every component; for the subscribing side (the edge) also gap repairs,
 * messages they delivered, gaps history could not cover, the connection state and failed pub/sub
 * probes.
 */
export function observeRedisBroker(
  events: EventEmitter<RedisBrokerEvents>,
  registry: Registry,
  component: 'edge' | 'publisher' | 'all' = 'edge',
): void {
  const p = `cyclone_sse_${component}_`;
  const epochs = new Counter({
    name: `${p}redis_epoch_changes_total`,
    help: 'new epochs seen, by cause: promotion (a new primary, history kept) or data_lost',
    labelNames: ['cause'],
    registers: [registry],
  });
  for (const cause of ['promotion', 'data_lost'] as const) epochs.labels(cause).inc(0);
  events.on('epoch_changed', (e) => epochs.labels(e.cause).inc());
  const failovers = new Counter({
    name: `${p}redis_primary_changes_total`,
    help: 'times the command connection reached a different Redis server than before (failover, restart)',
    registers: [registry],
  });
  events.on('primary_changed', () => failovers.inc());
  const waits = new Counter({
    name: `${p}redis_wait_timeouts_total`,
    help: 'publishes whose WAIT for --redis-wait-replicas timed out (503 REPLICATION_TIMEOUT)',
    registers: [registry],
  });
  events.on('wait_timeout', () => waits.inc());
  if (component === 'publisher') return; // the rest is the subscribing side's
  const repairs = new Counter({ name: `${p}gap_repairs_total`, help: 'live gaps repaired from history', registers: [registry] });
  const repaired = new Counter({
    name: `${p}gap_repaired_messages_total`,
    help: 'messages delivered by gap repairs',
    registers: [registry],
  });
  const lost = new Counter({ name: `${p}gap_lost_total`, help: 'live gaps history could not cover (reset sent)', registers: [registry] });
  const state = new Gauge({ name: `${p}redis_connected`, help: '1 while connected and subscribed to Redis', registers: [registry] });
  events.on('gap_repaired', (e) => {
    repairs.inc();
    repaired.inc(e.messages);
  });
  events.on('lost', () => lost.inc());
  events.on('state', (e) => state.set(e.ready ? 1 : 0));
  const probes = new Counter({
    name: `${p}redis_probe_failures_total`,
    help: 'pub/sub probes not echoed (subscription re-established)',
    registers: [registry],
  });
  events.on('probe_failed', () => probes.inc());
  const moves = new Counter({
    name: `${p}redis_partition_moves_total`,
    help: 'Redis Cluster partitions whose slot moved to another node (migration, failover): re-subscribed there and repaired from history',
    registers: [registry],
  });
  events.on('partition_moved', () => moves.inc());
}
