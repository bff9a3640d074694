import type { HttpResponse, TemplatedApp, us_listen_socket } from 'uWebSockets.js';
import { StartupError } from '../errors.js';
import { uWS, uwsBuild, uwsLoadError } from './uws-loader.js';

export { uWS, uwsBuild, uwsLoadError, libcDescription, UWS_SUPPORTED, type UwsBuild } from './uws-loader.js';
export type { HttpRequest, HttpResponse, TemplatedApp, us_listen_socket } from 'uWebSockets.js';

/**
 * True when a native uWebSockets.js binary is loaded (uws-loader.ts never loads a JS fallback;
 * without a binary `uWS` is a stub). The check of the module itself stays as a second guard.
 */
export function isNativeUws(): boolean {
  if (!uwsBuild()) return false;
  const mod = uWS as unknown as Record<string, unknown>;
  return typeof mod.SSLApp === 'function' && typeof mod.getParts === 'function';
}

/** The start-of-message every refusal shares (tests and operators grep for it). */
export const NATIVE_UWS_MESSAGE = 'uWebSockets.js native binary is not in use';

/** Throws, naming the supported Node versions and glibc, unless a native uWebSockets.js binary is in use. */
export function assertNativeUws(): void {
  if (!isNativeUws()) throw new StartupError('NATIVE_UWS_MISSING', uwsLoadError() ?? `${NATIVE_UWS_MESSAGE}; refusing to start`);
}

const EXCLUSIVE_PORT = 1; // LIBUS_LISTEN_EXCLUSIVE_PORT: a port clash fails instead of sharing.

export interface Listening {
  socket: us_listen_socket;
  port: number;
}

/** Listens exclusively on host:port; resolves with the bound port (useful with port 0). */
export function listen(app: TemplatedApp, host: string, port: number): Promise<Listening> {
  return new Promise((resolve, reject) => {
    const cb = (socket: us_listen_socket | false) => {
      if (!socket) reject(new StartupError('LISTEN_FAILED', `cannot listen on ${host}:${port} (in use or not permitted)`));
      else resolve({ socket, port: uWS.us_socket_local_port(socket) });
    };
    (app.listen as unknown as (h: string, p: number, o: number, c: typeof cb) => void)(host, port, EXCLUSIVE_PORT, cb);
  });
}

export function closeListen(l: Listening | undefined): void {
  if (l) uWS.us_listen_socket_close(l.socket);
}

/** Closes every socket of the app, listen sockets included (both builds have `app.close()`). */
export function closeApp(app: TemplatedApp): void {
  app.close();
}

/** The peer address, with IPv4-mapped IPv6 normalised to dotted IPv4. */
export function remoteAddress(res: HttpResponse): string {
  const text = Buffer.from(res.getRemoteAddressAsText()).toString();
  const mapped =
    /^(?:0{1,4}:){5}ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/i.exec(text) ?? /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/i.exec(text);
  if (mapped) {
    const [, hiHex = '', loHex = ''] = mapped; // both groups are mandatory in the patterns
    const hi = parseInt(hiHex, 16);
    const lo = parseInt(loHex, 16);
    return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
  }
  const dotted = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(text);
  return dotted?.[1] ?? text;
}
