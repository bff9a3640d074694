import uWS from 'uWebSockets.js';
import type { HttpResponse, TemplatedApp, us_listen_socket } from 'uWebSockets.js';

export { uWS };
export type { HttpRequest, HttpResponse, TemplatedApp, us_listen_socket } from 'uWebSockets.js';

/**
 * uWebSockets.js silently falls back to a slow pure-JS implementation (built on `ws`) when its
 * native binary does not load or UWS_USE_FALLBACK is set. The fallback lacks SSLApp and getParts.
 */
export function isNativeUws(): boolean {
  const mod = uWS as unknown as Record<string, unknown>;
  return typeof mod.SSLApp === 'function' && typeof mod.getParts === 'function';
}

export const NATIVE_UWS_MESSAGE =
  'uWebSockets.js native binary is not in use (JS fallback loaded: UWS_USE_FALLBACK set, or the binary ' +
  'does not load on this platform); refusing to start';

/** Throws (with NATIVE_UWS_MESSAGE) unless the native uWebSockets.js binary is in use. */
export function assertNativeUws(): void {
  if (!isNativeUws()) throw new Error(NATIVE_UWS_MESSAGE);
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
      if (!socket) reject(new Error(`cannot listen on ${host}:${port} (in use or not permitted)`));
      else resolve({ socket, port: uWS.us_socket_local_port(socket as never) });
    };
    (app.listen as unknown as (h: string, p: number, o: number, c: typeof cb) => void)(host, port, EXCLUSIVE_PORT, cb);
  });
}

export function closeListen(l: Listening | undefined): void {
  if (l) uWS.us_listen_socket_close(l.socket);
}

/** `app.close()` exists in the pinned build but is missing from its typings. */
export function closeApp(app: TemplatedApp): void {
  (app as unknown as { close(): void }).close();
}

/** The peer address, with IPv4-mapped IPv6 normalised to dotted IPv4. */
export function remoteAddress(res: HttpResponse): string {
  const text = Buffer.from(res.getRemoteAddressAsText()).toString();
  const mapped = /^(?:0{1,4}:){5}ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/i.exec(text) ?? /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/i.exec(text);
  if (mapped) {
    const hi = parseInt(mapped[1]!, 16);
    const lo = parseInt(mapped[2]!, 16);
    return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
  }
  const dotted = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(text);
  return dotted ? dotted[1]! : text;
}
