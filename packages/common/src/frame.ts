import { HubError } from './errors.js';

/**
 * The SSE frame codec. A frame is built once (by whoever sequences the message) and written
 * verbatim by every edge:
 *
 *   id: <epoch>-<seq>\n
 *   event: <type>\n        (only when given)
 *   data: <line>\n         (one per line of the payload; CR, LF and CRLF all split)
 *   \n
 */

const FORBIDDEN_FIELD_CHARS = /[\r\n\0]/;
const LINE_BREAK = /\r\n|\r|\n/;

/** Throws INVALID_EVENT when an `event:` value could break the framing. */
export function assertEventName(event: string): void {
  if (event.length === 0 || event.length > 255 || FORBIDDEN_FIELD_CHARS.test(event)) {
    throw new HubError('INVALID_EVENT', 'event must be 1-255 characters without CR, LF or NUL');
  }
}

/** Throws INVALID_ID when an id (idempotency key or event id) is unusable. */
export function assertIdValue(id: string, what = 'id'): void {
  if (id.length === 0 || id.length > 255 || FORBIDDEN_FIELD_CHARS.test(id)) {
    throw new HubError('INVALID_ID', `${what} must be 1-255 characters without CR, LF or NUL`);
  }
}

/** Everything after the `id:` line: optional `event:` line, `data:` lines and the blank line. */
export function encodeFrameBody(data: string, event?: string): string {
  let out = '';
  if (event !== undefined) {
    assertEventName(event);
    out += `event: ${event}\n`;
  }
  for (const line of data.split(LINE_BREAK)) out += `data: ${line}\n`;
  return out + '\n';
}

/** A complete frame from its id and the prebuilt body. */
export function frameWithId(id: string, body: string): string {
  return `id: ${id}\n${body}`;
}

export function encodeFrame(id: string, data: string, event?: string): string {
  return frameWithId(id, encodeFrameBody(data, event));
}

/** `retry:` field, used as the first bytes of a stream and as a hint before ending one. */
export function retryField(ms: number): string {
  return `retry: ${Math.max(0, Math.round(ms))}\n`;
}

export const HEARTBEAT_FRAME = ':\n\n';
export const OPEN_COMMENT = ':ok\n\n';
