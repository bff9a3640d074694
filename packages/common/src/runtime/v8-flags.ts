import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Component } from '../config/options.js';

/**
 * The V8 flags each cyclone-sse process runs with (docs/runtime.md). The one list: the bin shims'
 * shebang lines, the image's CMD, the Helm chart's args and testkit's spawnNode are checked against
 * it (packages/all-in-one/test/bins.test.ts, deploy/helm/test), and `npm run bench` measures with it.
 * They only work on the command line or in NODE_OPTIONS (`v8.setFlagsFromString` at start-up does
 * not resize the young generation).
 *
 * - edge and all-in-one, `--max-semi-space-size=1`: a 1 MiB young-generation semi-space. They hold
 *   many long-lived connections; V8's default (up to 16 MiB per semi-space) mostly keeps
 *   connect-storm garbage resident. Measured ~1/3 less RSS per connection at no visible CPU cost
 *   (docs/benchmarks.md).
 * - publisher, `--max-semi-space-size=16`: it holds few connections and allocates per request;
 *   with 1 MiB it spends its time in scavenges (23 000 vs 31 000 publishes per CPU-second,
 *   docs/benchmarks.md, 2026-11-30).
 */
export const V8_FLAGS_BY_COMPONENT: Readonly<Record<Component, readonly string[]>> = {
  edge: ['--max-semi-space-size=1'],
  publisher: ['--max-semi-space-size=16'],
  'all-in-one': ['--max-semi-space-size=1'],
};

/** True when every flag of the component's list is in effect (on the command line or in NODE_OPTIONS). */
export function hasV8Flags(
  component: Component,
  execArgv: readonly string[] = process.execArgv,
  nodeOptions = process.env.NODE_OPTIONS ?? '',
): boolean {
  const given = new Set([...execArgv, ...nodeOptions.split(/\s+/).filter(Boolean)]);
  return V8_FLAGS_BY_COMPONENT[component].every((f) => given.has(f));
}

const FORWARDED: NodeJS.Signals[] = ['SIGTERM', 'SIGINT', 'SIGHUP', 'SIGUSR2'];

/**
 * Runs a compiled entry point (a `dist/*.js` URL) with the component's V8 flags. The bin shims'
 * shebang already passes them, so normally the entry is imported in this process. Started as
 * `node bin/x.js` (shebang ignored), it runs the entry in a child node with the flags instead,
 * forwarding signals and the exit status.
 */
export async function launch(entry: URL, component: Component): Promise<void> {
  if (hasV8Flags(component)) {
    await import(entry.href);
    return;
  }
  const flags = V8_FLAGS_BY_COMPONENT[component];
  const child = spawn(process.execPath, [...flags, ...process.execArgv, fileURLToPath(entry), ...process.argv.slice(2)], {
    stdio: 'inherit',
  });
  for (const s of FORWARDED) process.on(s, () => child.kill(s));
  child.on('exit', (code, signal) => {
    if (signal) {
      for (const s of FORWARDED) process.removeAllListeners(s);
      process.kill(process.pid, signal);
    } else process.exit(code ?? 1);
  });
}
