import { Counter, Gauge, type Registry } from 'prom-client';

/** What the clock reads at one instant. */
export interface DowntimeReading {
  /** The store is reachable (the broker is ready). */
  up: boolean;
  /** Seconds since the store became unreachable; 0 while it is reachable. */
  downSeconds: number;
  /** Seconds the store was unreachable in all, since the clock started (the current outage included). */
  totalSeconds: number;
}

/** How often the clock samples the broker between reads. */
const SAMPLE_MS = 250;

/**
 * The time without Redis (docs/kubernetes.md#probes-and-redis-outages): a clock over the broker's
 * `isReady()`, sampled every 250 ms and on every read, so an outage is measured to a quarter of a
 * second. For an edge, "ready" means both Redis connections (commands and the subscription) are
 * up; for a publisher, the command connection. Start it once the broker has started: a process
 * only listens after its first connection to Redis, so the clock never counts the startup.
 */
export class BrokerDowntime {
  private downSince: number | undefined;
  private pastMs = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly isUp: () => boolean,
    private readonly now: () => number = Date.now,
  ) {}

  start(): void {
    this.read();
    this.timer ??= setInterval(() => this.read(), SAMPLE_MS);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Samples the broker now and reads the clock. */
  read(): DowntimeReading {
    const now = this.now();
    const up = this.isUp();
    if (up && this.downSince !== undefined) {
      this.pastMs += now - this.downSince;
      this.downSince = undefined;
    } else if (!up && this.downSince === undefined) this.downSince = now;
    const currentMs = this.downSince === undefined ? 0 : now - this.downSince;
    return { up, downSeconds: currentMs / 1000, totalSeconds: (this.pastMs + currentMs) / 1000 };
  }

  /** The Redis state for a `/readyz` body: `redis` `up`/`down` and `redisDownSeconds`. */
  readyFields(): { redis: 'up' | 'down'; redisDownSeconds: number } {
    const r = this.read();
    return { redis: r.up ? 'up' : 'down', redisDownSeconds: Math.round(r.downSeconds * 1000) / 1000 };
  }
}

/**
 * `cyclone_sse_<component>_redis_down_seconds` (gauge: the current outage, 0 while Redis is
 * reachable) and `cyclone_sse_<component>_redis_down_seconds_total` (counter: every outage since
 * start), both read from `clock` at scrape time.
 */
export function registerDowntimeMetrics(registry: Registry, component: 'edge' | 'publisher', clock: BrokerDowntime): void {
  const p = `cyclone_sse_${component}_redis_`;
  new Gauge({
    name: `${p}down_seconds`,
    help: 'seconds since Redis became unreachable (0 while it is reachable)',
    registers: [registry],
    collect() {
      this.set(clock.read().downSeconds);
    },
  });
  let reported = 0;
  new Counter({
    name: `${p}down_seconds_total`,
    help: 'seconds Redis was unreachable, in all, since the process started',
    registers: [registry],
    collect() {
      const total = clock.read().totalSeconds;
      if (total > reported) this.inc(total - reported);
      reported = Math.max(reported, total);
    },
  });
}
