import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { report } from 'node:process';
import type * as UwsModule from 'uWebSockets.js';

/**
 * Which uWebSockets.js binary this process runs on (docs/runtime.md).
 *
 * Two builds are installed, both pinned to exact versions:
 * - `uWebSockets.js` = `@btc-vision/uwebsockets.js@20.57.0`, upstream v20.57.0 republished: Node 20,
 *   22, 24 and 25 (ABIs 115/127/137/141), Linux x64 needs glibc >= 2.38 (Debian 13, Ubuntu 24.04).
 * - `@trufflesuite/uws-js-unofficial@20.30.0-unofficial.0`: Node 16/18/20 (ABIs 93/108/115), glibc >= 2.27.
 *
 * The upstream build is taken wherever it loads; the older one only where upstream does not
 * (Node 20 on glibc < 2.38, e.g. Debian 12). Neither package's JavaScript fallback is ever loaded:
 * if no native binary loads, `uWS` is a stub that throws {@link uwsLoadError} and
 * `assertNativeUws()` refuses to start with a message naming the supported platforms.
 */
export interface UwsBuild {
  /** npm package the binary came from, e.g. `@btc-vision/uwebsockets.js`. */
  package: string;
  /** Its exact version, e.g. `20.57.0`. */
  version: string;
  /** Absolute path of the `.node` file loaded. */
  binary: string;
  /** Builds tried first that did not load here, with the reason (e.g. `GLIBC_2.38' not found`). */
  skipped: string[];
}

type Uws = typeof UwsModule;

const require = createRequire(import.meta.url);

interface Candidate {
  /** The name under which packages/common/package.json installs it. */
  specifier: string;
  /** Binary path relative to the package's directory, for this platform and Node ABI. */
  binary: string;
  /** Node ABIs (process.versions.modules) it ships binaries for. */
  abis: readonly string[];
}

const SUFFIX = `${process.platform}_${process.arch}_${process.versions.modules}.node`;

export const UWS_CANDIDATES: readonly Candidate[] = [
  { specifier: 'uWebSockets.js', binary: `uws_${SUFFIX}`, abis: ['115', '127', '137', '141'] },
  { specifier: '@trufflesuite/uws-js-unofficial', binary: `binaries/uws_${SUFFIX}`, abis: ['93', '108', '115'] },
];

/** What to do on an unsupported runtime; part of every refusal. */
export const UWS_SUPPORTED =
  'Supported: Node.js 20, 22 or 24 on Linux x64 with glibc >= 2.38 (e.g. Debian 13, Ubuntu 24.04; ' +
  'uWebSockets.js v20.57.0), or Node.js 20 on Linux x64 with glibc >= 2.27 (e.g. Debian 12; ' +
  'uWebSockets.js v20.30.0 republished by trufflesuite). Docker image: node:24-trixie-slim.';

function packageDir(specifier: string): string {
  // Both packages resolve to a file at (or one folder below) their root; walk up to package.json.
  let dir = dirname(require.resolve(specifier));
  for (let i = 0; i < 3; i += 1) {
    try {
      const manifest = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string };
      if (manifest.name) return dir;
    } catch {
      // not the package root yet
    }
    dir = dirname(dir);
  }
  throw new Error(`cannot find the package.json of ${specifier}`);
}

function firstLine(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  const lines = text
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  // The upstream loader prefixes its own banner; the dlopen reason is the informative part.
  return (
    lines.find((l) => /GLIBC|cannot open|No such file|invalid ELF|Module did not self-register|NODE_MODULE_VERSION/.test(l)) ??
    lines[0] ??
    text
  );
}

/** The C library this process runs on, e.g. `glibc 2.36`, or `musl/unknown`. */
export function libcDescription(): string {
  const header = (report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined)?.header;
  return header?.glibcVersionRuntime ? `glibc ${header.glibcVersionRuntime}` : 'no glibc (musl or unknown libc)';
}

interface Loaded {
  uws: Uws | undefined;
  build: UwsBuild | undefined;
  error: string | undefined;
}

function load(): Loaded {
  const reasons: string[] = [];
  const fallback = process.env.UWS_USE_FALLBACK;
  if (fallback && fallback !== '0' && fallback.toLowerCase() !== 'false') {
    reasons.push('UWS_USE_FALLBACK is set (the JavaScript fallback is never used)');
  } else {
    for (const c of UWS_CANDIDATES) {
      let dir: string;
      let name: string;
      let version: string;
      try {
        dir = packageDir(c.specifier);
        ({ name, version } = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name: string; version: string });
      } catch (err) {
        reasons.push(`${c.specifier}: not installed (${firstLine(err)})`);
        continue;
      }
      if (!c.abis.includes(process.versions.modules)) {
        reasons.push(`${name}@${version}: no binary for Node ABI ${process.versions.modules}`);
        continue;
      }
      const binary = join(dir, c.binary);
      try {
        // The .node file directly: the packages' own uws.js would throw (upstream) or silently
        // switch to a slow JavaScript implementation (trufflesuite).
        const uws = require(binary) as Uws;
        return { uws, build: { package: name, version, binary, skipped: reasons }, error: undefined };
      } catch (err) {
        reasons.push(`${name}@${version}: ${firstLine(err)}`);
      }
    }
  }
  const error =
    `uWebSockets.js native binary is not in use (no build loads on Node.js ${process.version}, ` +
    `${process.platform} ${process.arch}, ${libcDescription()}); refusing to start. ${UWS_SUPPORTED} ` +
    `Tried: ${reasons.join('; ')}.`;
  return { uws: undefined, build: undefined, error };
}

const loaded = load();

/** The build in use, or undefined when no native binary loads (see {@link uwsLoadError}). */
export function uwsBuild(): UwsBuild | undefined {
  return loaded.build;
}

/** Why no native binary loaded (names the supported Node versions and glibc), or undefined. */
export function uwsLoadError(): string | undefined {
  return loaded.error;
}

/**
 * The loaded uWebSockets.js module. Without a native binary every property access throws the
 * load error, so nothing can run on a fallback by accident.
 */
export const uWS: Uws =
  loaded.uws ??
  new Proxy({} as Uws, {
    get(_target, prop) {
      if (prop === 'then' || typeof prop === 'symbol') return undefined; // not a thenable
      throw new Error(loaded.error);
    },
  });
