import {
  HubError,
  validateChannel,
  isExpiredToken,
  remoteAddress,
  type ChannelPatterns,
  type TokenVerifier,
  type ClientIp,
  type CorsPolicy,
  type HeaderList,
  type Logger,
  type Reply,
  type RequestInfo,
} from '@cyclone-sse/common';
import { UwsSseConnection } from '../uws-sse-connection.js';
import type { Hub } from '../hub.js';
import type { EdgeMetrics } from '../metrics.js';
import type { StreamStart } from '../stream-start.js';
import type { RefusalReason } from '../reasons.js';
import { tokenExpiredFrame, type RetryHint } from '../retry-hint.js';
import { requestToken } from './token.js';
import { warnPerIpLimit } from './per-ip-warning.js';

export interface SubscribeOptions {
  retry: RetryHint;
  tokenCookie: string;
  maxConnections: number;
  maxConnectionsPerIp: number;
  maxChannelsPerConnection: number;
  maxChannelLength: number;
  maxQueryLength: number;
  longPollTimeoutMs: number;
  longPollMaxEvents: number;
  /** Per-connection byte budget (one replay page, held live frames). */
  maxQueuedBytes: number;
  maxReplayBytes: number;
  /** --max-stream-seconds in ms (0 = streams never end on their own). */
  maxStreamMs: number;
}

export interface SubscribeRequest {
  channels: string[];
  cursor: string | undefined;
  longPoll: boolean;
  /** Subscriber token from the `token` query parameter, Authorization header or cookie. */
  token: string | undefined;
  /** Why the token cookie could not be read (answered with 401 only where a token is needed). */
  tokenProblem?: string;
}

/** Subscriber authorization (docs/security.md#subscribing: off by default, so anonymous seed use keeps working). */
export interface SubscriberAuth {
  mode: 'off' | 'private' | 'all';
  privateChannels: ChannelPatterns;
  verifier: TokenVerifier | undefined;
  expiryMarginMs: number;
}

/** Parses and validates a subscribe request (docs/protocol.md#subscribing); throws HubError with a 4xx. */
export function parseSubscribe(
  info: RequestInfo,
  opts: Pick<SubscribeOptions, 'maxQueryLength' | 'maxChannelsPerConnection' | 'maxChannelLength' | 'tokenCookie'>,
): SubscribeRequest {
  if (Buffer.byteLength(info.query) > opts.maxQueryLength) {
    throw new HubError('URI_TOO_LONG', `query string exceeds ${opts.maxQueryLength} bytes`);
  }
  const params = new URLSearchParams(info.query);
  const raw = params.getAll('channels');
  if (raw.length === 0) throw new HubError('INVALID_CHANNEL', 'at least one channels parameter is required, e.g. ?channels=news');
  const channels = [...new Set(raw.map((c) => c.trim()))];
  if (channels.length > opts.maxChannelsPerConnection) {
    throw new HubError(
      'INVALID_CHANNEL',
      `${channels.length} channels requested; the limit is ${opts.maxChannelsPerConnection} per connection`,
    );
  }
  for (const ch of channels) validateChannel(ch, opts.maxChannelLength);
  const header = info.headers['last-event-id'];
  const cursor = header !== undefined && header !== '' ? header : (params.get('lastEventId') ?? params.get('last_event_id') ?? undefined);
  const longPoll = (info.headers['x-requested-with'] ?? '').toLowerCase() === 'xmlhttprequest';
  return { channels, cursor: cursor === '' ? undefined : cursor, longPoll, ...requestToken(info, params, opts.tokenCookie) };
}

/**
 * Checks the subscriber token when any requested channel needs one. Resolves with the time the
 * stream must end (token expiry minus the margin), 'expired' for a token that already expired
 * (answered in-band, not with a 401 that would stop EventSource for good), or undefined.
 */
async function authorize(req: SubscribeRequest, auth: SubscriberAuth): Promise<number | 'expired' | undefined> {
  if (auth.mode === 'off') return undefined;
  const guarded = auth.mode === 'all' ? req.channels : req.channels.filter((c) => auth.privateChannels.matches(c));
  if (guarded.length === 0) return undefined;
  if (!auth.verifier) throw new HubError('FORBIDDEN', 'subscriber tokens are not configured on this hub');
  if (req.token === undefined) {
    throw new HubError('UNAUTHORIZED', req.tokenProblem ?? `a subscriber token is required for channel ${JSON.stringify(guarded[0])}`);
  }
  let verified;
  try {
    verified = await auth.verifier.verify(req.token);
  } catch (err) {
    if (isExpiredToken(err)) return 'expired';
    throw err;
  }
  const denied = guarded.find((c) => !verified.channels.matches(c));
  if (denied !== undefined) throw new HubError('FORBIDDEN', `the token does not grant channel ${JSON.stringify(denied)}`);
  return verified.expiresAt === undefined ? undefined : verified.expiresAt - auth.expiryMarginMs;
}

const streamHeaderCache = new WeakMap<HeaderList, HeaderList>();

/** Stream response headers; one shared list per CORS variant, not one per connection. */
export function streamHeaders(cors: HeaderList): HeaderList {
  let h = streamHeaderCache.get(cors);
  if (!h) {
    h = buildStreamHeaders(cors);
    streamHeaderCache.set(cors, h);
  }
  return h;
}

function buildStreamHeaders(cors: HeaderList): HeaderList {
  return [['Content-Type', 'text/event-stream'], ['Cache-Control', 'no-cache, no-transform'], ['X-Accel-Buffering', 'no'], ...cors];
}

/**
 * GET /?channels=…: registers the connection first (so nothing published after the first bytes
 * can be missed), sends `retry:` (+ the priming id without a cursor, see priming.ts) + `:ok`,
 * replays history after the cursor, then goes live (stream-start.ts; while Redis is unreachable
 * the stream waits for it, waiting-streams.ts).
 */
export function createSubscribeHandler(deps: {
  hub: Hub;
  start: StreamStart;
  cors: CorsPolicy;
  options: SubscribeOptions;
  metrics: EdgeMetrics;
  logger: Logger;
  accepting: () => boolean;
  clientIp: ClientIp;
  auth: SubscriberAuth;
}) {
  const { hub, start, options, metrics, logger } = deps;

  return async (reply: Reply, info: RequestInfo): Promise<void> => {
    let req: SubscribeRequest;
    try {
      req = parseSubscribe(info, options);
    } catch (err) {
      metrics.rejected.inc();
      throw err;
    }
    const headers = streamHeaders(deps.cors.headers(info.headers.origin ?? ''));
    const ip = deps.clientIp.resolve(remoteAddress(reply.res), info.headers['x-forwarded-for']);
    const endAt = await authorize(req, deps.auth);
    if (!reply.open) return;
    if (endAt === 'expired' || (endAt !== undefined && endAt <= Date.now())) {
      reply.send(200, headers, tokenExpiredFrame(options.retry));
      return;
    }
    const refusal: RefusalReason | undefined = !deps.accepting()
      ? 'draining'
      : options.maxConnections > 0 && hub.connections.size >= options.maxConnections
        ? 'max_connections'
        : options.maxConnectionsPerIp > 0 && hub.connectionsFrom(ip) >= options.maxConnectionsPerIp
          ? 'per_ip'
          : undefined;
    if (refusal) {
      // Never a non-200 to an EventSource (it would give up for good): end at once with a
      // jittered retry hint, so the client comes back later (or lands on another edge).
      metrics.refused.inc({ reason: refusal });
      if (refusal === 'per_ip')
        warnPerIpLimit(logger, options.maxConnectionsPerIp, ip, remoteAddress(reply.res), info.headers['x-forwarded-for']);
      metrics.opened.inc();
      metrics.closed.inc({ reason: refusal === 'draining' ? 'shutdown' : 'limit' });
      logger.debug('stream refused', { event: 'stream_refused', reason: refusal });
      reply.send(200, headers, options.retry.refusalField() + '\n');
      return;
    }
    const now = Date.now();
    const conn = new UwsSseConnection(reply.res, req.channels, headers, req.longPoll, now, {
      ip,
      endAt: endAt ?? 0,
      // Jittered lifetime (80–100 %), so streams opened together do not all reconnect together.
      lifetimeEndAt: options.maxStreamMs > 0 && !req.longPoll ? now + options.maxStreamMs * (0.8 + 0.2 * Math.random()) : 0,
      deadline: req.longPoll ? now + options.longPollTimeoutMs : 0,
      replaying: req.cursor !== undefined,
    });
    reply.onAbort(() => hub.detach(conn, 'client'));
    reply.res.onWritable(() => hub.writable(conn));
    hub.attach(conn);
    logger.debug('subscribed', {
      event: 'subscribed',
      channels: req.channels.length,
      longPoll: req.longPoll,
      resume: req.cursor !== undefined,
    });

    if (req.cursor !== undefined)
      await start.resume(conn, req.cursor); // history, then live (resume.ts)
    else if (!req.longPoll) start.prime(conn); // first bytes with the priming id (priming.ts)
  };
}
