import { setTimeout as sleep } from 'node:timers/promises';

/** Exponential backoff with equal jitter: attempt 0 → [initial/2, initial], capped at maxMs. */
export function backoffDelay(attempt: number, initialMs: number, maxMs: number): number {
  const base = Math.min(maxMs, initialMs * 2 ** Math.min(attempt, 30));
  return Math.round(base / 2 + (Math.random() * base) / 2);
}

/** Sleeps `ms`; resolves early (without throwing) when `signal` aborts. */
export async function pause(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return;
  await sleep(ms, undefined, { signal }).catch(() => {});
}
