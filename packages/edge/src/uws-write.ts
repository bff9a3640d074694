import type { HttpResponse } from '@cyclone-sse/common';

/**
 * uWS's cork buffer (LoopData::CORK_BUFFER_SIZE) less room for a chunk header ("\r\n<hex>\r\n")
 * and slack. A chunked write that fits is copied into the cork buffer and sent when the cork
 * ends; whatever the kernel does not take then stays in uWS's own buffer.
 */
export const PIECE_BYTES = 16 * 1024 - 64;

/** The 2-byte comment line that `probe` writes (harmless between frames). */
const NUDGE = Buffer.from(':\n');
/** What a failed probe leaves in uWS's buffer: the comment and its chunk framing. */
export const PROBE_BYTES = NUDGE.length + 5;

// One cork callback for every write (no closure per connection per write).
let corkRes: HttpResponse | undefined;
let corkBytes: Buffer | undefined;
let corkOk = true;
const corkWrite = () => {
  corkOk = (corkRes as HttpResponse).write(corkBytes as Buffer);
};

function corked(res: HttpResponse, bytes: Buffer): boolean {
  corkRes = res;
  corkBytes = bytes;
  try {
    res.cork(corkWrite);
  } finally {
    corkRes = undefined;
    corkBytes = undefined;
  }
  return corkOk;
}

/** `writeChunked` result: every byte went to the socket, no backpressure. */
export const SENT = -1;

/**
 * Writes `bytes` to a chunked response without ever losing any. Returns SENT, or on backpressure
 * the offset just after the piece that met it: uWS keeps what the kernel did not take of that
 * piece, and the bytes from the offset on (none when it is `bytes.length`) are the caller's to
 * queue.
 *
 * Why pieces. A corked write larger than what is left of the cork buffer makes uWS send the cork
 * buffer (the chunk header) first, and when that send cannot complete — the kernel buffer is
 * full, or uWS still holds bytes from an earlier write — uWS reports backpressure without
 * writing or buffering the data at all (AsyncSocket::uncork in the pinned cores; the chunk
 * header went out, so the stream is corrupt: uNetworking/uWebSockets.js#1249). A write that fits
 * the cork buffer never takes that path. Up to 16 KiB (the common case: one turn's frames) it
 * stays one cork and one syscall; larger writes cost one syscall per 16 KiB.
 */
export function writeChunked(res: HttpResponse, bytes: Buffer): number {
  if (bytes.length <= PIECE_BYTES) return corked(res, bytes) ? SENT : bytes.length;
  for (let at = 0; at < bytes.length; at += PIECE_BYTES) {
    const end = Math.min(bytes.length, at + PIECE_BYTES);
    if (!corked(res, bytes.subarray(at, end))) return end;
  }
  return SENT;
}

/**
 * Flushes uWS's own buffer with a 2-byte comment line; true when it went through, i.e. uWS's
 * buffer is empty. While it is not, any write is appended to it whole whatever the kernel takes,
 * so nothing else is handed to uWS until this succeeds.
 */
export function probe(res: HttpResponse): boolean {
  return corked(res, NUDGE);
}
