import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * Shared-secret check in constant time: both values are reduced to HMAC-SHA256 digests under a
 * per-process key, so the comparison never depends on the lengths or on a common prefix.
 */
export class SecretCheck {
  private readonly key = randomBytes(32);
  private readonly expected: Buffer | undefined;

  constructor(secret: string) {
    this.expected = secret === '' ? undefined : this.digest(secret);
  }

  get required(): boolean {
    return this.expected !== undefined;
  }

  matches(candidate: string | undefined): boolean {
    if (this.expected === undefined) return true;
    if (candidate === undefined) return false;
    return timingSafeEqual(this.digest(candidate), this.expected);
  }

  private digest(value: string): Buffer {
    return createHmac('sha256', this.key).update(value, 'utf8').digest();
  }
}
