// Channel → partition for Redis Cluster, and each partition's hash tag. Pure functions.
//
// The hash is Redis Cluster's own key hash slot (CRC16/XMODEM of the UTF-8 bytes of the key, or
// of its `{tag}`, mod 16384): it is fixed by the Redis Cluster specification, so it can never
// change between versions of the hub, and a channel's hash tag pins it exactly the way Redis
// hash tags pin keys. A partition owns an even 1/P share of the slot space, and a channel belongs
// to the partition whose share holds its slot: partitionOf(c, P) = floor(hashSlot(c) · P / 16384).
// Each partition's keys carry a tag whose own slot lies inside that share, so with the even slot
// split of `redis-cli --cluster create` the partitions spread over the shards evenly.
//
// The CRC16 is computed here, not with the `cluster-key-slot` package that ioredis uses:
// cluster-key-slot 1.1.1 does not follow Redis for a key whose first `{` is followed at once by
// `}` and that has another `}` later (`a{}b}c`: Redis slot 2041, cluster-key-slot 3300, the slot
// of `b`). Checked against `CLUSTER KEYSLOT` of a real cluster in redis-cluster-pubsub.test.ts.
// See docs/architecture.md for the Redis layout.

/** Number of hash slots of a Redis Cluster. */
export const SLOT_COUNT = 16384;
/** Largest `--redis-partitions`: every partition needs at least one slot of its own. */
export const MAX_PARTITIONS = SLOT_COUNT;

const CRC16_TABLE = ((): Uint16Array => {
  const table = new Uint16Array(256);
  for (let i = 0; i < 256; i++) {
    let crc = i << 8;
    for (let bit = 0; bit < 8; bit++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
    table[i] = crc;
  }
  return table;
})();

/** CRC16/XMODEM (poly 0x1021, init 0, no reflection) of `bytes[from, to)`, as Redis computes it. */
export function crc16(bytes: Uint8Array, from = 0, to = bytes.length): number {
  let crc = 0;
  for (let i = from; i < to; i++) crc = ((crc << 8) & 0xffff) ^ CRC16_TABLE[((crc >> 8) ^ bytes[i]!) & 0xff]!;
  return crc;
}

const encoder = new TextEncoder();

/**
 * The bytes Redis receives for `key`: its UTF-8 encoding (a lone surrogate becomes U+FFFD, as
 * Node's Buffer and TextEncoder write it).
 */
function bytesOf(key: string | Uint8Array): Uint8Array {
  return typeof key === 'string' ? encoder.encode(key) : key;
}

/** Start and end (exclusive) of the hash tag inside `bytes`, Redis rules; undefined if none. */
function tagBounds(bytes: Uint8Array): [number, number] | undefined {
  const open = bytes.indexOf(0x7b); // first '{'
  if (open < 0) return undefined;
  const close = bytes.indexOf(0x7d, open + 1); // the next '}'
  if (close < 0 || close === open + 1) return undefined; // none, or `{}`: the whole key is hashed
  return [open + 1, close];
}

/** CRC16 of the ASCII string `s[from, to)`; -1 if it holds a non-ASCII character. */
function crc16Ascii(s: string, from: number, to: number): number {
  let crc = 0;
  for (let i = from; i < to; i++) {
    const c = s.charCodeAt(i);
    if (c > 0x7f) return -1;
    crc = ((crc << 8) & 0xffff) ^ CRC16_TABLE[((crc >> 8) ^ c) & 0xff]!;
  }
  return crc;
}

/**
 * The Redis Cluster hash slot of `key` (0..16383): CRC16 of the hash tag — the bytes between the
 * first `{` and the next `}`, when not empty — or else of the whole key; same as `CLUSTER KEYSLOT`.
 */
export function hashSlot(key: string | Uint8Array): number {
  if (typeof key === 'string') {
    // ASCII fast path (no encoding); '{' and '}' are ASCII, so the tag bounds are the same.
    const open = key.indexOf('{');
    const close = open < 0 ? -1 : key.indexOf('}', open + 1);
    const tagged = close > open + 1;
    const crc = tagged ? crc16Ascii(key, open + 1, close) : crc16Ascii(key, 0, key.length);
    if (crc >= 0) return crc & (SLOT_COUNT - 1);
  }
  const bytes = bytesOf(key);
  const tag = tagBounds(bytes);
  return (tag ? crc16(bytes, tag[0], tag[1]) : crc16(bytes)) & (SLOT_COUNT - 1);
}

/** The hash tag of `name` under Redis rules (`user42` in `{user42}.feed`), or undefined if it has none. */
export function hashTagOf(name: string): string | undefined {
  const open = name.indexOf('{');
  if (open < 0) return undefined;
  const close = name.indexOf('}', open + 1);
  if (close < 0 || close === open + 1) return undefined;
  return name.slice(open + 1, close);
}

/** Throws a RangeError unless `partitions` is an integer in 1..MAX_PARTITIONS. */
export function checkPartitionCount(partitions: number): void {
  if (!Number.isInteger(partitions) || partitions < 1 || partitions > MAX_PARTITIONS)
    throw new RangeError(`the partition count must be an integer from 1 to ${MAX_PARTITIONS}, got ${String(partitions)}`);
}

/** The partition (0..P-1) whose even share of the slot space holds `slot`. */
export function partitionOfSlot(slot: number, partitions: number): number {
  return Math.floor((slot * partitions) / SLOT_COUNT);
}

/** The slots of partition `p` of `P`: the p-th of P even ranges of 0..16383 (inclusive bounds). */
export function partitionSlotRange(partition: number, partitions: number): { first: number; last: number } {
  checkPartitionCount(partitions);
  if (!Number.isInteger(partition) || partition < 0 || partition >= partitions)
    throw new RangeError(`partition must be an integer from 0 to ${partitions - 1}, got ${String(partition)}`);
  return {
    first: Math.ceil((partition * SLOT_COUNT) / partitions),
    last: Math.ceil(((partition + 1) * SLOT_COUNT) / partitions) - 1,
  };
}

/**
 * The partition of `channel` among `partitions`: a channel with a `{tag}` goes where its tag's slot
 * goes, so every channel with that tag shares one partition (and one order); any other channel by
 * the slot of its whole name. Stable forever (see the head of this file).
 */
export function partitionOf(channel: string, partitions: number): number {
  checkPartitionCount(partitions);
  return partitionOfSlot(hashSlot(channel), partitions);
}

const tagCache = new Map<number, readonly string[]>();

/**
 * One short hash tag per partition (`p<n>`, without braces): for partition p, the first of
 * `p0`, `p1`, `p2`, … whose slot lies in `partitionSlotRange(p, P)`. Deterministic; the tags are
 * distinct because the ranges are disjoint. Memoised per P.
 */
export function partitionTags(partitions: number): readonly string[] {
  checkPartitionCount(partitions);
  const cached = tagCache.get(partitions);
  if (cached) return cached;
  const tags = new Array<string | undefined>(partitions).fill(undefined);
  let missing = partitions;
  // One pass over p0, p1, … gives every partition its first match (≈ P·ln P strings for large P).
  for (let n = 0; missing > 0; n++) {
    const tag = `p${n}`;
    const p = partitionOfSlot(hashSlot(tag), partitions);
    if (tags[p] === undefined) {
      tags[p] = tag;
      missing--;
    }
  }
  const frozen = Object.freeze(tags as string[]);
  tagCache.set(partitions, frozen);
  return frozen;
}
