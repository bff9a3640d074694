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

export function newEpoch(): string {
  // 48 random bits in base 36: short, url-safe, no dash.
  const bytes = globalThis.crypto.getRandomValues(new Uint8Array(6));
  let n = 0n;
  for (const b of bytes) n = (n << 8n) | BigInt(b);
  return n.toString(36);
}
