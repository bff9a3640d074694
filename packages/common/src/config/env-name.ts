/** The prefix of every environment variable the binaries read (`CYCLONE_SSE_PORT`, …). */
export const ENV_PREFIX = 'CYCLONE_SSE';

/**
 * The environment variable of an option: `redis-url` → `CYCLONE_SSE_REDIS_URL` (yargs' `.env()`
 * reads the same name; the options table in the docs prints it).
 */
export function envName(option: string): string {
  return `${ENV_PREFIX}_${option.replace(/-/g, '_').toUpperCase()}`;
}
