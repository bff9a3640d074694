/** What a log line says about an error: never `{}` (winston serialises an Error field as `{}`). */
export interface ErrorDetails {
  message: string;
  name?: string;
  /** The catalogue code of a HubError, a system error's `ECONNREFUSED`, an AMQP reply code… */
  code?: string | number;
  stack?: string;
  /** The error this one wraps (`new HubError(…, { cause })`), two levels deep at most. */
  cause?: ErrorDetails;
}

function details(err: unknown, depth: number): ErrorDetails {
  if (!(err instanceof Error)) return { message: String(err) };
  // A connection refused on every address (`net` with autoSelectFamily) is an AggregateError
  // with an empty message: name the inner errors instead.
  const inner =
    err instanceof AggregateError ? (err.errors as unknown[]).map((e) => (e instanceof Error ? e.message : String(e))).join('; ') : '';
  const out: ErrorDetails = { message: err.message || inner, name: err.name };
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string' || typeof code === 'number') out.code = code;
  if (err.stack) out.stack = err.stack;
  if (err.cause !== undefined && depth < 2) out.cause = details(err.cause, depth + 1);
  return out;
}

/** The details of an error for the `err` field of a log line. */
export function errorDetails(err: unknown): ErrorDetails {
  return details(err, 0);
}

/**
 * The one way to log an error: `logger.warn('…', { event: 'x_failed', ...errorFields(err) })`
 * puts message, code and stack under the field `err`.
 */
export function errorFields(err: unknown): { err: ErrorDetails } {
  return { err: details(err, 0) };
}
