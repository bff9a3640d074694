import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import {
  closeApp,
  closeListen,
  listen,
  type Listening,
  RedisDirectory,
  BrokerDowntime,
  createBroker,
  redisConnectionConfig,
  usesRedis,
  registerDowntimeMetrics,
  isObservableBroker,
  StartupError,
  createInternalApp,
  createRegistry,
  assertNativeUws,
  registerNotFound,
  uWS,
  type Broker,
  type Config,
  type CorsPolicy,
  type Logger,
  type Registry,
  type TemplatedApp,
} from '@cyclone-sse/common';
import { Edge, listenInternal, listenPublic, type RunningServer } from './server.js';
import { GraphiteExporter } from './graphite.js';

export interface EdgeNode {
  port: number;
  metricsPort: number | undefined;
  /** HTTPS port with --use-ssl. */
  sslPort: number | undefined;
  broker: Broker;
  edge: Edge;
  registry: Registry;
  nodeId: string;
  /** Drains streams over `drainSeconds` (default 0), closes listeners and the broker. */
  stop(drainSeconds?: number): Promise<void>;
}

/** What an {@link ExtraRoutes} hook gets: the node's broker, metrics registry and CORS policy. */
export interface EdgeContext {
  config: Config;
  logger: Logger;
  broker: Broker;
  registry: Registry;
  cors: CorsPolicy;
}

/**
 * Routes another package adds to the edge's public apps (the all-in-one adds the publish API).
 * Called once per node; the function it returns registers the routes on each app (HTTP, and HTTPS
 * with --use-ssl), after the edge's routes and before the 404 fallback.
 */
export type ExtraRoutes = (ctx: EdgeContext) => (app: TemplatedApp) => void;

export interface EdgeNodeOptions {
  /** The broker to run on (tests); default {@link createBroker} from the configuration. */
  broker?: Broker;
  routes?: ExtraRoutes;
}

/**
 * An edge process: SSE routes on uWebSockets.js over a broker, plus `opts.routes` on the same
 * port (the all-in-one's publish API). On Redis it reports its channel counts for the
 * cluster-wide /stats.
 */
export async function startEdgeNode(config: Config, logger: Logger, opts: EdgeNodeOptions = {}): Promise<EdgeNode> {
  assertNativeUws();
  const nodeId = `${hostname()}-${randomBytes(3).toString('hex')}`;
  const broker = opts.broker ?? createBroker(config, logger);
  const registry = createRegistry();
  const edge = new Edge({ config, broker, registry, logger });
  if (isObservableBroker(broker)) broker.observe(registry);
  const directory = usesRedis(config)
    ? new RedisDirectory(redisConnectionConfig(config), config.redisPrefix, Math.max(5, config.clusterReportInterval * 3), {
        logger: logger.child({ component: 'cluster-directory' }),
        registry,
      })
    : undefined;

  // Plain HTTP, and with --use-ssl also HTTPS: the same routes on the same hub and broker (the
  // seed ran a second, disconnected broker for its TLS port).
  const apps = [uWS.App()];
  if (config.useSsl) {
    for (const f of [config.sslCert, config.sslKey])
      if (!existsSync(f)) throw new StartupError('CONFIG_INVALID', `--use-ssl: cannot read ${f}`);
    apps.push(uWS.SSLApp({ cert_file_name: config.sslCert, key_file_name: config.sslKey }));
  }
  const extra = opts.routes?.({ config, logger, broker, registry, cors: edge.cors });
  for (const a of apps) {
    edge.register(a, directory);
    extra?.(a);
    registerNotFound(a, edge.cors, logger);
  }
  const app = apps[0]!;
  // Time without Redis: metrics and the /readyz body (an edge on the memory broker has no Redis).
  const downtime = broker.kind.startsWith('redis') ? new BrokerDowntime(() => broker.isReady()) : undefined;
  if (downtime) registerDowntimeMetrics(registry, 'edge', downtime);
  // Ready = this process can hold streams (listening, not draining). Redis is not a condition once
  // started: a Redis outage must not empty the Service (a native EventSource refused by the load
  // balancer gives up for good); streams opened meanwhile wait for it (waiting-streams.ts). The
  // body says how Redis is. docs/kubernetes.md#probes-and-redis-outages
  let serving = false;
  const internal = createInternalApp(
    registry,
    () => {
      if (!serving) return { ready: false, reason: `starting: waiting for the ${broker.kind} broker` };
      const details = downtime?.readyFields();
      if (edge.draining) return { ready: false, reason: 'draining', details };
      const reason = details?.redis === 'down' ? 'redis unreachable: streams are held open until it is back' : 'ok';
      return { ready: true, reason, details };
    },
    logger,
  );
  edge.registerInternal(internal);

  // The internal port first: /livez answers while the broker makes its first connection.
  const internalListener = await listenInternal(internal, config);
  try {
    await broker.start();
  } catch (err) {
    internalListener.close();
    throw err;
  }
  downtime?.start();
  let reporter: NodeJS.Timeout | undefined;
  if (directory) {
    await directory.connect().catch(() => undefined);
    const report = () => directory.report(nodeId, edge.hub.stats()).catch(() => undefined);
    await report();
    reporter = setInterval(() => void report(), config.clusterReportInterval * 1000); // report() catches
    reporter.unref();
  }
  edge.start();
  let server: RunningServer;
  let tls: Listening | undefined;
  try {
    server = await listenPublic(app, internalListener, config);
    if (apps[1]) {
      try {
        tls = await listen(apps[1], config.sslListen, config.sslPort);
      } catch (err) {
        server.close();
        throw err;
      }
    }
  } catch (err) {
    internalListener.close();
    downtime?.stop();
    if (reporter) clearInterval(reporter);
    await directory?.close();
    await broker.close();
    throw err;
  }
  const { exportHost: host, exportPort: port, exportInterval: intervalSeconds, exportPath: path } = config;
  const exporter =
    config.export === 'graphite'
      ? new GraphiteExporter({ host, port, intervalSeconds, path }, () => edge.hub.stats(), logger.child({ component: 'graphite' }))
      : undefined;
  exporter?.start();
  serving = true;
  let stopped = false;
  return {
    port: server.port,
    metricsPort: server.metricsPort,
    sslPort: tls?.port,
    broker,
    edge,
    registry,
    nodeId,
    async stop(drainSeconds = 0) {
      if (stopped) return;
      stopped = true;
      exporter?.stop();
      edge.draining = true; // /readyz fails from here on
      server.closeListen();
      closeListen(tls);
      await edge.drain(drainSeconds);
      server.close();
      if (apps[1]) closeApp(apps[1]);
      if (reporter) clearInterval(reporter);
      await directory?.remove(nodeId).catch(() => undefined);
      await directory?.close();
      downtime?.stop();
      await broker.close();
    },
  };
}
