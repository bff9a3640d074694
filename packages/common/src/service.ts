import type { Logger } from './log/logger.js';
import { errorFields } from './log/error-fields.js';

/** Something a binary runs: started in order, stopped in reverse order on SIGTERM/SIGINT. */
export interface Service {
  readonly name: string;
  start(): Promise<void>;
  /** Graceful stop (drain); must finish on its own. */
  stop(): Promise<void>;
}

/**
 * Starts services in order; on SIGTERM or SIGINT stops them in reverse order and exits 0.
 * A failure to start logs the reason and exits 1.
 */
export async function runServices(services: Service[], logger: Logger): Promise<void> {
  const started: Service[] = [];
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info('shutting down', { event: 'shutdown', signal });
    for (const s of [...started].reverse()) {
      try {
        await s.stop();
      } catch (err) {
        logger.error('stop failed', { event: 'stop_failed', service: s.name, ...errorFields(err) });
      }
    }
    logger.info('stopped', { event: 'stopped' });
    // Give winston a moment to flush, then leave.
    setTimeout(() => process.exit(0), 50).unref();
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
  try {
    for (const s of services) {
      await s.start();
      started.push(s);
    }
  } catch (err) {
    logger.error('start failed', { event: 'start_failed', ...errorFields(err) });
    const code = (err as { code?: unknown }).code;
    process.stderr.write(`cyclone-sse: ${typeof code === 'string' ? `${code}: ` : ''}${(err as Error).message}\n`);
    process.exit(1);
  }
}
