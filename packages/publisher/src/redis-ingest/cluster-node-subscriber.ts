import type { Redis } from 'ioredis';
import { createRedisNodeClient, formatAddress, type RedisAddress, type RedisConnectionConfig } from '@cyclone-sse/common';

export interface ClusterNodeSubscriberEvents {
  /** A raw pub/sub message matched by a pattern of the current connection. */
  message(channel: Buffer, message: Buffer): void;
  /** A connection is ready; its subscriptions are empty (nothing is resubscribed by itself). */
  ready(node: RedisAddress): void;
  /** The current connection was lost: its subscriptions are gone. */
  closed(node: RedisAddress): void;
}

/**
 * A pub/sub connection to one node of a Redis Cluster at a time, for the legacy ingest: a classic
 * `PUBLISH` is broadcast over the cluster bus to every node, so one `PSUBSCRIBE` on any node,
 * primary or replica, sees every raw message of the cluster. When the node is lost the connection
 * moves on to the next address — the seed nodes first, then every node the cluster client knows
 * (`nodes()`), in turn — after `retryMs`; the owner resubscribes on `ready`.
 */
export class ClusterNodeSubscriber {
  private client: Redis | undefined;
  private node: RedisAddress | undefined;
  private attempt = 0;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  /** While start() waits: told of each attempt's outcome. */
  private settle: ((ok: boolean) => void) | undefined;

  constructor(
    private readonly connection: RedisConnectionConfig,
    /** Where to connect, in order of preference (read again on every attempt). */
    private readonly nodes: () => RedisAddress[],
    private readonly events: ClusterNodeSubscriberEvents,
    private readonly retryMs = 500,
  ) {}

  /** The current connection when it is ready, else undefined. */
  get ready(): Redis | undefined {
    return this.client?.status === 'ready' ? this.client : undefined;
  }

  /** The node of the current connection (for log lines). */
  get address(): string | undefined {
    return this.node ? formatAddress(this.node) : undefined;
  }

  /**
   * Opens the first connection; resolves once one is ready, or once every known node was tried
   * once (it keeps trying in the background).
   */
  start(): Promise<void> {
    const tries = Math.max(1, this.candidates().length);
    return new Promise<void>((resolve) => {
      let failed = 0;
      this.settle = (ok) => {
        if (!ok && ++failed < tries) return;
        this.settle = undefined;
        resolve();
      };
      this.open();
    });
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.client?.disconnect();
    this.client = undefined;
    this.settle?.(true);
  }

  private candidates(): RedisAddress[] {
    const seen = new Set<string>();
    const out: RedisAddress[] = [];
    for (const n of this.nodes()) {
      const key = formatAddress(n);
      if (!seen.has(key)) {
        seen.add(key);
        out.push(n);
      }
    }
    return out;
  }

  /** One connection to the next candidate; when it ends, the next one after `retryMs`. */
  private open(): void {
    const candidates = this.candidates();
    const node = candidates[this.attempt++ % Math.max(1, candidates.length)];
    if (!node) {
      this.settle?.(true);
      return;
    }
    this.node = node;
    // No reconnect of its own: a lost node is left for the next one ('end' below).
    const client = createRedisNodeClient(this.connection, node, {
      autoResubscribe: false,
      lazyConnect: true,
      retryStrategy: () => null,
      connectTimeout: 2000,
      maxRetriesPerRequest: 1,
    });
    this.client = client;
    let wasReady = false;
    client.on('error', () => undefined);
    client.on('pmessageBuffer', (_p: Buffer, channel: Buffer, message: Buffer) => this.events.message(channel, message));
    client.on('ready', () => {
      wasReady = true;
      this.settle?.(true);
      this.events.ready(node);
    });
    client.on('end', () => {
      if (this.client !== client || this.stopped) return;
      if (wasReady) this.events.closed(node);
      else this.settle?.(false);
      this.timer = setTimeout(() => this.open(), this.retryMs);
      this.timer.unref();
    });
    client.connect().catch(() => undefined);
  }
}
