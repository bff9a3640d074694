// Ids over partitions (docs/protocol.md#ids-on-a-redis-cluster).
//
// Each partition's epoch token starts with the partition's index in base 36, fixed width, so
// `<epoch>-<seq>` alone names its partition. A stream whose channels span several partitions
// gets a cursor with one position per partition, joined by '.', in partition order:
// `<e1>-<s1>.<e2>-<s2>`. With one partition (standalone or Sentinel Redis, the memory broker) the
// width is 0: epochs and ids are exactly what they always were.
import { newEpoch, parseId, type Cursor } from './cursor.js';

/** Positions in a multi-partition cursor at most (more is malformed; a stream names at most this many partitions). */
export const MAX_CURSOR_PARTS = 1024;

export class PartitionCodec {
  /** Characters of the partition code at the start of an epoch (0 with one partition). */
  readonly width: number;

  constructor(readonly partitions: number) {
    this.width = partitions > 1 ? (partitions - 1).toString(36).length : 0;
  }

  /** A new epoch token for `partition` (the candidate a script adopts when it starts an epoch). */
  epochFor(partition: number): string {
    if (this.width === 0) return newEpoch();
    return partition.toString(36).padStart(this.width, '0') + newEpoch();
  }

  /** The partition an epoch token names, or undefined when it names none of this deployment's. */
  partitionOfEpoch(epoch: string): number | undefined {
    if (this.width === 0) return 0;
    if (epoch.length <= this.width) return undefined;
    const p = parseInt(epoch.slice(0, this.width), 36);
    return Number.isInteger(p) && p >= 0 && p < this.partitions ? p : undefined;
  }

  /**
   * The positions of a cursor as a client sent it (`<e>-<s>` or `<e1>-<s1>.<e2>-<s2>…`), by
   * partition; undefined when malformed (a bad part, a partition named twice, too many parts).
   */
  parse(text: string): Map<number, Cursor> | undefined {
    const parts = text.split('.');
    if (parts.length > MAX_CURSOR_PARTS) return undefined;
    const out = new Map<number, Cursor>();
    for (const part of parts) {
      const c = parseId(part);
      if (!c) return undefined;
      const p = this.partitionOfEpoch(c.epoch);
      if (p === undefined || out.has(p)) return undefined;
      out.set(p, { ...c, partition: p });
    }
    return out;
  }

  /** The cursor text of positions (one per partition), in partition order. */
  format(positions: readonly Cursor[]): string {
    if (positions.length === 1) return `${positions[0]!.epoch}-${positions[0]!.seq}`;
    return [...positions]
      .sort((a, b) => (a.partition ?? 0) - (b.partition ?? 0))
      .map((c) => `${c.epoch}-${c.seq}`)
      .join('.');
  }
}
