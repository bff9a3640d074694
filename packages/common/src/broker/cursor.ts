/**
 * Message ids are `<epoch>-<seq>`: the epoch is a random token created with the first sequence
 * number (a new one means history was lost), seq a cluster-wide increasing integer.
 */
export interface Cursor {
  epoch: string;
  seq: number;
  /** The partition this position is in (Redis Cluster; undefined means 0, the only one). */
  partition?: number;
}

const EPOCH = /^[0-9a-z]{1,32}$/;

export function formatId(epoch: string, seq: number): string {
  return `${epoch}-${seq}`;
}

/** Parses `<epoch>-<seq>`; returns undefined for anything malformed. */
export function parseId(id: string): Cursor | undefined {
  const dash = id.lastIndexOf('-');
  if (dash <= 0) return undefined;
  const epoch = id.slice(0, dash);
  const digits = id.slice(dash + 1);
  if (!EPOCH.test(epoch) || !/^\d{1,15}$/.test(digits)) return undefined;
  const seq = Number(digits);
  if (!Number.isSafeInteger(seq)) return undefined;
  return { epoch, seq };
}

// Random bytes for newEpoch, drawn 1 KiB at a time: every publish takes a candidate epoch, and a
// getRandomValues call (with its BigInts) per publish showed in the publisher's profile.
const pool = new Uint8Array(1020);
let poolAt = pool.length;

export function newEpoch(): string {
  // 48 random bits in base 36: short, url-safe, no dash (48 bits are exact in a double).
  if (poolAt === pool.length) {
    globalThis.crypto.getRandomValues(pool);
    poolAt = 0;
  }
  let n = 0;
  for (const end = poolAt + 6; poolAt < end; poolAt++) n = n * 256 + pool[poolAt]!;
  // The same digits as n.toString(36), from two small integers (36^5 > their remainder): the
  // radix conversion of a 48-bit double took ~1 µs, of a small integer a tenth of that.
  const q = Math.floor(n / 60_466_176); // 36^5
  const r = n - q * 60_466_176;
  return q === 0 ? r.toString(36) : q.toString(36) + r.toString(36).padStart(5, '0');
}
