import { connect, type Socket } from 'node:net';

export interface SseEvent {
  id?: string;
  event?: string;
  data: string;
  retry?: number;
}

/** Parses SSE text into events and comments (the part after the last blank line is ignored). */
export function parseSse(text: string): { events: SseEvent[]; comments: string[]; retry?: number } {
  const events: SseEvent[] = [];
  const comments: string[] = [];
  let retry: number | undefined;
  const blocks = text.split(/\r\n\r\n|\n\n|\r\r/);
  blocks.pop();
  for (const block of blocks) {
    const ev: SseEvent = { data: '' };
    const data: string[] = [];
    let hasField = false;
    for (const line of block.split(/\r\n|\n|\r/)) {
      if (line.startsWith(':')) {
        comments.push(line.slice(1).trimStart());
        continue;
      }
      const i = line.indexOf(':');
      const field = i < 0 ? line : line.slice(0, i);
      let value = i < 0 ? '' : line.slice(i + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      if (field === 'data') {
        data.push(value);
        hasField = true;
      } else if (field === 'id') {
        ev.id = value;
        hasField = true;
      } else if (field === 'event') {
        ev.event = value;
        hasField = true;
      } else if (field === 'retry') {
        retry = Number(value);
        ev.retry = retry;
      }
    }
    if (hasField && data.length > 0) {
      ev.data = data.join('\n');
      events.push(ev);
    }
  }
  return { events, comments, retry };
}

/**
 * A raw HTTP/1.1 client over TCP that records every byte: for asserting exactly what went on the
 * wire (status line, headers, chunked body, frames).
 */
export class RawHttpClient {
  readonly socket: Socket;
  private chunks: Buffer[] = [];
  private rawCache: Buffer | undefined = Buffer.alloc(0);
  private parsed: { length: number; body: string; events: SseEvent[] } | undefined;
  private waiters: (() => void)[] = [];
  private wakeTimer: NodeJS.Timeout | undefined;
  ended = false;

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.on('data', (d) => {
      this.chunks.push(d);
      this.rawCache = undefined;
      // Re-check waiters at most every 20 ms: parsing a large body on every chunk is quadratic.
      this.wakeTimer ??= setTimeout(() => {
        this.wakeTimer = undefined;
        this.wake();
      }, 20);
    });
    socket.on('close', () => {
      this.ended = true;
      this.wake();
    });
    socket.on('error', () => {
      this.ended = true;
      this.wake();
    });
  }

  /** Opens a connection and sends a GET (or the given method) with the given headers. */
  static async request(
    port: number,
    path: string,
    opts: { method?: string; headers?: Record<string, string>; body?: string; host?: string } = {},
  ): Promise<RawHttpClient> {
    const socket = connect(port, opts.host ?? '127.0.0.1');
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    const client = new RawHttpClient(socket);
    const headers: Record<string, string> = { Host: `127.0.0.1:${port}`, ...(opts.headers ?? {}) };
    if (opts.body !== undefined) headers['Content-Length'] = String(Buffer.byteLength(opts.body));
    let head = `${opts.method ?? 'GET'} ${path} HTTP/1.1\r\n`;
    for (const [k, v] of Object.entries(headers)) head += `${k}: ${v}\r\n`;
    socket.write(head + '\r\n' + (opts.body ?? ''));
    return client;
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** Every byte received so far. Assigning an empty buffer forgets them. */
  get raw(): Buffer {
    if (this.rawCache === undefined) {
      this.rawCache = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
      this.chunks = [this.rawCache];
    }
    return this.rawCache;
  }

  set raw(value: Buffer) {
    this.chunks = [value];
    this.rawCache = value;
    this.parsed = undefined;
  }

  get text(): string {
    return this.raw.toString('utf8');
  }

  /** Status line and headers. */
  get head(): string {
    const i = this.text.indexOf('\r\n\r\n');
    return i < 0 ? '' : this.text.slice(0, i);
  }

  get status(): number {
    return Number(/^HTTP\/1\.1 (\d{3})/.exec(this.head)?.[1] ?? 0);
  }

  header(name: string): string | undefined {
    const re = new RegExp(`^${name}:\\s*(.*)$`, 'im');
    return re.exec(this.head)?.[1]?.trim();
  }

  /** The body with chunked transfer coding removed (or as is with Content-Length). */
  get body(): string {
    return this.parse().body;
  }

  private decodeBody(): string {
    const all = this.raw;
    const sep = all.indexOf('\r\n\r\n');
    if (sep < 0) return '';
    const rest = all.subarray(sep + 4);
    if (!/transfer-encoding:\s*chunked/i.test(this.head)) return rest.toString('utf8');
    const parts: Buffer[] = [];
    let i = 0;
    while (i < rest.length) {
      const eol = rest.indexOf('\r\n', i);
      if (eol < 0) break;
      const size = parseInt(rest.subarray(i, eol).toString(), 16);
      if (Number.isNaN(size)) break;
      if (size === 0) break;
      if (eol + 2 + size > rest.length) break;
      parts.push(rest.subarray(eol + 2, eol + 2 + size));
      i = eol + 2 + size + 2;
    }
    return Buffer.concat(parts).toString('utf8');
  }

  get events(): SseEvent[] {
    return this.parse().events;
  }

  private parse(): { body: string; events: SseEvent[] } {
    const length = this.raw.length;
    if (this.parsed?.length !== length) {
      const body = this.decodeBody();
      this.parsed = { length, body, events: parseSse(body).events };
    }
    return this.parsed;
  }

  /** Resolves when `predicate` holds (re-checked on every read); rejects after `timeoutMs`. */
  async until(predicate: (c: RawHttpClient) => boolean, timeoutMs = 5000, what = 'condition'): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!predicate(this)) {
      if (this.ended && !predicate(this)) throw new Error(`connection ended before ${what}; got:\n${this.text}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}; got:\n${this.text}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  untilEvents(n: number, timeoutMs = 5000): Promise<void> {
    return this.until((c) => c.events.length >= n, timeoutMs, `${n} events`);
  }

  /** The response is complete: the chunked terminator, or Content-Length bytes, arrived. */
  get complete(): boolean {
    const head = this.head;
    if (head === '') return false;
    if (/transfer-encoding:\s*chunked/i.test(head)) return this.raw.subarray(-5).toString() === '0\r\n\r\n';
    const len = /content-length:\s*(\d+)/i.exec(head)?.[1];
    return len !== undefined && Buffer.byteLength(this.body) >= Number(len);
  }

  /** Resolves when the response is complete or the connection closed. */
  untilComplete(timeoutMs = 5000): Promise<void> {
    return this.until((c) => c.complete || c.ended, timeoutMs, 'end of response');
  }

  untilEnded(timeoutMs = 5000): Promise<void> {
    return this.until((c) => c.ended, timeoutMs, 'end of connection');
  }

  close(): void {
    this.socket.destroy();
  }
}
