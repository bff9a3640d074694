import { Counter, type Registry } from '../metrics/registry.js';
import { FRAMING_REASONS } from './framing.js';

/**
 * Malformed requests seen by the shared route wrapper (process-wide: the wrapper has no registry
 * of its own; every process registers this counter on its registry via `registerHttpMetrics`).
 * Reasons: the framing faults (refused with 400 before any route ran) and `malformed_cookie`
 * (a token cookie that is not valid percent-encoding: ignored, or 401 where a token is needed).
 */
const NAME = 'cyclone_sse_http_malformed_requests_total';

export const malformedRequests = new Counter({
  name: NAME,
  help: 'malformed requests: framing faults refused with 400 before any route ran, malformed token cookies',
  labelNames: ['reason'] as const,
  registers: [],
});
for (const reason of [...FRAMING_REASONS, 'malformed_cookie']) malformedRequests.inc({ reason }, 0);

export function registerHttpMetrics(registry: Registry): void {
  if (!registry.getSingleMetric(NAME)) registry.registerMetric(malformedRequests);
}
