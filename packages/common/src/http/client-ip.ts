import { BlockList, isIP } from 'node:net';

/**
 * The client address: the peer, or — when the peer is a trusted proxy — the right-most address of
 * X-Forwarded-For that is not itself a trusted proxy. IPv4-mapped IPv6 is normalised to IPv4.
 */
export class ClientIp {
  private readonly trusted = new BlockList();
  private readonly any: boolean;

  constructor(proxies: readonly string[]) {
    this.any = proxies.length > 0;
    for (const p of proxies) {
      const [addr, bits] = p.split('/');
      const family = isIP(addr!) === 6 ? 'ipv6' : 'ipv4';
      if (isIP(addr!) === 0) throw new Error(`--trusted-proxies: ${p} is not an IP address or CIDR`);
      if (bits !== undefined) this.trusted.addSubnet(addr!, Number(bits), family);
      else this.trusted.addAddress(addr!, family);
    }
  }

  private isTrusted(ip: string): boolean {
    const family = isIP(ip);
    return family !== 0 && this.trusted.check(ip, family === 6 ? 'ipv6' : 'ipv4');
  }

  resolve(peer: string, forwardedFor: string | undefined): string {
    const p = normaliseIp(peer);
    if (!this.any || !forwardedFor || !this.isTrusted(p)) return p;
    const hops = forwardedFor
      .split(',')
      .map((h) => normaliseIp(h.trim()))
      .filter((h) => isIP(h) !== 0);
    return hops.findLast((h) => !this.isTrusted(h)) ?? hops[0] ?? p;
  }
}

export function normaliseIp(ip: string): string {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  return m?.[1] ?? ip;
}
