import { bearerToken, malformedRequests, type RequestInfo } from '@cyclone-sse/common';

/**
 * The value of cookie `name`: undefined when absent, `{ malformed }` when it is not valid
 * percent-encoding (a sibling subdomain can set any bytes; that must never become a 500).
 */
export function cookieValue(header: string | undefined, name: string): string | { malformed: string } | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const i = part.indexOf('=');
    if (i <= 0 || part.slice(0, i).trim() !== name) continue;
    let raw = part.slice(i + 1).trim();
    if (raw.length >= 2 && raw.startsWith('"') && raw.endsWith('"')) raw = raw.slice(1, -1); // RFC 6265 quoted value
    try {
      return decodeURIComponent(raw);
    } catch {
      return { malformed: `the ${name} cookie is malformed (not valid percent-encoding)` };
    }
  }
  return undefined;
}

/** A request's subscriber token: `token` query parameter, then `Authorization: Bearer`, then the cookie. */
export function requestToken(
  info: RequestInfo,
  params: URLSearchParams,
  tokenCookie: string,
): { token: string | undefined; tokenProblem?: string } {
  const bearer = bearerToken(info.headers.authorization);
  const direct = params.get('token') || bearer;
  if (direct) return { token: direct };
  const cookie = cookieValue(info.headers.cookie, tokenCookie);
  if (typeof cookie === 'object') {
    malformedRequests.inc({ reason: 'malformed_cookie' });
    return { token: undefined, tokenProblem: cookie.malformed };
  }
  return { token: cookie || undefined };
}
