/**
 * Request framing checks the pinned uWebSockets.js does not make (RFC 9112 §6.1, §6.3). Checked
 * on this build with raw sockets:
 * - `Transfer-Encoding` together with `Content-Length`, and a non-numeric or negative
 *   `Content-Length`: uWS closes the connection itself (with TE+CL before any route runs);
 * - two `Content-Length` headers with different values: uWS frames the body by the first and
 *   calls the route (both values show in `req.forEach`);
 * - any `Transfer-Encoding` value (`gzip`, `xchunked`, `chunked, gzip`, two headers): uWS parses
 *   the body as chunked and calls the route.
 * A proxy in front that frames such a request differently would let a second request be smuggled
 * past it, so these are refused with 400 before the route runs, and the connection is closed.
 */
export type FramingReason = 'content_length_invalid' | 'content_length_conflict' | 'transfer_encoding';

export const FRAMING_REASONS: readonly FramingReason[] = ['content_length_invalid', 'content_length_conflict', 'transfer_encoding'];

export interface FramingFault {
  reason: FramingReason;
  message: string;
}

const MAX_ECHO = 64;

function isPlainLength(v: string): boolean {
  if (v.length === 0 || v.length > 15) return false;
  for (let i = 0; i < v.length; i++) {
    const c = v.charCodeAt(i);
    if (c < 48 || c > 57) return false;
  }
  return true;
}

function quote(value: string): string {
  return JSON.stringify(value.length > MAX_ECHO ? `${value.slice(0, MAX_ECHO)}…` : value);
}

/** The framing fault of a request with these raw header values (every occurrence), if any. */
export function framingFault(contentLengths: readonly string[], transferEncodings: readonly string[]): FramingFault | undefined {
  // The common case (one Content-Length of 1–15 plain digits, no Transfer-Encoding) without the
  // allocations of the general check below, which it would pass.
  if (transferEncodings.length === 0 && contentLengths.length === 1 && isPlainLength(contentLengths[0]!)) return undefined;
  if (transferEncodings.length > 0) {
    const all = transferEncodings.join(', ');
    // A list; empty elements are allowed by the list syntax (RFC 9110 §5.6.1).
    const codings = all
      .split(',')
      .map((c) => c.trim().toLowerCase())
      .filter((c) => c !== '');
    if (codings.length !== 1 || codings[0] !== 'chunked') {
      return { reason: 'transfer_encoding', message: `Transfer-Encoding ${quote(all)} is not supported: only chunked (alone) is accepted` };
    }
    if (contentLengths.length > 0) {
      return { reason: 'transfer_encoding', message: 'Transfer-Encoding and Content-Length must not be sent together' };
    }
  }
  if (contentLengths.length === 0) return undefined;
  const values = contentLengths.flatMap((v) => v.split(',')).map((v) => v.trim());
  const bad = values.find((v) => !/^\d{1,15}$/.test(v));
  if (bad !== undefined) return { reason: 'content_length_invalid', message: `Content-Length ${quote(bad)} is not a valid length` };
  if (new Set(values.map(Number)).size > 1) {
    return { reason: 'content_length_conflict', message: `conflicting Content-Length values ${quote(contentLengths.join(', '))}` };
  }
  return undefined;
}
