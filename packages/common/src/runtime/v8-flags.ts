import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/**
 * The V8 flags every cyclone-sse process runs with (docs/runtime.md). The one list: the bin shims'
 * shebang lines, the image's NODE_OPTIONS and testkit's spawnNode are checked against it
 * (packages/all-in-one/test/bins.test.ts), and `npm run bench` measures with it.
 *
 * `--max-semi-space-size=1`: a 1 MiB young-generation semi-space. An edge holds many long-lived
 * connections; V8's default (up to 16 MiB per semi-space) mostly keeps connect-storm garbage
 * resident. Measured ~1/3 less RSS per connection at no visible CPU cost (docs/benchmarks.md).
 * It only works on the command line or in NODE_OPTIONS (`v8.setFlagsFromString` at start-up does
 * not shrink the young generation).
 */
export const V8_FLAGS: readonly string[] = ['--max-semi-space-size=1'];

/** True when every flag of V8_FLAGS is in effect (on the command line or in NODE_OPTIONS). */
export function hasV8Flags(execArgv: readonly string[] = process.execArgv, nodeOptions = process.env.NODE_OPTIONS ?? ''): boolean {
  const given = new Set([...execArgv, ...nodeOptions.split(/\s+/).filter(Boolean)]);
  return V8_FLAGS.every((f) => given.has(f));
}

const FORWARDED: NodeJS.Signals[] = ['SIGTERM', 'SIGINT', 'SIGHUP', 'SIGUSR2'];

/**
 * Runs a compiled entry point (a `dist/*.js` URL) with V8_FLAGS. The bin shims' shebang already
 * passes them, so normally the entry is imported in this process. Started as `node bin/x.js`
 * (shebang ignored), it runs the entry in a child node with the flags instead, forwarding signals
 * and the exit status.
 */
export async function launch(entry: URL): Promise<void> {
  if (hasV8Flags()) {
    await import(entry.href);
    return;
  }
  const child = spawn(process.execPath, [...V8_FLAGS, ...process.execArgv, fileURLToPath(entry), ...process.argv.slice(2)], {
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
