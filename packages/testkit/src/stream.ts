import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import { RawHttpClient } from './sse-client.js';

export interface OpenStreamOptions {
  headers?: Record<string, string>;
  /** Sent as the Last-Event-ID header. */
  lastEventId?: string;
  /** Bytes to wait for; default `:ok\n\n` (the subscription is registered by then). */
  firstBytes?: string;
  /** Closes the stream when this test ends. */
  t?: TestContext;
}

/** `/?channels=a&channels=b` (each name URL-encoded). */
export function channelsPath(channels: string[]): string {
  return `/?${channels.map((c) => `channels=${encodeURIComponent(c)}`).join('&')}`;
}

/** Opens a raw SSE stream on 127.0.0.1:`port`, waits for its first bytes and asserts status 200. */
export async function openStream(port: number, path: string, opts: OpenStreamOptions = {}): Promise<RawHttpClient> {
  const headers = { ...opts.headers, ...(opts.lastEventId ? { 'Last-Event-ID': opts.lastEventId } : {}) };
  const s = await RawHttpClient.request(port, path, { headers });
  opts.t?.after(() => s.close());
  const first = opts.firstBytes ?? ':ok\n\n';
  await s.until((c) => c.body.includes(first), 5000, 'first bytes of the stream');
  assert.equal(s.status, 200);
  return s;
}
