/**
 * Raw HTTP/1.1 exchanges on one socket (pipelined requests, HEAD, framing attacks), parsed the way a
 * strict keep-alive client would.
 */
import { connect } from 'node:net';

/** One parsed HTTP/1.1 response off a raw socket. */
export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

export interface Exchange {
  responses: RawResponse[];
  /** The server closed the connection. */
  closed: boolean;
  /** Bytes after the last complete response (must be empty on a healthy keep-alive connection). */
  rest: string;
}

/**
 * Writes `raw` bytes on a fresh connection and parses the responses, in order, as a strict
 * keep-alive client would: a response to HEAD (or 204/304) has no body whatever its headers say;
 * otherwise Content-Length or chunked frames it. Resolves once `methods.length` responses are in
 * and (with `expectClose`) the server closed, or after `timeoutMs`.
 */
export function exchange(
  port: number,
  raw: string | Buffer,
  methods: string[],
  opts: { expectClose?: boolean; timeoutMs?: number } = {},
): Promise<Exchange> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1', () => socket.write(raw));
    let buf = Buffer.alloc(0);
    let closed = false;
    let settled = false;
    const finish = () => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ ...parseResponses(buf, methods), closed });
    };
    const timer = setTimeout(finish, opts.timeoutMs ?? 3000);
    socket.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      if (!opts.expectClose && parseResponses(buf, methods).responses.length >= methods.length) finish();
    });
    socket.on('close', () => {
      closed = true;
      finish();
    });
    socket.on('error', () => undefined);
  });
}

function parseResponses(all: Buffer, methods: string[]): { responses: RawResponse[]; rest: string } {
  const responses: RawResponse[] = [];
  let at = 0;
  for (const method of methods) {
    const end = all.indexOf('\r\n\r\n', at);
    if (end < 0) break;
    const lines = all.subarray(at, end).toString('latin1').split('\r\n');
    const m = /^HTTP\/1\.1 (\d{3}) /.exec(lines[0] ?? '');
    if (!m) break; // not a status line: the stream is out of step
    const headers: Record<string, string> = {};
    for (const l of lines.slice(1)) {
      const i = l.indexOf(':');
      headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
    }
    const status = Number(m[1]);
    let pos = end + 4;
    let body = '';
    if (method !== 'HEAD' && status !== 204 && status !== 304) {
      if (headers['content-length'] !== undefined) {
        const n = Number(headers['content-length']);
        if (all.length < pos + n) break;
        body = all.subarray(pos, pos + n).toString('utf8');
        pos += n;
      } else if (/chunked/i.test(headers['transfer-encoding'] ?? '')) {
        const parts: Buffer[] = [];
        let complete = false;
        while (true) {
          const eol = all.indexOf('\r\n', pos);
          if (eol < 0) break;
          const size = parseInt(all.subarray(pos, eol).toString(), 16);
          if (Number.isNaN(size) || all.length < eol + 2 + size + 2) break;
          parts.push(all.subarray(eol + 2, eol + 2 + size));
          pos = eol + 2 + size + 2;
          if (size === 0) {
            complete = true;
            break;
          }
        }
        body = Buffer.concat(parts).toString('utf8');
        if (!complete) {
          responses.push({ status, headers, body });
          return { responses, rest: '' };
        }
      }
    }
    responses.push({ status, headers, body });
    at = pos;
  }
  return { responses, rest: all.subarray(at).toString('latin1') };
}

/** A request head with CRLF line ends (`lines` without the blank line). */
export function head(...lines: string[]): string {
  return lines.join('\r\n') + '\r\n\r\n';
}
