import { HubError } from '../errors.js';

/**
 * The one 503 of the broker. Its text is fixed: Redis and ioredis error text (addresses,
 * internals) never reaches a client; the cause is kept for the log, written once per state
 * change by the broker (PublishFailureLog).
 */
export const BROKER_UNAVAILABLE_MESSAGE =
  'the message broker is unavailable; retry later (a retry with the same idempotency key is never applied twice)';

/** `err` as the broker's 503 (a HubError is passed on as it is). */
export function unavailable(err: unknown): HubError {
  if (err instanceof HubError) return err;
  return new HubError('BROKER_UNAVAILABLE', BROKER_UNAVAILABLE_MESSAGE, { cause: err });
}

/** The promise's value, or its failure as the broker's 503. */
export async function unavailableOnError<T>(promise: Promise<T>): Promise<T> {
  try {
    return await promise;
  } catch (err) {
    throw unavailable(err);
  }
}
