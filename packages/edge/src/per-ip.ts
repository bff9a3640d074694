/** Open connections per client address (for --max-connections-per-ip); addresses at zero are forgotten. */
export class PerIpCount {
  private readonly counts = new Map<string, number>();

  /** Open connections from `ip`. */
  of(ip: string): number {
    return this.counts.get(ip) ?? 0;
  }

  add(ip: string): void {
    this.counts.set(ip, (this.counts.get(ip) ?? 0) + 1);
  }

  remove(ip: string): void {
    const n = (this.counts.get(ip) ?? 1) - 1;
    if (n === 0) this.counts.delete(ip);
    else this.counts.set(ip, n);
  }
}
