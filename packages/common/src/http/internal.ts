import winston from 'winston';
import { HubError } from '../errors.js';
import type { Registry } from 'prom-client';
import type { Logger } from '../log/logger.js';
import type { CorsPolicy, HeaderList } from './cors.js';
import { registerHttpMetrics } from './http-metrics.js';
import { route } from './respond.js';
import { uWS, type TemplatedApp } from './uws.js';

/** Catch-all JSON 404, registered last. */
export function registerNotFound(app: TemplatedApp, cors: CorsPolicy, logger: Logger): void {
  app.any(
    '/*',
    route(
      (_reply, info) => {
        throw new HubError('NOT_FOUND', `no route for ${info.method} ${info.url}`);
      },
      { logger, cors: (info) => cors.headers(info.headers.origin ?? '') },
    ),
  );
}

const NONE: HeaderList = [];

/**
 * The internal port: /metrics, /livez, /readyz (an edge adds /stats). Same route wrapper as the
 * public port: framing checks, HEAD without a body, JSON errors.
 */
/**
 * What `/readyz` answers: 200 when `ready`, else 503; the body is
 * `{"status":"ready"|"not_ready","reason":…}` followed by `details` (e.g. the Redis state).
 */
export interface Readiness {
  ready: boolean;
  reason: string;
  details?: Record<string, string | number | boolean>;
}

export function createInternalApp(registry: Registry, ready: () => Readiness, logger?: Logger): TemplatedApp {
  registerHttpMetrics(registry);
  const app = uWS.App();
  const opts = { logger: (logger ?? silentLogger()).child({ component: 'internal' }), cors: () => NONE };
  app.get(
    '/metrics',
    route(async (reply) => {
      const text = await registry.metrics();
      reply.send(200, NONE, text, registry.contentType);
    }, opts),
  );
  app.get(
    '/livez',
    route((reply) => reply.json(200, NONE, { status: 'ok' }), opts),
  );
  app.get(
    '/readyz',
    route((reply) => {
      const r = ready();
      reply.json(r.ready ? 200 : 503, NONE, { status: r.ready ? 'ready' : 'not_ready', reason: r.reason, ...r.details });
    }, opts),
  );
  app.any(
    '/*',
    route((_reply, info) => {
      throw new HubError(
        'NOT_FOUND',
        `no route for ${info.method} ${info.url}; the internal port serves /metrics, /livez, /readyz (and /stats on an edge)`,
      );
    }, opts),
  );
  return app;
}

function silentLogger(): Logger {
  return winston.createLogger({ silent: true });
}
