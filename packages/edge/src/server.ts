import {
  StartupError,
  ChannelPatterns,
  TokenVerifier,
  ClientIp,
  CorsPolicy,
  closeApp,
  closeListen,
  listen,
  isPartitionedBroker,
  methodNotAllowed,
  route,
  type Broker,
  type Config,
  type Listening,
  type Logger,
  type RedisDirectory,
  type Registry,
  type RequestInfo,
  type TemplatedApp,
} from '@cyclone-sse/common';
import { Hub } from './hub.js';
import { createEdgeMetrics, type EdgeMetrics } from './metrics.js';
import { registerStatic } from './routes/static.js';
import { StatsRoutes } from './routes/stats.js';
import { StreamStart } from './stream-start.js';
import { createSubscribeHandler, type SubscribeOptions, type SubscriberAuth } from './routes/subscribe.js';
import { RetryHint } from './retry-hint.js';

export interface EdgeDeps {
  config: Config;
  broker: Broker;
  registry: Registry;
  logger: Logger;
}

/** The edge's routes on a uWS app: SSE paths, /stats, CORS preflight, static files. */
export class Edge {
  readonly hub: Hub;
  readonly metrics: EdgeMetrics;
  readonly cors: CorsPolicy;
  draining = false;
  /** How streams start: priming, resume, or waiting while Redis is unreachable. */
  readonly streams: StreamStart;
  /** The `retry:` hints of every stream (--retry, --retry-jitter). */
  readonly retry: RetryHint;
  private stats: StatsRoutes | undefined;

  constructor(private readonly deps: EdgeDeps) {
    const { config, registry, logger } = deps;
    this.metrics = createEdgeMetrics(registry);
    this.cors = new CorsPolicy(config.corsOrigins);
    this.retry = new RetryHint(config.retry, config.retryJitter);
    this.hub = new Hub(
      {
        retry: this.retry,
        heartbeatMs: config.heartbeat * 1000,
        maxQueuedBytes: config.maxQueuedBytes,
        maxQueuedBytesTotal: config.maxQueuedBytesTotal,
        longPollTimeoutMs: config.longPollTimeout * 1000,
        coalesceMaxDelayMs: config.coalesceMaxDelay,
      },
      this.metrics,
      logger.child({ component: 'hub' }),
    );
    deps.broker.subscribe(this.hub);
    if (isPartitionedBroker(deps.broker)) this.hub.usePartitions(deps.broker);
    this.streams = new StreamStart({
      hub: this.hub,
      broker: deps.broker,
      metrics: this.metrics,
      logger: logger.child({ component: 'edge' }),
      options: {
        retry: this.retry,
        maxQueuedBytes: config.maxQueuedBytes,
        maxReplayBytes: config.maxReplayBytes,
        longPollMaxEvents: config.longPollMaxEvents,
      },
    });
  }

  register(app: TemplatedApp, directory?: RedisDirectory): void {
    const { config, logger } = this.deps;
    const log = logger.child({ component: 'edge' });
    const cors = (info: RequestInfo) => this.cors.headers(info.headers.origin ?? '');
    const options: SubscribeOptions = {
      retry: this.retry,
      tokenCookie: config.tokenCookie,
      maxConnections: config.maxConnections,
      maxConnectionsPerIp: config.maxConnectionsPerIp,
      maxChannelsPerConnection: config.maxChannelsPerConnection,
      maxChannelLength: config.maxChannelLength,
      maxQueryLength: config.maxQueryLength,
      longPollTimeoutMs: config.longPollTimeout * 1000,
      longPollMaxEvents: config.longPollMaxEvents,
      maxQueuedBytes: config.maxQueuedBytes,
      maxReplayBytes: config.maxReplayBytes,
      maxStreamMs: config.maxStreamSeconds * 1000,
    };
    const auth: SubscriberAuth = {
      mode: config.subscriberAuth as SubscriberAuth['mode'],
      privateChannels: new ChannelPatterns(config.privateChannels),
      verifier: config.subscriberJwtKey
        ? new TokenVerifier(
            {
              key: config.subscriberJwtKey,
              algorithms: config.jwtAlgorithms,
              audience: config.jwtAudience,
              issuer: config.jwtIssuer,
              allowWithoutExp: config.allowTokensWithoutExp,
            },
            '--subscriber-jwt-key',
          )
        : undefined,
      expiryMarginMs: config.tokenExpiryMargin * 1000,
    };
    const subscribe = createSubscribeHandler({
      hub: this.hub,
      start: this.streams,
      cors: this.cors,
      options,
      metrics: this.metrics,
      logger: log,
      accepting: () => !this.draining,
      clientIp: new ClientIp(config.trustedProxies),
      auth,
    });
    const opts = { logger: log, cors };
    registerStatic(app, { demo: config.demo, logger: log });
    for (const path of config.ssePaths) {
      app.get(path, route(subscribe, opts));
      app.options(
        path,
        route((reply, info) => reply.send(204, this.cors.preflight(info.headers.origin ?? '', 'GET, OPTIONS'), ''), opts),
      );
      app.any(path, route(methodNotAllowed('GET, OPTIONS', 'open the stream with GET'), opts));
    }
    this.stats ??= new StatsRoutes(
      this.hub,
      directory,
      auth,
      { pageSize: config.statsPageSize, tokenCookie: config.tokenCookie },
      this.deps.registry,
      log,
    );
    if (config.stats === 'public') this.stats.registerPublic(app, cors);
  }

  /** Routes of the internal (metrics) port: /stats unless `--stats off`. */
  registerInternal(app: TemplatedApp): void {
    if (this.deps.config.stats !== 'off' && this.stats) this.stats.registerInternal(app);
  }

  start(): void {
    this.hub.start();
  }

  /** Ends every open stream with a jittered retry hint (`RetryHint.drainField`) spread over `seconds`, then resolves. */
  async drain(seconds: number): Promise<void> {
    this.draining = true;
    const conns = [...this.hub.connections];
    const spreadMs = Math.max(0, seconds * 1000);
    await new Promise<void>((resolve) => {
      if (conns.length === 0) return resolve();
      let left = conns.length;
      for (const conn of conns) {
        const at = spreadMs * Math.random();
        setTimeout(() => {
          conn.close('shutdown', Buffer.from(this.retry.drainField() + '\n'));
          if (--left === 0) resolve();
        }, at);
      }
    });
    this.streams.stop();
    this.hub.stop();
  }
}

export interface RunningServer {
  app: TemplatedApp;
  port: number;
  metricsPort: number | undefined;
  /** Stops accepting connections (open streams stay). */
  closeListen(): void;
  close(): void;
}

/** The internal port's listener: it listens before the broker starts and closes with the server. */
export interface InternalListener {
  readonly port: number | undefined;
  close(): void;
}

/**
 * Listens the internal app (unless `--metrics-port -1`). First thing a node does, before its
 * broker connects: /livez answers from the start, so liveness never depends on Redis.
 */
export async function listenInternal(internal: TemplatedApp, config: Config): Promise<InternalListener> {
  let int: Listening | undefined;
  if (config.metricsPort >= 0) {
    try {
      int = await listen(internal, config.metricsListen, config.metricsPort);
    } catch (err) {
      closeApp(internal);
      throw new StartupError('LISTEN_FAILED', `metrics port: ${(err as Error).message}`, { cause: err });
    }
  }
  return {
    port: int?.port,
    close() {
      closeListen(int);
      int = undefined;
      closeApp(internal);
    },
  };
}

/** Listens the public app; closing the server also closes the internal listener. */
export async function listenPublic(app: TemplatedApp, internal: InternalListener, config: Config): Promise<RunningServer> {
  let pub: Listening | undefined = await listen(app, config.listen, config.port);
  return {
    app,
    port: pub.port,
    metricsPort: internal.port,
    closeListen() {
      closeListen(pub);
      pub = undefined;
    },
    close() {
      closeListen(pub);
      pub = undefined;
      closeApp(app);
      internal.close();
    },
  };
}
