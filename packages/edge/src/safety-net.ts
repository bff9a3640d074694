import { errorFields, type Logger } from '@cyclone-sse/common';

/**
 * The process-level net under the hot-path containment (hub.ts): whatever still escapes is logged
 * with its stack and counted.
 *
 * - An uncaught exception leaves the process in an unknown state (a half-updated channel index,
 *   a write queue out of step with its byte count): keeping it running could serve wrong data
 *   for hours. So the process exits (code 70) after the log line is flushed; the orchestrator
 *   restarts it and every client resumes by Last-Event-ID without a gap.
 * - An unhandled promise rejection is a forgotten `catch` on an async path: no synchronous state
 *   was cut in half by it, so it is logged and counted, and the process keeps serving.
 */
export function installSafetyNet(logger: Logger, count: (kind: 'uncaught_exception' | 'unhandled_rejection') => void): void {
  process.on('unhandledRejection', (reason) => {
    count('unhandled_rejection');
    logger.error('unhandled promise rejection', { event: 'unhandled_rejection', ...errorFields(reason) });
  });
  process.on('uncaughtException', (err) => {
    count('uncaught_exception');
    logger.error('uncaught exception: exiting (clients resume on restart)', { event: 'uncaught_exception', ...errorFields(err) });
    process.exitCode = 70;
    setTimeout(() => process.exit(70), 100).unref();
  });
}
