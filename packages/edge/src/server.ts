import {
  CorsPolicy,
  HubError,
  closeApp,
  closeListen,
  listen,
  retryField,
  route,
  uWS,
  type Broker,
  type Config,
  type Listening,
  type Logger,
  type Registry,
  type RequestInfo,
  type TemplatedApp,
} from '@cyclone-sse/common';
import { Hub } from './hub.js';
import { createEdgeMetrics, type EdgeMetrics } from './metrics.js';
import { createSubscribeHandler, type SubscribeOptions } from './routes/subscribe.js';

export interface EdgeDeps {
  config: Config;
  broker: Broker;
  registry: Registry;
  logger: Logger;
}

/** The edge's routes on a uWS app: SSE paths, /stats, CORS preflight. */
export class Edge {
  readonly hub: Hub;
  readonly metrics: EdgeMetrics;
  readonly cors: CorsPolicy;
  draining = false;

  constructor(private readonly deps: EdgeDeps) {
    const { config, registry, logger } = deps;
    this.metrics = createEdgeMetrics(registry);
    this.cors = new CorsPolicy(config.corsOrigins);
    this.hub = new Hub(
      { heartbeatMs: config.heartbeat * 1000, maxQueuedBytes: config.maxQueuedBytes, longPollTimeoutMs: config.longPollTimeout * 1000 },
      this.metrics,
      logger.child({ component: 'hub' }),
    );
    deps.broker.subscribe(this.hub);
  }

  register(app: TemplatedApp): void {
    const { config, logger } = this.deps;
    const log = logger.child({ component: 'edge' });
    const cors = (info: RequestInfo) => this.cors.headers(info.headers.origin ?? '');
    const options: SubscribeOptions = {
      retryMs: config.retry,
      maxChannelsPerConnection: config.maxChannelsPerConnection,
      maxChannelLength: config.maxChannelLength,
      maxQueryLength: config.maxQueryLength,
      longPollTimeoutMs: config.longPollTimeout * 1000,
      longPollMaxEvents: config.longPollMaxEvents,
    };
    const subscribe = createSubscribeHandler({
      hub: this.hub,
      broker: this.deps.broker,
      cors: this.cors,
      options,
      metrics: this.metrics,
      logger: log,
      accepting: () => !this.draining,
    });
    const opts = { logger: log, cors };
    for (const path of config.ssePaths) {
      app.get(path, route(subscribe, opts));
      app.options(path, route((reply, info) => reply.send(204, this.cors.preflight(info.headers.origin ?? '', 'GET, OPTIONS'), ''), opts));
      app.any(path, route((_reply, info) => {
        throw new HubError('METHOD_NOT_ALLOWED', `${info.method} is not allowed here; open the stream with GET`);
      }, opts));
    }
    app.get('/stats', route((reply, info) => reply.json(200, cors(info), this.hub.stats()), opts));
  }

  start(): void {
    this.hub.start();
  }

  /** Ends every open stream with a jittered retry hint spread over `seconds`, then resolves. */
  async drain(seconds: number): Promise<void> {
    this.draining = true;
    const conns = [...this.hub.connections];
    const spreadMs = Math.max(0, seconds * 1000);
    const retry = this.deps.config.retry;
    await new Promise<void>((resolve) => {
      if (conns.length === 0) return resolve();
      let left = conns.length;
      for (const conn of conns) {
        const at = spreadMs * Math.random();
        setTimeout(() => {
          this.hub.close(conn, 'shutdown', Buffer.from(retryField(retry + Math.random() * retry) + '\n'));
          if (--left === 0) resolve();
        }, at);
      }
    });
    this.hub.stop();
  }
}

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

export interface RunningServer {
  app: TemplatedApp;
  port: number;
  metricsPort: number | undefined;
  close(): void;
}

/** Listens the public app and (unless disabled) the internal app. */
export async function listenBoth(app: TemplatedApp, internal: TemplatedApp | undefined, config: Config): Promise<RunningServer> {
  let pub: Listening | undefined;
  let int: Listening | undefined;
  pub = await listen(app, config.listen, config.port);
  if (internal && config.metricsPort >= 0) {
    try {
      int = await listen(internal, config.metricsListen, config.metricsPort);
    } catch (err) {
      closeListen(pub);
      closeApp(app);
      throw new Error(`metrics port: ${(err as Error).message}`);
    }
  }
  return {
    app,
    port: pub.port,
    metricsPort: int?.port,
    close() {
      closeListen(pub);
      closeListen(int);
      pub = undefined;
      int = undefined;
      closeApp(app);
      if (internal) closeApp(internal);
    },
  };
}
