import { CauseLog, type Logger } from '@cyclone-sse/common';

const seen = new CauseLog(10_000);

/**
 * Logs once per client IP (per process, bounded) that it hit --max-connections-per-ip. When the
 * request carried X-Forwarded-For that was not trusted (the resolved IP is the peer itself), the
 * likely cause is a proxy in front whose address every client shares: the line says so.
 */
export function warnPerIpLimit(logger: Logger, limit: number, ip: string, peer: string, forwardedFor: string | undefined): void {
  if (!seen.first(ip)) return;
  const untrustedProxy = forwardedFor !== undefined && ip === peer;
  logger.warn(
    untrustedProxy
      ? 'per-IP stream limit reached by an address that sends X-Forwarded-For: if it is your proxy, set --trusted-proxies (every client behind it shares its address)'
      : 'per-IP stream limit reached; further streams from this address end at once with a retry: hint',
    { event: 'per_ip_limit', ip, limit, untrustedProxy },
  );
}
