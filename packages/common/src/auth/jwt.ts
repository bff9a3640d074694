import { readFileSync, existsSync } from 'node:fs';
import { createPublicKey, createSecretKey, type KeyObject } from 'node:crypto';
import { jwtVerify, errors, type JWTPayload } from 'jose';
import { HubError } from '../errors.js';
import { ChannelPatterns } from './patterns.js';

export interface TokenOptions {
  /** HMAC secret, or the path of a PEM public key (or the PEM text itself). */
  key: string;
  algorithms: readonly string[];
  audience?: string;
  issuer?: string;
  /**
   * Accept tokens without an `exp` claim (`--allow-tokens-without-exp`). Off by default: a
   * subscriber stream opened with such a token never has to end, and a leaked token (publisher
   * or subscriber) can never be revoked by waiting.
   */
  allowWithoutExp?: boolean;
}

export interface VerifiedToken {
  channels: ChannelPatterns;
  /** Expiry in ms since the Unix epoch, if the token has one. */
  expiresAt: number | undefined;
  subject: string | undefined;
}

const HMAC = ['HS256', 'HS384', 'HS512'];

/**
 * Verifies JWTs for publishers or subscribers. The key never comes from the token (no jwk/jku/
 * x5u), `alg: none` is never accepted, and the algorithm list is narrowed to the key's type, so
 * an RS256 public key can never be used as an HMAC secret (HS/RS confusion).
 *
 * Claims: `exp` (required unless `allowWithoutExp`), `nbf` (checked, 5 s tolerance), `aud`/`iss`
 * when configured, and the channel
 * patterns the holder may use — `channels` (array of patterns), or Mercure-style
 * `mercure.subscribe` / `mercure.publish` arrays are NOT read: one claim, one meaning.
 */
export class TokenVerifier {
  private readonly key: KeyObject;
  private readonly algorithms: string[];

  constructor(
    private readonly options: TokenOptions,
    what: string,
  ) {
    const pem = options.key.includes('-----BEGIN') ? options.key : existsSync(options.key) ? readFileSync(options.key, 'utf8') : undefined;
    if (pem !== undefined) {
      this.key = createPublicKey(pem);
      this.algorithms = options.algorithms.filter((a) => !HMAC.includes(a) && a !== 'none');
    } else {
      if (Buffer.byteLength(options.key) < 32) throw new Error(`${what}: an HMAC key must be at least 32 bytes`);
      this.key = createSecretKey(Buffer.from(options.key, 'utf8'));
      this.algorithms = options.algorithms.filter((a) => HMAC.includes(a));
    }
    if (this.algorithms.length === 0) throw new Error(`${what}: no accepted algorithm fits the key type`);
  }

  /** Verifies `token`; throws HubError UNAUTHORIZED (with a reason safe to show) when invalid. */
  async verify(token: string): Promise<VerifiedToken> {
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, this.key, {
        algorithms: this.algorithms,
        audience: this.options.audience || undefined,
        issuer: this.options.issuer || undefined,
        clockTolerance: 5,
      }));
    } catch (err) {
      throw new HubError('UNAUTHORIZED', tokenProblem(err), { cause: err });
    }
    if (typeof payload.exp !== 'number' && !this.options.allowWithoutExp) {
      throw new HubError(
        'UNAUTHORIZED',
        'token has no exp claim: tokens without an expiry are refused (--allow-tokens-without-exp accepts them)',
      );
    }
    const channels = Array.isArray(payload.channels) ? payload.channels.filter((c): c is string => typeof c === 'string') : [];
    return {
      channels: new ChannelPatterns(channels),
      expiresAt: typeof payload.exp === 'number' ? payload.exp * 1000 : undefined,
      subject: typeof payload.sub === 'string' ? payload.sub : undefined,
    };
  }
}

export function isExpiredToken(err: unknown): boolean {
  return err instanceof HubError && err.cause instanceof errors.JWTExpired;
}

function tokenProblem(err: unknown): string {
  if (err instanceof errors.JWTExpired) return 'token expired';
  if (err instanceof errors.JWTClaimValidationFailed) return `token claim ${err.claim} rejected`;
  if (err instanceof errors.JOSEAlgNotAllowed) return 'token algorithm not accepted';
  if (err instanceof errors.JWSSignatureVerificationFailed) return 'token signature invalid';
  return 'token invalid';
}
