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

/**
 * Characters that are not line breaks to an SSE parser (which splits on CR and LF only) but are
 * to Python's `str.splitlines()` and similar "universal newline" readers: VT, FF, FS, GS, RS,
 * NEL (U+0085), LINE SEPARATOR (U+2028), PARAGRAPH SEPARATOR (U+2029). A client reading the
 * stream with such a reader would see a forged field after one of them, so the hub never writes
 * them into an `event:` or `data:` line (docs/security.md, "Publishing").
 */
const SPLITLINES_SEPARATORS = /[\u000b\u000c\u001c-\u001e\u0085\u2028\u2029]/;
const SPLITLINES_SEPARATORS_G = /[\u000b\u000c\u001c-\u001e\u0085\u2028\u2029]/g;

/** `U+2028` style name of a character, for error messages. */
function codePointName(c: string): string {
  return `U+${(c.codePointAt(0) ?? 0).toString(16).toUpperCase().padStart(4, '0')}`;
}

/** Throws INVALID_EVENT when an `event:` value could break the framing (for any SSE reader). */
export function assertEventName(event: string): void {
  if (event.length === 0 || event.length > 255 || FORBIDDEN_FIELD_CHARS.test(event)) {
    throw new HubError('INVALID_EVENT', 'event must be 1-255 characters without CR, LF or NUL');
  }
  const sep = SPLITLINES_SEPARATORS.exec(event);
  if (sep) throw new HubError('INVALID_EVENT', `event must not contain the line separator ${codePointName(sep[0])}`);
}

/**
 * Event names the hub sends itself, or may in a future version: `reset`, `token-expired` and
 * everything starting with `cyclone-` (any case). A publisher sending one could make browser
 * clients close for good (the client library treats them as hub control events).
 */
export function isReservedEvent(event: string): boolean {
  return event === 'reset' || event === 'token-expired' || event.toLowerCase().startsWith('cyclone-');
}

/** Throws RESERVED_EVENT for an event name publishers may not use (see `isReservedEvent`). */
export function assertPublishableEvent(event: string): void {
  assertEventName(event);
  if (isReservedEvent(event)) {
    throw new HubError('RESERVED_EVENT', `event ${JSON.stringify(event)} is reserved for the hub (reset, token-expired, cyclone-*)`);
  }
}

/** Throws INVALID_DATA naming the first splitlines-only separator in publish data. */
export function assertDataSeparators(data: string): void {
  const sep = SPLITLINES_SEPARATORS.exec(data);
  if (sep) {
    throw new HubError(
      'INVALID_DATA',
      `data contains the line separator ${codePointName(sep[0])}, which some SSE clients split lines on; send data as a JSON value (the hub escapes it) or remove it`,
    );
  }
}

/**
 * JSON text of a publish `data` value with U+2028, U+2029 and U+0085 written as \uXXXX escapes:
 * the same JSON value, without a character `splitlines()` readers break lines on (the other
 * separators are control characters, which JSON.stringify already escapes).
 */
export function stringifyDataValue(value: unknown): string {
  return JSON.stringify(value).replace(SPLITLINES_SEPARATORS_G, (c) => `\\u${(c.codePointAt(0) ?? 0).toString(16).padStart(4, '0')}`);
}

/** Replaces every splitlines-only separator with a space (the seed form contract's treatment of controls). */
export function spaceSeparators(text: string): string {
  return text.replace(SPLITLINES_SEPARATORS_G, ' ');
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
