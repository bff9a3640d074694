/**
 * Remembers causes already logged, so a flood of identical bad requests logs one line per cause
 * (the first), not one per request. Bounded: past `max` distinct causes nothing new is
 * remembered and `first` answers false (the caller logs at debug instead).
 */
export class CauseLog {
  private readonly seen = new Set<string>();

  constructor(private readonly max = 1000) {}

  /** True the first time `key` is seen. */
  first(key: string): boolean {
    if (this.seen.has(key) || this.seen.size >= this.max) return false;
    this.seen.add(key);
    return true;
  }
}

/**
 * A cause key for an error message: quoted parts (channel names, header values) and numbers are
 * blanked, so "channel \"a\"" and "channel \"b\"" are one cause.
 */
export function causeKey(code: string, message: string): string {
  return `${code}:${message
    .replace(/"(?:[^"\\]|\\.)*"/g, '"…"')
    .replace(/\d+/g, 'N')
    .slice(0, 200)}`;
}
