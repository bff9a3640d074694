import {
  HubError,
  TokenVerifier,
  bearerToken,
  readBody,
  type ChannelPatterns,
  type TokenOptions,
  type CorsPolicy,
  type Reply,
  type RequestInfo,
  type TemplatedApp,
  type Logger,
  route,
} from '@cyclone-sse/common';
import { SecretCheck } from '../auth.js';
import { parseForm, parseJson, type ParseLimits } from '../parse.js';
import type { PublishService } from '../publish-service.js';
import { countRefusal, type PublisherMetrics } from '../metrics.js';

export interface PublishRouteOptions extends ParseLimits {
  httpSecret: string;
  maxBody: number;
  /** Publisher JWTs (optional). */
  jwt?: TokenOptions;
}

// The seed answered exactly this (Python's JSON separators); old backends may compare it.
const SEED_OK = '{"status": "ok"}';

/**
 * POST /publish: the seed's form contract (channel, message, key) and JSON (single, multi-channel,
 * batch, event, idempotency id). Auth first (401), then validation (400), then the broker (503).
 */
export function registerPublishRoutes(
  app: TemplatedApp,
  deps: { service: PublishService; cors: CorsPolicy; options: PublishRouteOptions; metrics: PublisherMetrics; logger: Logger },
): void {
  const { service, options, metrics, logger } = deps;
  const secret = new SecretCheck(options.httpSecret);
  const tokens = options.jwt?.key ? new TokenVerifier(options.jwt, '--publisher-jwt-key') : undefined;
  let warnedQueryKey = false;

  /**
   * The shared secret grants every channel; a publisher JWT grants its `channels` patterns.
   * With neither configured, publishing is open (the seed's default; not called then). The scope
   * names the publisher for idempotency keys: `jwt:<sub>` per token subject, `secret`, or `open`.
   */
  const authorizePublish = async (key: string | undefined): Promise<{ allowed?: ChannelPatterns; scope: string }> => {
    if (key === undefined)
      throw new HubError('UNAUTHORIZED', 'a publish key or token is required (Authorization: Bearer <secret or token>)');
    if (secret.required && secret.matches(key)) return { scope: 'secret' };
    if (tokens && key.split('.').length === 3) {
      const token = await tokens.verify(key);
      return { allowed: token.channels, scope: `jwt:${token.subject ?? ''}` };
    }
    throw new HubError('UNAUTHORIZED', 'wrong publish key');
  };
  const cors = (info: RequestInfo) => deps.cors.headers(info.headers.origin ?? '');

  const publish = async (reply: Reply, info: RequestInfo) => {
    const rawType = info.headers['content-type'] ?? '';
    // The usual value as is; anything else lower-cased without its parameters.
    const contentType = rawType === 'application/json' ? rawType : rawType.split(';')[0]!.trim().toLowerCase();
    const body = await readBody(reply, options.maxBody, info.headers['content-length']);
    if (!reply.open) return;
    const query = info.query === '' ? NO_QUERY : new URLSearchParams(info.query);
    const isJson = contentType === 'application/json' || contentType.endsWith('+json');
    const isForm = !isJson && FORM_TYPES.has(contentType);
    const form = isForm ? mergeForm(body, query) : undefined;

    const bearer = bearerToken(info.headers.authorization);
    const queryKey = query.get('key')?.trim() || undefined;
    const key = bearer ?? form?.get('key')?.trim() ?? queryKey;
    if (queryKey !== undefined && !warnedQueryKey) {
      warnedQueryKey = true;
      logger.warn('publish key in the query string is deprecated (it lands in proxy logs); send Authorization: Bearer', {
        event: 'deprecated_query_key',
      });
    }
    let allowed: ChannelPatterns | undefined; // undefined = every channel
    let scope = 'open';
    if (secret.required || tokens) {
      try {
        ({ allowed, scope } = await authorizePublish(key));
      } catch (err) {
        metrics.publishes.inc({ source: 'http', outcome: 'rejected' });
        throw err;
      }
      if (!reply.open) return;
    }

    if (!isJson && !isForm) {
      metrics.publishes.inc({ source: 'http', outcome: 'rejected' });
      throw new HubError(
        'UNSUPPORTED_MEDIA_TYPE',
        `content type ${contentType} is not supported; send application/x-www-form-urlencoded or application/json`,
      );
    }
    let inputs;
    let batch = false;
    try {
      if (form) inputs = [parseForm(form, options)];
      else ({ inputs, batch } = parseJson(body, options));
    } catch (err) {
      metrics.publishes.inc({ source: 'http', outcome: 'rejected' });
      countRefusal(metrics, err);
      throw err;
    }
    for (const input of inputs) input.idempotencyScope = scope;
    if (allowed) {
      const denied = inputs.flatMap((i) => i.channels).find((c) => !allowed.matches(c));
      if (denied !== undefined) {
        metrics.publishes.inc({ source: 'http', outcome: 'rejected' });
        throw new HubError('FORBIDDEN', `the token does not grant publishing to channel ${JSON.stringify(denied)}`);
      }
    }
    let results;
    try {
      results = await service.publish(inputs, 'http');
    } catch (err) {
      // The broker logged the cause once (per state change); a 503 is answered here, with its
      // fixed message, so the route does not log it again per request.
      if (err instanceof HubError && err.code === 'BROKER_UNAVAILABLE') {
        if (reply.open) reply.error(err, cors(info));
        return;
      }
      throw err;
    }
    if (form) {
      reply.send(200, cors(info), SEED_OK, 'application/json');
      return;
    }
    reply.json(200, cors(info), batch ? results.map((r) => ({ status: 'ok', ids: r.ids })) : { status: 'ok', ids: results[0]!.ids });
  };

  const opts = { logger, cors };
  app.post('/publish', route(publish, opts));
  app.options(
    '/publish',
    route((reply, info) => reply.send(204, deps.cors.preflight(info.headers.origin ?? '', 'POST, OPTIONS'), ''), opts),
  );
  app.any(
    '/publish',
    route((reply, info) => {
      reply.error(new HubError('METHOD_NOT_ALLOWED', `${info.method} is not allowed on /publish; use POST`), [
        ...cors(info),
        ['Allow', 'POST, OPTIONS'],
      ]);
    }, opts),
  );
}

/** The query of a request without one (most JSON publishes): read, never written. */
const NO_QUERY = new URLSearchParams();

// The seed's clients send urlencoded forms, sometimes without a content type.
const FORM_TYPES = new Set(['', 'application/x-www-form-urlencoded', 'text/plain']);

/** Query string and body merge, as the seed's framework did. */
function mergeForm(body: Buffer, query: URLSearchParams): URLSearchParams {
  const merged = new URLSearchParams(query);
  for (const [k, v] of new URLSearchParams(body.toString('utf8'))) merged.append(k, v);
  return merged;
}
