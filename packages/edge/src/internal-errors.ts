import { errorDetails, type Counter, type Logger } from '@cyclone-sse/common';

/** Where on the hot path an unexpected exception was caught (a metric label: a small fixed set). */
export type ErrorSite = 'fanout' | 'flush' | 'writable' | 'tick' | 'replay' | 'process';

export const ERROR_SITES: readonly ErrorSite[] = ['fanout', 'flush', 'writable', 'tick', 'replay', 'process'];

/** Distinct causes remembered for "log once"; past it the memory starts over (logs again). */
const MAX_CAUSES = 256;

/**
 * Counts every contained exception (cyclone_sse_edge_internal_errors_total{where}) and logs each
 * distinct cause (site + error name + message) once, with its stack: a failure repeated on every
 * message must not flood the log, and must not go unnoticed either.
 */
export class InternalErrors {
  private readonly seen = new Set<string>();

  constructor(
    private readonly counter: Counter<'where'>,
    private readonly logger: Logger,
  ) {}

  report(where: ErrorSite, err: unknown): void {
    this.counter.inc({ where });
    const fields = errorDetails(err);
    const key = `${where}\u0000${fields.name ?? ''}\u0000${fields.message}`;
    if (this.seen.has(key)) return;
    if (this.seen.size >= MAX_CAUSES) this.seen.clear();
    this.seen.add(key);
    this.logger.error('internal error contained', { event: 'internal_error', where, err: fields });
  }
}
