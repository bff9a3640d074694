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
 * A registry with prom-client's default metrics under their standard names (`process_*`,
 * `nodejs_*`, so stock Node.js dashboards and alerts work) and `cyclone_sse_build_info` = 1.
 * Own metrics: cyclone_sse_<component>_<name>_<unit>.
 */
export function createRegistry(): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const info = new Gauge({
    name: 'cyclone_sse_build_info',
    help: 'Always 1; labels: cyclone-sse version, Node.js version, uWebSockets.js build (npm package@version)',
    labelNames: ['version', 'node', 'uws'] as const,
    registers: [registry],
  });
  info.set({ version: CYCLONE_SSE_VERSION, node: process.version, uws: uwsLabel() }, 1);
  return registry;
}
