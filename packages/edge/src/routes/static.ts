import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { methodNotAllowed, route, type HeaderList, type Logger, type TemplatedApp } from '@cyclone-sse/common';

export interface StaticOptions {
  /** Serve the demo page at /demo (`--demo`). */
  demo: boolean;
  logger: Logger;
}

interface Asset {
  body: Buffer;
  gzip: Buffer;
  headers: HeaderList;
  etag: string;
}

/** Anyone may load these (a module script from another origin needs CORS). */
const SHARED: HeaderList = [
  ['Access-Control-Allow-Origin', '*'],
  ['Cross-Origin-Resource-Policy', 'cross-origin'],
  ['X-Content-Type-Options', 'nosniff'],
  ['Vary', 'Accept-Encoding'],
];

function asset(body: Buffer, contentType: string, cacheControl: string): Asset {
  const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`;
  return {
    body,
    gzip: gzipSync(body, { level: 9 }),
    etag,
    headers: [['Content-Type', contentType], ['Cache-Control', cacheControl], ['ETag', etag], ...SHARED],
  };
}

/** The installed @cyclone-sse/client (a workspace sibling or a node_modules copy), if any. */
function clientFile(file: string): Buffer | undefined {
  try {
    const dir = dirname(createRequire(import.meta.url).resolve('@cyclone-sse/client/package.json'));
    return readFileSync(join(dir, file));
  } catch {
    return undefined;
  }
}

/** GET and HEAD (headers only, no Content-Length: the pinned uWS cannot send one without a body). */
function serve(app: TemplatedApp, path: string, a: Asset, logger: Logger): void {
  const opts = { logger, cors: () => SHARED };
  const handler = route((reply, info) => {
    const res = reply.res;
    const notModified = (info.headers['if-none-match'] ?? '').split(',').some((t) => t.trim() === a.etag);
    const gzip = /\bgzip\b/.test(info.headers['accept-encoding'] ?? '');
    reply.done = true;
    res.cork(() => {
      res.writeStatus(notModified ? '304 Not Modified' : '200 OK');
      for (const [k, v] of a.headers) res.writeHeader(k, v);
      if (notModified) return void res.endWithoutBody();
      if (gzip) res.writeHeader('Content-Encoding', 'gzip');
      if (reply.head) return void res.endWithoutBody();
      res.end(gzip ? a.gzip : a.body);
    });
  }, opts);
  app.get(path, handler);
  app.head(path, handler);
  app.any(path, route(methodNotAllowed('GET, HEAD', 'static files are read with GET'), opts));
}

/**
 * Static routes of the edge (and the all-in-one): `/client.js`, the browser client (the built
 * @cyclone-sse/client ES module, cacheable, revalidated by ETag, gzip when accepted, CORS `*`),
 * and `/demo`, the live demo page, unless `--demo false`. Both are read once at start; a missing
 * file is logged and its path answers the usual JSON 404.
 */
export function registerStatic(app: TemplatedApp, opts: StaticOptions): void {
  const log = opts.logger;
  const js = clientFile('dist/index.js');
  if (js) serve(app, '/client.js', asset(js, 'text/javascript; charset=utf-8', 'public, max-age=600, stale-while-revalidate=86400'), log);
  else log.warn('browser client not found: /client.js is not served (build @cyclone-sse/client)', { event: 'client_script_missing' });
  if (!opts.demo) return;
  const html = clientFile('demo/demo.html');
  if (html) serve(app, '/demo', asset(html, 'text/html; charset=utf-8', 'no-cache'), log);
  else log.warn('demo page not found: /demo is not served', { event: 'demo_missing' });
}
