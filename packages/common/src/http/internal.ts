import { HubError } from '../errors.js';
import type { Registry } from 'prom-client';
import type { Logger } from '../log/logger.js';
import type { CorsPolicy } from './cors.js';
import { route } from './respond.js';
import { uWS, type TemplatedApp } from './uws.js';

/** Catch-all JSON 404, registered last. */
export function registerNotFound(app: TemplatedApp, cors: CorsPolicy, logger: Logger): void {
  app.any(
    '/*',
    route((_reply, info) => {
      throw new HubError('NOT_FOUND', `no route for ${info.method} ${info.url}`);
    }, { logger, cors: (info) => cors.headers(info.headers.origin ?? '') }),
  );
}

/** The internal port: /metrics, /livez, /readyz. */
export function createInternalApp(registry: Registry, ready: () => { ready: boolean; reason: string }): TemplatedApp {
  const app = uWS.App();
  app.get('/metrics', (res) => {
    let aborted = false;
    res.onAborted(() => (aborted = true));
    registry.metrics().then(
      (text) => {
        if (aborted) return;
        res.cork(() => res.writeStatus('200 OK').writeHeader('Content-Type', registry.contentType).end(text));
      },
      (err: Error) => {
        if (aborted) return;
        res.cork(() => res.writeStatus('500 Internal Server Error').end(err.message));
      },
    );
  });
  app.get('/livez', (res) => {
    res.writeStatus('200 OK').writeHeader('Content-Type', 'application/json').end('{"status":"ok"}');
  });
  app.get('/readyz', (res) => {
    const r = ready();
    res
      .writeStatus(r.ready ? '200 OK' : '503 Service Unavailable')
      .writeHeader('Content-Type', 'application/json')
      .end(JSON.stringify({ status: r.ready ? 'ready' : 'not_ready', reason: r.reason }));
  });
  app.any('/*', (res) => {
    res.writeStatus('404 Not Found').writeHeader('Content-Type', 'application/json').end('{"statusCode":404,"code":"NOT_FOUND","error":"Not Found","message":"internal port serves /metrics, /livez, /readyz"}');
  });
  return app;
}

