import { Counter, Gauge, type Registry } from 'prom-client';
import type { EventEmitter } from 'node:events';
import type { RedisBrokerEvents } from './redis-broker.js';

/**
 * The subscribing Redis broker's series, named as the edge's (the edge is the process that
 * subscribes): gap repairs, messages they delivered, gaps history could not cover, the connection
 * state and failed pub/sub probes. Fed by the broker's events.
 */
export function observeRedisBroker(events: EventEmitter<RedisBrokerEvents>, registry: Registry): void {
  const p = 'cyclone_sse_edge_';
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
}
