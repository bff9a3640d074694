import { HubError, reasonPhrase, toHubError, type ErrorBody } from '../errors.js';
import type { Logger } from '../log/logger.js';
import type { HeaderList } from './cors.js';
import type { HttpRequest, HttpResponse } from './uws.js';

/**
 * A response wrapper that remembers whether the client went away or an answer was sent, so
 * timers and promise continuations never touch an invalid uWS HttpResponse.
 */
export class Reply {
  aborted = false;
  done = false;
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

  /** Sends a complete response (status, headers, body) in one corked write. */
  send(status: number, headers: HeaderList, body: string | Buffer, contentType?: string): void {
    if (!this.open) return;
    this.done = true;
    this.res.cork(() => {
      this.res.writeStatus(`${status} ${reasonPhrase(status)}`);
      if (contentType) this.res.writeHeader('Content-Type', contentType);
      for (const [k, v] of headers) this.res.writeHeader(k, v);
      if (status === 204) this.res.endWithoutBody();
      else this.res.end(body);
    });
  }

  json(status: number, headers: HeaderList, body: unknown): void {
    this.send(status, headers, JSON.stringify(body), 'application/json');
  }

  error(err: HubError, headers: HeaderList): void {
    const body: ErrorBody = err.toJSON();
    this.json(err.statusCode, headers, body);
  }
}

/** Request fields read synchronously (uWS HttpRequest is invalid after the handler returns). */
export interface RequestInfo {
  method: string;
  url: string;
  query: string;
  headers: Record<string, string>;
}

export function readRequest(req: HttpRequest): RequestInfo {
  const headers: Record<string, string> = {};
  req.forEach((k, v) => {
    headers[k] = v;
  });
  return { method: req.getCaseSensitiveMethod?.() ?? req.getMethod().toUpperCase(), url: req.getUrl(), query: req.getQuery() ?? '', headers };
}

export type RouteHandler = (reply: Reply, info: RequestInfo) => void | Promise<void>;

/**
 * Wraps a route: attaches onAborted first, reads the request synchronously, turns a thrown
 * HubError into its JSON answer and anything else into a logged 500 (never a crash).
 */
export function route(
  handler: RouteHandler,
  opts: { logger: Logger; cors: (info: RequestInfo) => HeaderList },
): (res: HttpResponse, req: HttpRequest) => void {
  const fail = (reply: Reply, info: RequestInfo, err: unknown) => {
    const hub = toHubError(err);
    if (hub.statusCode >= 500) {
      opts.logger.error('request failed', { event: 'request_failed', url: info.url, code: hub.code, err: (err as Error)?.stack ?? String(err) });
    } else {
      opts.logger.info('request rejected', { event: 'request_rejected', url: info.url, code: hub.code, status: hub.statusCode, reason: hub.message });
    }
    reply.error(hub, opts.cors(info));
  };
  return (res, req) => {
    const reply = new Reply(res);
    let info: RequestInfo = { method: '', url: '', query: '', headers: {} };
    try {
      info = readRequest(req);
      const out = handler(reply, info);
      if (out && typeof (out as Promise<void>).then === 'function') {
        (out as Promise<void>).catch((err: unknown) => fail(reply, info, err));
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

