import { HubError, reasonPhrase, toHubError, type ErrorBody } from '../errors.js';
import type { Logger } from '../log/logger.js';
import { errorFields } from '../log/error-fields.js';
import type { HeaderList } from './cors.js';
import { framingFault, type FramingFault } from './framing.js';
import { malformedRequests } from './http-metrics.js';
import { CauseLog, causeKey } from './log-once.js';
import type { HttpRequest, HttpResponse } from './uws.js';

/**
 * A response wrapper that remembers whether the client went away or an answer was sent, so
 * timers and promise continuations never touch an invalid uWS HttpResponse.
 */
export class Reply {
  aborted = false;
  done = false;
  /** The request was HEAD: answers carry status and headers only (set by `route`). */
  head = false;
  // Exact-size array (push would reserve 17 slots): one per open stream adds up.
  private abortHandlers: (() => void)[] | undefined;

  constructor(readonly res: HttpResponse) {
    res.onAborted(() => {
      this.aborted = true;
      if (this.abortHandlers) for (const h of this.abortHandlers) h();
    });
  }

  onAbort(handler: () => void): void {
    this.abortHandlers = this.abortHandlers ? [...this.abortHandlers, handler] : [handler];
  }

  get open(): boolean {
    return !this.aborted && !this.done;
  }

  /**
   * Sends a complete response (status, headers, body) in one corked write. To HEAD (and for 204)
   * no body and no Content-Length go out, so a keep-alive client reads the next answer from the
   * right byte.
   */
  send(status: number, headers: HeaderList, body: string | Buffer, contentType?: string): void {
    if (!this.open) return;
    this.done = true;
    this.res.cork(() => this.write(status, headers, body, contentType, false));
  }

  json(status: number, headers: HeaderList, body: unknown): void {
    this.send(status, headers, JSON.stringify(body), 'application/json');
  }

  error(err: HubError, headers: HeaderList): void {
    const body: ErrorBody = err.toJSON();
    this.json(err.statusCode, headers, body);
  }

  /**
   * Answers `err` and closes the connection, serving nothing else on it. Pinned uWS: `end(body,
   * true)` from inside the handler does not close when another request was pipelined behind this
   * one in the same read (the next request clears the close flag and is served). Left pending
   * until the next turn instead, a pipelined request makes uWS drop the connection unserved; a
   * lone request gets its answer with `Connection: close`, then the close.
   */
  refuse(err: HubError, headers: HeaderList): void {
    if (!this.open) return;
    this.done = true;
    const body = JSON.stringify(err.toJSON());
    setImmediate(() => {
      if (!this.aborted) this.res.cork(() => this.write(err.statusCode, headers, body, 'application/json', true));
    });
  }

  private write(status: number, headers: HeaderList, body: string | Buffer, contentType: string | undefined, close: boolean): void {
    this.res.writeStatus(statusLine(status));
    if (contentType) this.res.writeHeader('Content-Type', contentType);
    for (const [k, v] of headers) this.res.writeHeader(k, v);
    // Pinned uWS: endWithoutBody() sends no Content-Length; endWithoutBody(undefined) sends a
    // garbage one and a non-zero length aborts the process; 0 is the only safe explicit value.
    if (status === 204 || this.head) {
      if (close) this.res.endWithoutBody(0, true);
      else this.res.endWithoutBody();
    } else this.res.end(body, close);
  }
}

/** `200 OK`, … built once per status code (a handful of them). */
const statusLines = new Map<number, string>();
function statusLine(status: number): string {
  let line = statusLines.get(status);
  if (line === undefined) {
    line = `${status} ${reasonPhrase(status)}`;
    statusLines.set(status, line);
  }
  return line;
}

/** Request fields read synchronously (uWS HttpRequest is invalid after the handler returns). */
export interface RequestInfo {
  method: string;
  url: string;
  query: string;
  /** Lower-case names; for a repeated header the last value. */
  headers: Record<string, string>;
  /** A Content-Length/Transfer-Encoding fault (`route` refuses the request before the handler). */
  framing?: FramingFault;
}

export function readRequest(req: HttpRequest): RequestInfo {
  const headers: Record<string, string> = {};
  let lengths: string[] | undefined;
  let codings: string[] | undefined;
  req.forEach((k, v) => {
    // uWS lists every occurrence: keep them all for the framing check.
    if (k === 'content-length') (lengths ??= []).push(v);
    else if (k === 'transfer-encoding') (codings ??= []).push(v);
    headers[k] = v;
  });
  const info: RequestInfo = {
    method: req.getCaseSensitiveMethod?.() ?? req.getMethod().toUpperCase(),
    url: req.getUrl(),
    query: req.getQuery() ?? '',
    headers,
  };
  if (lengths || codings) {
    const fault = framingFault(lengths ?? [], codings ?? []);
    if (fault) info.framing = fault;
  }
  return info;
}

export type RouteHandler = (reply: Reply, info: RequestInfo) => void | Promise<void>;

/** One log line per cause (code + message shape), process-wide; repeats go to debug. */
const logged = new CauseLog();

/**
 * Logs a refused or failed request once per cause: the first 4xx of a cause at info, the first
 * 5xx of a cause at error with its stack; repeats at debug (a flood of one bad request must not
 * flood the log, nor print a stack trace per request).
 */
export function logRejection(logger: Logger, info: RequestInfo, hub: HubError, err: unknown): void {
  const first = logged.first(causeKey(hub.code, hub.statusCode >= 500 ? String((err as Error)?.message ?? err) : hub.message));
  if (hub.statusCode >= 500) {
    if (first) logger.error('request failed', { event: 'request_failed', url: info.url, code: hub.code, ...errorFields(err) });
    else
      logger.debug('request failed (repeat)', {
        event: 'request_failed',
        url: info.url,
        code: hub.code,
        reason: String((err as Error)?.message ?? err),
      });
    return;
  }
  logger.log(first ? 'info' : 'debug', 'request rejected', {
    event: 'request_rejected',
    url: info.url,
    code: hub.code,
    status: hub.statusCode,
    reason: hub.message,
  });
}

/** 405 that names the allowed methods: `route` answers it with an `Allow` header (RFC 9110 §15.5.6). */
export class MethodNotAllowed extends HubError {
  constructor(
    readonly allow: string,
    message: string,
  ) {
    super('METHOD_NOT_ALLOWED', message);
  }
}

/** A handler that refuses the request with 405 and `Allow: <allow>`. */
export function methodNotAllowed(allow: string, hint: string): RouteHandler {
  return (_reply, info) => {
    throw new MethodNotAllowed(allow, `${info.method} is not allowed here; ${hint}`);
  };
}

/**
 * Wraps a route: attaches onAborted first, reads the request synchronously, refuses malformed
 * framing (400, connection closed) before the handler runs, answers HEAD without a body, turns a
 * thrown HubError into its JSON answer and anything else into a logged 500 (never a crash).
 */
export function route(
  handler: RouteHandler,
  opts: { logger: Logger; cors: (info: RequestInfo) => HeaderList },
): (res: HttpResponse, req: HttpRequest) => void {
  const fail = (reply: Reply, info: RequestInfo, err: unknown) => {
    const hub = toHubError(err);
    logRejection(opts.logger, info, hub, err);
    reply.error(hub, hub instanceof MethodNotAllowed ? [...opts.cors(info), ['Allow', hub.allow]] : opts.cors(info));
  };
  return (res, req) => {
    const reply = new Reply(res);
    let info: RequestInfo = { method: '', url: '', query: '', headers: {} };
    try {
      info = readRequest(req);
      reply.head = info.method === 'HEAD';
      if (info.framing) {
        malformedRequests.inc({ reason: info.framing.reason });
        const err = new HubError('INVALID_FRAMING', info.framing.message);
        logRejection(opts.logger, info, err, err);
        reply.refuse(err, opts.cors(info));
        return;
      }
      const out = handler(reply, info);
      if (out && typeof out.then === 'function') {
        out.catch((err: unknown) => fail(reply, info, err));
      }
    } catch (err) {
      fail(reply, info, err);
    }
  };
}

/** Accumulates a request body up to `limit` bytes; rejects with 413 as soon as it is passed. */
export function readBody(reply: Reply, limit: number, declaredLength: string | undefined): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    if (declaredLength !== undefined && declaredLength !== '' && Number(declaredLength) > limit) {
      reject(new HubError('PAYLOAD_TOO_LARGE', `body is ${declaredLength} bytes; the limit is ${limit}`));
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let failed = false;
    reply.onAbort(() => reject(new HubError('INVALID_BODY', 'client aborted the request')));
    reply.res.onData((chunk, isLast) => {
      if (failed) return;
      size += chunk.byteLength;
      if (size > limit) {
        failed = true;
        reject(new HubError('PAYLOAD_TOO_LARGE', `body exceeds the limit of ${limit} bytes`));
        return;
      }
      // uWS reuses the chunk's memory after this callback: copy it.
      chunks.push(Buffer.from(Buffer.from(chunk)));
      if (isLast) resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks));
    });
  });
}
