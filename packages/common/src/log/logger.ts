import winston from 'winston';

export type Logger = winston.Logger;

/** JSON lines on stdout. Use `logger.child({ component })` and a stable snake_case `event`. */
export function createLogger(level = 'info', defaults: Record<string, unknown> = {}): Logger {
  return winston.createLogger({
    level,
    defaultMeta: defaults,
    format: winston.format.combine(winston.format.timestamp(), winston.format.errors({ stack: true }), winston.format.json()),
    transports: [new winston.transports.Console({ stderrLevels: [] })],
  });
}
