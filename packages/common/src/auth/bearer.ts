/**
 * The token of an `Authorization: Bearer <token>` header (RFC 6750 §2.1), the one parser of the
 * publish API's shared secret and the subscriber's JWT. The scheme is case-insensitive
 * (`bearer x`), separated from the token by spaces or tabs (`Bearer  x`); surrounding whitespace
 * is ignored. Undefined for no header, another scheme, an empty token, or a token that itself
 * contains whitespace (`Bearer a b` is not a token: neither a JWT nor an RFC 6750 b64token).
 */
export function bearerToken(header: string | undefined): string | undefined {
  if (!header) return undefined;
  return /^[ \t]*bearer[ \t]+([^\s]+)[ \t]*$/i.exec(header)?.[1];
}
