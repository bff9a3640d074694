import type { Cursor } from '@cyclone-sse/common';

const ID_PREFIX = Buffer.from('id: ');

/**
 * The position of a stream whose channels span several partitions (Redis Cluster,
 * docs/protocol.md#ids-on-a-redis-cluster): per partition the epoch and seq it has received up
 * to. Its text is the stream's id, `<e1>-<s1>.<e2>-<s2>…` in partition order, written on every
 * frame in place of the frame's own one-partition id line. A stream over one partition has none:
 * its frames go out as the script built them.
 */
export class StreamCursor {
  private readonly epochs: string[];
  private readonly seqs: number[];
  private cached: string | undefined;

  /** The partition set as text: streams with the same key can share an id line (`Hub.sharedFrame`). */
  readonly key: string;

  constructor(readonly partitions: readonly number[]) {
    this.epochs = partitions.map(() => '');
    this.seqs = partitions.map(() => -1);
    this.key = partitions.join(',');
  }

  /** Index of this partition set in the hub's shared id lines (-1: none, write its own). */
  keyId = -1;

  /**
   * True when every position of this stream outside `partition` is at or below the edge's
   * delivered position there (same epoch): then those positions are a valid cursor for it — it
   * has every message of its channels up to them — and it can take the id line shared by every
   * stream over the same partitions.
   */
  within(partition: number | undefined, delivered: DeliveredSnapshot): boolean {
    const own = partition ?? 0;
    for (let i = 0; i < this.partitions.length; i++) {
      const p = this.partitions[i]!;
      if (p === own) continue;
      if (!delivered.covers(p, this.epochs[i]!, this.seqs[i]!)) return false;
    }
    return true;
  }

  private index(partition: number | undefined): number {
    return this.partitions.indexOf(partition ?? 0);
  }

  /** Seq received in `partition` (-1 before any). */
  seqOf(partition: number | undefined): number {
    const i = this.index(partition);
    return i < 0 ? Number.MAX_SAFE_INTEGER : this.seqs[i]!;
  }

  /** Moves `position.partition` to `position` (epoch and seq). */
  set(position: Cursor): void {
    const i = this.index(position.partition);
    if (i < 0) return;
    this.epochs[i] = position.epoch;
    this.seqs[i] = position.seq;
    this.cached = undefined;
  }

  /** Lowers a partition's seq to `seq` (a failover rebased it), keeping its epoch. */
  lower(partition: number | undefined, seq: number): void {
    const i = this.index(partition);
    if (i < 0 || this.seqs[i]! <= seq) return;
    this.seqs[i] = seq;
    this.cached = undefined;
  }

  /** Takes a message of `partition` with seq `seq` (its epoch given, or read off the frame); false when it is not newer. */
  accept(partition: number | undefined, seq: number, frame: Buffer, knownEpoch?: string): boolean {
    const i = this.index(partition);
    if (i < 0 || seq <= this.seqs[i]!) return false;
    this.seqs[i] = seq;
    const epoch = knownEpoch ?? epochOfFrame(frame);
    if (epoch !== undefined) this.epochs[i] = epoch;
    this.cached = undefined;
    return true;
  }

  /** The id text; positions never received (epoch unknown) are left out. */
  text(): string {
    if (this.cached !== undefined) return this.cached;
    const parts: string[] = [];
    for (let i = 0; i < this.partitions.length; i++) if (this.epochs[i] !== '') parts.push(`${this.epochs[i]}-${this.seqs[i]}`);
    return (this.cached = parts.join('.'));
  }

  /** `frame` with its id line replaced by this cursor's (the body is shared, not copied twice). */
  rewrite(frame: Buffer): Buffer {
    const end = frame.indexOf(0x0a);
    if (end < 0 || frame.compare(ID_PREFIX, 0, 4, 0, 4) !== 0) return frame;
    return Buffer.concat([Buffer.from(`id: ${this.text()}`), frame.subarray(end)]);
  }
}

/** The epoch on a frame's id line (`id: <epoch>-<seq>`), or undefined. */
export function epochOfFrame(frame: Buffer): string | undefined {
  if (frame.compare(ID_PREFIX, 0, 4, 0, 4) !== 0) return undefined;
  const end = frame.indexOf(0x0a);
  const dash = frame.lastIndexOf(0x2d, end < 0 ? frame.length : end);
  return dash > 4 ? frame.toString('latin1', 4, dash) : undefined;
}

/**
 * The positions the edge has delivered per partition, read once per live message (they do not
 * change while it fans out): `next()` for each new message, then lazy reads per partition.
 */
export class DeliveredSnapshot {
  private stamp = 1;
  private readonly stamps: Uint32Array;
  private readonly epochs: (string | undefined)[];
  private readonly seqs: Float64Array;

  constructor(
    partitions: number,
    private readonly read: (partition: number) => Cursor | undefined,
  ) {
    this.stamps = new Uint32Array(partitions);
    this.epochs = new Array<string | undefined>(partitions).fill(undefined);
    this.seqs = new Float64Array(partitions);
  }

  /** A new message: positions are read again. */
  next(): void {
    this.stamp = (this.stamp + 1) >>> 0 || 1;
  }

  private fill(p: number): void {
    if (this.stamps[p] === this.stamp) return;
    this.stamps[p] = this.stamp;
    const d = this.read(p);
    this.epochs[p] = d?.epoch;
    this.seqs[p] = d?.seq ?? -1;
  }

  /** The delivered position of `p` is in `epoch` and at or past `seq`. */
  covers(p: number, epoch: string, seq: number): boolean {
    if (p < 0 || p >= this.stamps.length) return false;
    this.fill(p);
    return this.epochs[p] === epoch && this.seqs[p]! >= seq;
  }

  /** `<epoch>-<seq>` of `p`'s delivered position (call after `covers` said true). */
  text(p: number): string {
    this.fill(p);
    return `${this.epochs[p]}-${this.seqs[p]}`;
  }
}
