import { createSocket, type Socket } from 'node:dgram';
import { isIP } from 'node:net';
import { errorFields, type Logger } from '@cyclone-sse/common';

export interface GraphiteOptions {
  host: string;
  port: number;
  intervalSeconds: number;
  /** Metric prefix (`--export-path`); a trailing dot is optional. */
  path: string;
}

/** Largest datagram sent; more lines go in further datagrams (never split inside a line). */
const MAX_DATAGRAM = 1400;

/** One node of a Graphite path: letters, digits, `_` and `-` stay; everything else becomes `_`. */
export function graphiteNode(name: string): string {
  return name.replace(/[^A-Za-z0-9_-]/g, '_');
}

/** The prefix with its own dots kept as separators and each node sanitised; no trailing dot. */
export function graphitePrefix(path: string): string {
  return path.split('.').filter(Boolean).map(graphiteNode).join('.');
}

/**
 * Graphite plaintext lines `<prefix>.<channel> <count> <unixSeconds>`. Channels whose names
 * sanitise to the same node are summed (one series, not two lines fighting for it).
 */
export function graphiteLines(prefix: string, counts: Iterable<readonly [string, number]>, unixSeconds: number): string[] {
  const byNode = new Map<string, number>();
  for (const [channel, n] of counts) {
    const node = graphiteNode(channel);
    byNode.set(node, (byNode.get(node) ?? 0) + n);
  }
  const p = graphitePrefix(prefix);
  return [...byNode].map(([node, n]) => `${p ? `${p}.` : ''}${node} ${n} ${unixSeconds}\n`);
}

/** Groups lines into datagrams of at most MAX_DATAGRAM bytes (a longer line goes alone). */
export function datagrams(lines: string[]): Buffer[] {
  const out: Buffer[] = [];
  let current = '';
  for (const line of lines) {
    if (current && Buffer.byteLength(current) + Buffer.byteLength(line) > MAX_DATAGRAM) {
      out.push(Buffer.from(current));
      current = '';
    }
    current += line;
  }
  if (current) out.push(Buffer.from(current));
  return out;
}

/**
 * The seed's `--export graphite`: every interval (first one interval after start), this
 * process's channel subscriber counts go to carbon as plaintext lines over UDP. A channel that
 * lost its last subscriber since the previous export is sent once more with 0, so its series
 * drops to zero instead of stopping at its last value. Nothing is sent while no channel has
 * subscribers. Send failures are logged once per change of state, never thrown.
 */
export class GraphiteExporter {
  private socket: Socket | undefined;
  private timer: NodeJS.Timeout | undefined;
  private previous = new Set<string>();
  private failing = false;

  constructor(
    private readonly options: GraphiteOptions,
    private readonly counts: () => Iterable<readonly [string, number]>,
    private readonly logger: Logger,
  ) {}

  start(): void {
    const family = isIP(this.options.host) === 6 ? 'udp6' : 'udp4';
    this.socket = createSocket(family);
    this.socket.on('error', (err) => this.failed(err));
    this.socket.unref();
    this.timer = setInterval(() => this.exportNow(), this.options.intervalSeconds * 1000);
    this.timer.unref();
    this.logger.info('graphite export started', {
      event: 'graphite_started',
      host: this.options.host,
      port: this.options.port,
      interval: this.options.intervalSeconds,
    });
  }

  /** Sends the current counts now (also what the timer does). */
  exportNow(now = Date.now()): void {
    const socket = this.socket;
    if (!socket) return;
    const current = [...this.counts()].filter(([, n]) => n > 0);
    const names = new Set(current.map(([ch]) => ch));
    const gone = [...this.previous].filter((ch) => !names.has(ch)).map((ch) => [ch, 0] as const);
    this.previous = names;
    const lines = graphiteLines(this.options.path, [...current, ...gone], Math.floor(now / 1000));
    for (const buf of datagrams(lines)) {
      socket.send(buf, this.options.port, this.options.host, (err) => {
        if (err) this.failed(err);
        else if (this.failing) {
          this.failing = false;
          this.logger.info('graphite export recovered', { event: 'graphite_recovered' });
        }
      });
    }
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.socket?.close();
    this.socket = undefined;
  }

  private failed(err: Error): void {
    if (this.failing) return;
    this.failing = true;
    this.logger.warn('graphite export failing', {
      event: 'graphite_failed',
      host: this.options.host,
      port: this.options.port,
      ...errorFields(err),
    });
  }
}
