import { readFileSync } from 'node:fs';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { uwsBuild } from '../http/uws-loader.js';

export { Counter, Gauge, Histogram, Registry };

/** The cyclone-sse release (the version of @cyclone-sse/common, which every component ships). */
export const CYCLONE_SSE_VERSION: string = (
  JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
).version;

/** The `uws` label of cyclone_sse_build_info: `<npm package>@<version>` of the binary in use, or `none`. */
export function uwsLabel(): string {
  const b = uwsBuild();
  return b ? `${b.package}@${b.version}` : 'none';
}

/**
 * How often `nodejs_eventloop_lag_*` samples the loop (ms). prom-client's default, 10 ms, is a
 * timer that wakes an idle process 100 times a second: measured 6 ms of CPU per second per idle
 * process on the reference VM (0.6 ms without it), paid by every edge holding idle streams. 100 ms
 * still catches every stall long enough to matter for a stream (heartbeats are seconds apart).
 */
export const EVENT_LOOP_SAMPLE_MS = 100;

/**
 * A registry with prom-client's default metrics under their standard names (`process_*`,
 * `nodejs_*`, so stock Node.js dashboards and alerts work) and `cyclone_sse_build_info` = 1.
 * Own metrics: cyclone_sse_<component>_<name>_<unit>.
 */
export function createRegistry(): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS });
  const info = new Gauge({
    name: 'cyclone_sse_build_info',
    help: 'Always 1; labels: cyclone-sse version, Node.js version, uWebSockets.js build (npm package@version)',
    labelNames: ['version', 'node', 'uws'] as const,
    registers: [registry],
  });
  info.set({ version: CYCLONE_SSE_VERSION, node: process.version, uws: uwsLabel() }, 1);
  return registry;
}
