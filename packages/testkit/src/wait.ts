import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Polls `predicate` (sync or async) every `intervalMs` until it returns a truthy value, which is
 * returned; rejects after `timeoutMs` with a message naming `what`. An exception from the
 * predicate counts as "not yet" (its last message is reported on timeout).
 */
export async function waitFor<T>(
  predicate: () => T | Promise<T>,
  timeoutMs = 5000,
  what = 'condition',
  intervalMs = 10,
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await predicate();
      if (value) return value;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() >= deadline) {
      const detail = lastError instanceof Error ? ` (last error: ${lastError.message})` : '';
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${detail}`);
    }
    await sleep(intervalMs);
  }
}
