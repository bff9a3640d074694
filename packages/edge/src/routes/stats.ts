import {
  Counter,
  HubError,
  isExpiredToken,
  methodNotAllowed,
  route,
  type ChannelPatterns,
  type HeaderList,
  type Logger,
  type RedisDirectory,
  type Registry,
  type Reply,
  type RequestInfo,
  type TemplatedApp,
} from '@cyclone-sse/common';
import type { Hub } from '../hub.js';
import { StatsSnapshot, type StatsView } from './stats-snapshot.js';
import type { SubscriberAuth } from './subscribe.js';
import { requestToken } from './token.js';

export interface StatsOptions {
  pageSize: number;
  tokenCookie: string;
}

/** A snapshot is reused for at most this long. */
const MAX_AGE_MS = 1000;
/**
 * After the channel set changed, a new snapshot is built only once the old one is at least this
 * many times as old as it took to build: sorting costs at most ~1/10 of the time, however many
 * requests arrive (a small hub is always fresh; 96 000 channels refresh about once a second).
 */
const BUILD_DUTY = 10;

/**
 * GET /stats — `[["channel", subscribers], …]`, the seed's shape — served from a shared sorted
 * snapshot, paged, and filtered by subscriber auth on the public port:
 * - anonymous: channels that need no token (with --subscriber-auth private, everything but
 *   --private-channels; with all, nothing); with a token (query, Bearer or cookie): those plus
 *   the channels the token may subscribe to;
 * - `?scope=cluster` (every live edge's counts, from Redis) needs a valid subscriber token on the
 *   public port — never anonymous; the internal port serves both scopes unfiltered;
 * - at most --stats-page-size entries; `?limit=` asks fewer; `?after=<channel>` continues after
 *   that name; a `Link: <?after=…>; rel="next"` header says a next page exists.
 */
export class StatsRoutes {
  private node: StatsSnapshot | undefined;
  private nodeKey = '';
  private nodeBuildMs = 0;
  private cluster: { at: number; snapshot: Promise<StatsSnapshot> } | undefined;
  private readonly requests: Counter<'scope' | 'port'>;
  private readonly builds: Counter<'scope'>;
  private readonly needsToken: (channel: string) => boolean;

  constructor(
    private readonly hub: Hub,
    private readonly directory: RedisDirectory | undefined,
    private readonly auth: SubscriberAuth,
    private readonly options: StatsOptions,
    registry: Registry,
    private readonly logger: Logger,
  ) {
    const p = 'cyclone_sse_edge_';
    this.requests = new Counter({
      name: `${p}stats_requests_total`,
      help: 'GET /stats answered, by scope and port',
      labelNames: ['scope', 'port'] as const,
      registers: [registry],
    });
    this.builds = new Counter({
      name: `${p}stats_snapshots_total`,
      help: 'sorted /stats snapshots built (shared by every request until refreshed)',
      labelNames: ['scope'] as const,
      registers: [registry],
    });
    for (const scope of ['node', 'cluster']) {
      this.builds.inc({ scope }, 0);
      for (const port of ['public', 'internal']) this.requests.inc({ scope, port }, 0);
    }
    this.needsToken = auth.mode === 'all' ? () => true : auth.mode === 'private' ? (c) => auth.privateChannels.matches(c) : () => false;
  }

  /** Public port: filtered by subscriber auth; CORS headers from `cors`. */
  registerPublic(app: TemplatedApp, cors: (info: RequestInfo) => HeaderList): void {
    this.register(app, 'public', cors);
  }

  /** Internal (metrics) port: every channel, both scopes, no token. */
  registerInternal(app: TemplatedApp): void {
    this.register(app, 'internal', () => []);
  }

  private register(app: TemplatedApp, port: 'public' | 'internal', cors: (info: RequestInfo) => HeaderList): void {
    const opts = { logger: this.logger, cors };
    const handler = route((reply, info) => this.answer(reply, info, port, cors(info)), opts);
    app.get('/stats', handler);
    app.head('/stats', handler);
    app.any('/stats', route(methodNotAllowed('GET, HEAD', 'use GET'), opts));
  }

  private async answer(reply: Reply, info: RequestInfo, port: 'public' | 'internal', cors: HeaderList): Promise<void> {
    const params = new URLSearchParams(info.query);
    const scope = params.get('scope') ?? 'node';
    if (scope !== 'node' && scope !== 'cluster') throw new HubError('INVALID_PARAMETER', 'scope must be node or cluster');
    const limit = this.limit(params.get('limit'));
    const after = params.get('after') ?? undefined;
    const view = port === 'internal' ? ({ kind: 'all' } as const) : await this.view(info, params, scope);
    if (!reply.open) return;
    const snapshot = scope === 'cluster' ? await this.clusterSnapshot() : this.nodeSnapshot();
    if (!reply.open) return;
    this.requests.inc({ scope, port });
    let json: string;
    let next: string | undefined;
    if (view.kind === 'open' && after === undefined) ({ json, next } = snapshot.firstOpenPageJson(limit));
    else {
      const page = snapshot.page(view, after, limit);
      json = JSON.stringify(page.entries);
      next = page.next;
    }
    const headers: HeaderList = next === undefined ? cors : [...cors, ['Link', `<${nextQuery(params, next)}>; rel="next"`]];
    reply.send(200, headers, json, 'application/json');
  }

  private limit(raw: string | null): number {
    if (raw === null || raw === '') return this.options.pageSize;
    if (!/^\d{1,9}$/.test(raw) || Number(raw) < 1)
      throw new HubError('INVALID_PARAMETER', `limit must be a whole number from 1 to ${this.options.pageSize}`);
    return Math.min(Number(raw), this.options.pageSize);
  }

  /** What a public-port request may see; a token is checked only where it changes the answer. */
  private async view(info: RequestInfo, params: URLSearchParams, scope: 'node' | 'cluster'): Promise<StatsView> {
    const { token, tokenProblem } = requestToken(info, params, this.options.tokenCookie);
    const verifier = this.auth.verifier;
    if (scope === 'cluster') {
      if (!verifier)
        throw new HubError('FORBIDDEN', 'cluster-wide stats are served on the internal port only (no subscriber tokens are configured)');
      if (token === undefined)
        throw new HubError('UNAUTHORIZED', tokenProblem ?? 'scope=cluster needs a subscriber token (or ask the internal port)');
    }
    if (token === undefined || !verifier || (this.auth.mode === 'off' && scope === 'node')) return { kind: 'open' };
    let grants: ChannelPatterns;
    try {
      grants = (await verifier.verify(token)).channels;
    } catch (err) {
      if (isExpiredToken(err)) throw new HubError('UNAUTHORIZED', 'token expired');
      throw err;
    }
    return { kind: 'token', grants };
  }

  private nodeSnapshot(): StatsSnapshot {
    const now = Date.now();
    const key = `${this.hub.connections.size}/${this.hub.channelCount}`;
    const s = this.node;
    const age = s ? now - s.builtAt : Infinity;
    if (s && age < MAX_AGE_MS && (key === this.nodeKey || age < this.nodeBuildMs * BUILD_DUTY)) return s;
    const t0 = performance.now();
    this.node = new StatsSnapshot(this.hub.stats(), this.needsToken, now);
    this.nodeBuildMs = performance.now() - t0;
    this.nodeKey = key;
    this.builds.inc({ scope: 'node' });
    return this.node;
  }

  /** Cluster counts from Redis, shared (also while in flight) for MAX_AGE_MS. */
  private clusterSnapshot(): Promise<StatsSnapshot> {
    const now = Date.now();
    if (this.cluster && now - this.cluster.at < MAX_AGE_MS) return this.cluster.snapshot;
    const directory = this.directory;
    const snapshot = directory
      ? directory.channels().then(
          (counts) => new StatsSnapshot(counts, this.needsToken, Date.now()),
          (err: unknown) => {
            this.cluster = undefined; // do not cache a failure
            throw new HubError('BROKER_UNAVAILABLE', 'cluster stats unavailable: Redis unreachable', { cause: err });
          },
        )
      : Promise.resolve(new StatsSnapshot(this.hub.stats(), this.needsToken, now)); // one process: the cluster is this node
    this.cluster = { at: now, snapshot };
    this.builds.inc({ scope: 'cluster' });
    return snapshot;
  }
}

/**
 * `?…&after=<next>`: relative, so it resolves right behind a path prefix (/sse/stats); keeps the
 * request's parameters but never echoes a `token` (send it again, or use the cookie).
 */
function nextQuery(params: URLSearchParams, next: string): string {
  const q = new URLSearchParams(params);
  q.delete('token');
  q.set('after', next);
  return `?${q.toString()}`;
}
