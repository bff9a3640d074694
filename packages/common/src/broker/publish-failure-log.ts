import { errorFields } from '../log/error-fields.js';
import type { Logger } from '../log/logger.js';

/**
 * Logs a broker's failing publishes once per state change, not per retry: the
 * first failure at warn with its cause, the next success at info.
 */
export class PublishFailureLog {
  private failing = false;

  /** `closed`: a closing broker's failures are expected and not logged. */
  constructor(
    private readonly log: Logger,
    private readonly closed: () => boolean,
  ) {}

  failed(err: unknown): void {
    if (this.failing || this.closed()) return;
    this.failing = true;
    this.log.warn('publish failed; answering 503 until a publish succeeds', { event: 'redis_publish_failed', ...errorFields(err) });
  }

  /** Called after every successful publish: one boolean test unless a failure was logged. */
  recovered(): void {
    if (!this.failing) return;
    this.failing = false;
    this.log.info('publishing again', { event: 'redis_publish_recovered' });
  }
}
