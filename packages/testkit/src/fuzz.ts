import fc from 'fast-check';
import { HubError } from '@cyclone-sse/common';

/** Runs per property (FUZZ_RUNS, default 2000). */
export const FUZZ_RUNS = Number(process.env.FUZZ_RUNS ?? 2000);

/**
 * Calls `fn`; a 4xx HubError (refused input) becomes `undefined`, anything else thrown (another
 * error, a 5xx) fails the property.
 */
export function onlyHubErrors<T>(fn: () => T): T | undefined {
  try {
    return fn();
  } catch (err) {
    if (!(err instanceof HubError) || err.statusCode >= 500) throw err;
    return undefined;
  }
}

/** Any string of code points, up to 300. */
export const fuzzText = fc.string({ unit: 'binary', maxLength: 300 });

/** Strings rich in line breaks and SSE field starts (`id: `, `event: `, `data: `, `:`). */
export const fuzzLines = fc.oneof(
  fuzzText,
  fc
    .array(fc.oneof(fuzzText, fc.constantFrom('\n', '\r', '\r\n', 'id: 1', 'event: x', ':', 'data: y')), { maxLength: 20 })
    .map((a) => a.join('')),
);
