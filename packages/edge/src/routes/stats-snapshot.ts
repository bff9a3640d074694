import type { ChannelPatterns } from '@cyclone-sse/common';

/** Which entries a request may see. */
export type StatsView =
  | { kind: 'all' } // the internal port: every channel
  | { kind: 'open' } // anonymous: channels that need no token
  | { kind: 'token'; grants: ChannelPatterns }; // open channels plus those the token may subscribe to

export interface StatsPage {
  entries: [string, number][];
  /** The `after` value of the next page, when there is one. */
  next: string | undefined;
}

/**
 * A sorted, immutable copy of the channel counts, built once and shared by every /stats request
 * until it is refreshed (so N requests cost one sort, not N serialisations of every channel).
 * Order: channel name, by UTF-16 code units (a stable key for `after` paging).
 */
export class StatsSnapshot {
  private readonly names: string[];
  private readonly counts: number[];
  private readonly guarded: Uint8Array;
  /** Indices of the entries that need no token, in order. */
  private readonly open: Uint32Array;
  private firstOpenPage: { limit: number; json: string; next: string | undefined } | undefined;

  constructor(
    counts: Iterable<[string, number]>,
    needsToken: (channel: string) => boolean,
    readonly builtAt: number,
  ) {
    const entries = [...counts].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    this.names = entries.map((e) => e[0]);
    this.counts = entries.map((e) => e[1]);
    this.guarded = new Uint8Array(entries.length);
    const open: number[] = [];
    for (let i = 0; i < entries.length; i++) {
      if (needsToken(this.names[i]!)) this.guarded[i] = 1;
      else open.push(i);
    }
    this.open = Uint32Array.from(open);
  }

  get size(): number {
    return this.names.length;
  }

  /** Up to `limit` visible entries with a name greater than `after`. */
  page(view: StatsView, after: string | undefined, limit: number): StatsPage {
    if (view.kind === 'all') {
      const from = after === undefined ? 0 : this.firstAfter(after);
      const to = Math.min(this.names.length, from + limit);
      const entries: [string, number][] = [];
      for (let i = from; i < to; i++) entries.push([this.names[i]!, this.counts[i]!]);
      return { entries, next: to < this.names.length ? this.names[to - 1] : undefined };
    }
    if (view.kind === 'open') {
      const from = after === undefined ? 0 : this.firstOpenAfter(after);
      const to = Math.min(this.open.length, from + limit);
      const entries: [string, number][] = [];
      for (let k = from; k < to; k++) {
        const i = this.open[k]!;
        entries.push([this.names[i]!, this.counts[i]!]);
      }
      return { entries, next: to < this.open.length ? entries.at(-1)?.[0] : undefined };
    }
    // A token view scans from `after` (its grants are patterns): linear in the channels passed.
    const entries: [string, number][] = [];
    for (let i = after === undefined ? 0 : this.firstAfter(after); i < this.names.length; i++) {
      if (this.guarded[i] && !view.grants.matches(this.names[i]!)) continue;
      if (entries.length === limit) return { entries, next: entries.at(-1)![0] };
      entries.push([this.names[i]!, this.counts[i]!]);
    }
    return { entries, next: undefined };
  }

  /** The anonymous first page as JSON, serialised once per snapshot (the common request). */
  firstOpenPageJson(limit: number): { json: string; next: string | undefined } {
    if (this.firstOpenPage?.limit !== limit) {
      const p = this.page({ kind: 'open' }, undefined, limit);
      this.firstOpenPage = { limit, json: JSON.stringify(p.entries), next: p.next };
    }
    return this.firstOpenPage;
  }

  private firstAfter(after: string): number {
    let lo = 0;
    let hi = this.names.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.names[mid]! <= after) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  private firstOpenAfter(after: string): number {
    let lo = 0;
    let hi = this.open.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.names[this.open[mid]!]! <= after) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}
