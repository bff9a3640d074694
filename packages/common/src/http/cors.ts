/**
 * CORS: `*` for anonymous use by default; with an allowlist, only listed origins are echoed,
 * with credentials and `Vary: Origin`. The literal `null` origin is never allowed.
 */
export type HeaderList = ReadonlyArray<readonly [string, string]>;

export class CorsPolicy {
  private readonly any: boolean;
  private readonly allowed: Set<string>;
  private static readonly WILDCARD: HeaderList = [['Access-Control-Allow-Origin', '*']];
  private static readonly VARY: HeaderList = [['Vary', 'Origin']];
  private readonly perOrigin = new Map<string, HeaderList>();

  constructor(origins: readonly string[]) {
    this.any = origins.includes('*');
    this.allowed = new Set(origins.filter((o) => o !== '*' && o !== 'null').map((o) => o.replace(/\/$/, '')));
  }

  /** Headers to add to any response for a request carrying `origin` (may be empty). */
  headers(origin: string): HeaderList {
    if (this.allowed.size > 0 && origin && this.allowed.has(origin)) {
      // One shared list per allowed origin (the set is bounded by the allowlist).
      let h = this.perOrigin.get(origin);
      if (!h) {
        h = [
          ['Access-Control-Allow-Origin', origin],
          ['Access-Control-Allow-Credentials', 'true'],
          ['Vary', 'Origin'],
        ];
        this.perOrigin.set(origin, h);
      }
      return h;
    }
    if (this.any) return CorsPolicy.WILDCARD;
    return CorsPolicy.VARY;
  }

  /** Extra headers for a preflight (OPTIONS) answer. */
  preflight(origin: string, methods: string): HeaderList {
    return [
      ...this.headers(origin),
      ['Access-Control-Allow-Methods', methods],
      ['Access-Control-Allow-Headers', 'Authorization, Content-Type, Last-Event-ID, X-Requested-With, Cache-Control'],
      ['Access-Control-Max-Age', '600'],
    ];
  }
}
