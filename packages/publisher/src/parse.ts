import {
  HubError,
  assertIdValue,
  assertPublishableEvent,
  spaceSeparators,
  stringifyDataValue,
  validateChannel,
  type PublishInput,
} from '@cyclone-sse/common';

export interface ParseLimits {
  maxChannelLength: number;
  maxBatch: number;
  /** Channels one message may name, as written (duplicates are removed afterwards). */
  maxChannelsPerPublish: number;
  /** Deepest JSON nesting accepted (defaults to 32). */
  maxJsonDepth?: number;
}

/** Nesting depth of a JSON text, counted without parsing (strings skipped). */
export function jsonDepth(text: string): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 92)
        i++; // backslash: skip the escaped character
      else if (c === 34) inString = false;
    } else if (c === 34) inString = true;
    else if (c === 91 || c === 123) max = Math.max(max, ++depth);
    else if (c === 93 || c === 125) depth--;
  }
  return max;
}

/**
 * False when `text` has at most `max` opening brackets (strings included): it cannot nest deeper
 * than `max`. Counted with indexOf (native), so the usual body skips jsonDepth's loop in JS.
 */
function mayNestDeeper(text: string, max: number): boolean {
  let count = 0;
  for (let i = text.indexOf('{'); i !== -1; i = text.indexOf('{', i + 1)) if (++count > max) return true;
  for (let i = text.indexOf('['); i !== -1; i = text.indexOf('[', i + 1)) if (++count > max) return true;
  return false;
}

// The seed replaced these control characters with spaces; CR/LF are kept (they split data lines).
// VT and FF (and, below, U+0085, U+2028, U+2029) are treated the same way: some SSE clients split
// lines on them (docs/security.md, "Publishing").
const SEED_CONTROL = /[\u0000-\u0008\u000b\u000c\u000e-\u001f]/g;

/** Seed form contract: `channel` (repeatable), `message`, optional `event` and `id`. */
export function parseForm(params: URLSearchParams, limits: ParseLimits): PublishInput {
  const channels = params.getAll('channel').filter((c) => c !== '');
  const message = spaceSeparators((params.get('message') ?? '').replace(SEED_CONTROL, ' ')).trim();
  if (message === '') throw new HubError('MISSING_MESSAGE', 'the message field is required');
  if (channels.length === 0) throw new HubError('MISSING_CHANNEL', 'at least one channel field is required');
  const input: PublishInput = { channels: validateChannels(channels, limits), data: message };
  const event = params.get('event');
  if (event) {
    assertPublishableEvent(event);
    input.event = event;
  }
  const id = params.get('id');
  if (id) {
    assertIdValue(id, 'id (idempotency key)');
    input.idempotencyKey = id;
  }
  return input;
}

/** JSON contract: one object, or an array of objects applied in order. */
export function parseJson(body: Buffer, limits: ParseLimits): { inputs: PublishInput[]; batch: boolean } {
  let doc: unknown;
  const text = body.toString('utf8');
  const maxDepth = limits.maxJsonDepth ?? 32;
  if (mayNestDeeper(text, maxDepth) && jsonDepth(text) > maxDepth)
    throw new HubError('INVALID_BODY', `JSON nesting deeper than ${maxDepth} levels`);
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new HubError('INVALID_BODY', `body is not valid JSON: ${(err as Error).message}`);
  }
  if (Array.isArray(doc)) {
    if (doc.length === 0) throw new HubError('INVALID_BODY', 'batch must not be empty');
    if (doc.length > limits.maxBatch)
      throw new HubError('INVALID_BODY', `batch has ${doc.length} messages; the limit is ${limits.maxBatch}`);
    return { inputs: doc.map((item, i) => parseItem(item, limits, `[${i}]`)), batch: true };
  }
  return { inputs: [parseItem(doc, limits, '')], batch: false };
}

function parseItem(item: unknown, limits: ParseLimits, at: string): PublishInput {
  if (item === null || typeof item !== 'object' || Array.isArray(item)) {
    throw new HubError('INVALID_BODY', `${at || 'body'} must be a JSON object`);
  }
  const o = item as Record<string, unknown>;
  const where = (f: string) => (at ? `${at}.${f}` : f);
  let channels: unknown[];
  if (o.channels !== undefined) {
    if (!Array.isArray(o.channels)) throw new HubError('INVALID_CHANNEL', `${where('channels')} must be an array of strings`);
    channels = o.channels;
  } else if (o.channel !== undefined) {
    channels = [o.channel];
  } else {
    throw new HubError('MISSING_CHANNEL', `${where('channel')} or ${where('channels')} is required`);
  }
  if (channels.length === 0) throw new HubError('MISSING_CHANNEL', `${where('channels')} must not be empty`);
  for (const c of channels) {
    if (typeof c !== 'string') throw new HubError('INVALID_CHANNEL', `${where('channels')} must contain strings`);
  }
  const raw = o.data !== undefined ? o.data : o.message;
  if (raw === undefined || raw === null) throw new HubError('MISSING_MESSAGE', `${where('data')} is required`);
  // A JSON value is written as JSON text with U+2028/U+2029/U+0085 escaped (lossless); a string
  // is written verbatim, and refused by the broker if it holds such a separator.
  const data = typeof raw === 'string' ? raw : stringifyDataValue(raw);
  const input: PublishInput = { channels: validateChannels(channels as string[], limits), data };
  if (o.event !== undefined) {
    if (typeof o.event !== 'string') throw new HubError('INVALID_EVENT', `${where('event')} must be a string`);
    assertPublishableEvent(o.event);
    input.event = o.event;
  }
  if (o.id !== undefined) {
    // Strings only: a JSON number loses precision past 2^53 (two keys would collide).
    if (typeof o.id !== 'string') throw new HubError('INVALID_ID', `${where('id')} (idempotency key) must be a string`);
    assertIdValue(o.id, `${where('id')} (idempotency key)`);
    input.idempotencyKey = o.id;
  }
  return input;
}

function validateChannels(channels: string[], limits: ParseLimits): string[] {
  // Counted as written, before duplicates are removed (by the broker): a request naming one
  // channel 20 000 times is refused here, before any name is even validated.
  if (channels.length > limits.maxChannelsPerPublish) {
    throw new HubError(
      'TOO_MANY_CHANNELS',
      `${channels.length} channels named; the limit is ${limits.maxChannelsPerPublish} (--max-channels-per-publish)`,
    );
  }
  // The seed did not trim publish channels; a name is validated as given.
  return channels.map((c) => validateChannel(c, limits.maxChannelLength));
}
