/**
 * Channel patterns in tokens and options: a literal name, or a name with `*` wildcards where each
 * `*` matches ONE OR MORE characters (so `news.*` grants `news.sport` but not `news` or `news.`).
 * A lone `*` matches every channel.
 */
export class ChannelPatterns {
  private readonly exact = new Set<string>();
  private readonly wild: RegExp[] = [];

  constructor(patterns: Iterable<string>) {
    for (const p of patterns) {
      if (typeof p !== 'string' || p === '') continue;
      if (!p.includes('*')) this.exact.add(p);
      else this.wild.push(new RegExp(`^${p.split('*').map(escape).join('.+')}$`, 's'));
    }
  }

  matches(channel: string): boolean {
    return this.exact.has(channel) || this.wild.some((re) => re.test(channel));
  }

  get empty(): boolean {
    return this.exact.size === 0 && this.wild.length === 0;
  }
}

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
