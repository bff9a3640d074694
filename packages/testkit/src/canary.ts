import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { RawHttpClient } from './sse-client.js';
import { publishJson } from './http.js';

export interface CanaryTarget {
  /** Port subscribers connect to (an edge, nginx or the all-in-one). */
  port: number;
  /** Base URL publishes go to (a publisher or the all-in-one). */
  base: string;
}

export interface Canary {
  /** Ids the canary publisher got answered 200 so far. */
  readonly sent: readonly string[];
  /**
   * Stops the publisher loop and asserts the canary subscriber received exactly the published
   * ids, in order, with no gap and no duplicate (and at least `minMessages` of them).
   */
  stop(): Promise<void>;
}

/**
 * A canary subscriber on its own channel and a canary publisher publishing to it every
 * `intervalMs` while an attack runs beside them: proves the hub kept serving others.
 */
export async function startCanary(
  target: CanaryTarget,
  opts: { channel?: string; intervalMs?: number; minMessages?: number; headers?: Record<string, string>; subscribePort?: number } = {},
): Promise<Canary> {
  const channel = opts.channel ?? `canary-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  const intervalMs = opts.intervalMs ?? 20;
  const sub = await RawHttpClient.request(opts.subscribePort ?? target.port, `/?channels=${encodeURIComponent(channel)}`);
  await sub.until((x) => x.body.includes(':ok'), 5000, 'canary subscriber open');
  const sent: string[] = [];
  const failures: string[] = [];
  let run = true;
  const loop = (async () => {
    for (let i = 0; run; i++) {
      try {
        const r = await publishJson(target.base, { channel, data: `canary ${i}` }, opts.headers);
        if (r.status === 200) sent.push((r.json as { ids: string[] }).ids[0]!);
        else failures.push(`${r.status} ${r.text}`);
      } catch (err) {
        failures.push(String(err));
      }
      await new Promise((res) => setTimeout(res, intervalMs));
    }
  })();
  return {
    sent,
    async stop() {
      run = false;
      await loop;
      try {
        assert.deepEqual(failures, [], 'every canary publish answered 200');
        await sub.untilEvents(sent.length, 15_000);
        assert.deepEqual(
          sub.events.map((e) => e.id),
          sent,
          'canary subscriber received every canary message once, in order',
        );
        assert.ok(sent.length >= (opts.minMessages ?? 5), `canary published only ${sent.length} messages`);
      } finally {
        sub.close();
      }
    },
  };
}

/** Resident set size of a process in bytes (Linux /proc). */
export function rssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]) * 1024;
}

/**
 * Samples a process's RSS every `everyMs` until stopped; `peak()` is the largest sample. Use it to
 * assert a memory bound while an attack runs.
 */
export function watchRss(pid: number, everyMs = 50): { peak(): number; stop(): number } {
  let peak = rssBytes(pid);
  const timer = setInterval(() => {
    try {
      peak = Math.max(peak, rssBytes(pid));
    } catch {
      /* process gone: the test's own liveness assertion reports it */
    }
  }, everyMs);
  timer.unref();
  return {
    peak: () => peak,
    stop: () => {
      clearInterval(timer);
      return peak;
    },
  };
}
