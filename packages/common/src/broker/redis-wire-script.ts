import { createHash } from 'node:crypto';
import { Command, type Redis } from 'ioredis';

/**
 * A Lua script called with its arguments encoded once, straight into the RESP bytes of
 * `EVALSHA sha numkeys …` — for the publish hot path. ioredis's own script commands build the same
 * bytes by string concatenation and copy the arguments twice (about 6 KB of young garbage per call,
 * most of it alive until the reply), which made scavenges the publisher's largest CPU cost.
 *
 * Everything else is ioredis's: the command goes through `sendCommand` (its reply, its error, the
 * connection's command timeout, its place in the reply order), so a call behaves exactly like
 * `defineCommand`'s. Like ioredis, the first call on a connection is sent as EVAL (which loads
 * the script), later ones as EVALSHA, and a NOSCRIPT answer (script cache flushed) is sent again as
 * EVAL: the script did not run, so sending it again cannot apply anything twice.
 */
export class WireScript {
  private readonly sha: string;
  private readonly loaded = new WeakSet<object>();

  constructor(private readonly lua: string) {
    this.sha = createHash('sha1').update(lua).digest('hex');
  }

  /** Runs the script; `args` are numkeys, the keys, then ARGV, as for EVALSHA. Replies as strings. */
  async call(redis: Redis, args: readonly (string | number)[]): Promise<unknown> {
    const stream = redis.stream as object | undefined;
    if (stream && this.loaded.has(stream)) {
      try {
        return await send(redis, 'EVALSHA', this.sha, args);
      } catch (err) {
        if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err;
        this.loaded.delete(stream);
      }
    }
    // Marked at once, as ioredis does: Redis runs the commands of a connection in order, so the
    // EVALSHAs sent after this EVAL find the script loaded.
    if (stream) this.loaded.add(stream);
    return send(redis, 'EVAL', this.lua, args);
  }
}

/** A command whose bytes are ready: ioredis writes them as they are. */
class EncodedCommand extends Command {
  constructor(
    name: string,
    private readonly wire: Buffer,
  ) {
    super(name, [], { replyEncoding: 'utf8' });
  }

  override toWritable(): Buffer {
    return this.wire;
  }
}

function send(redis: Redis, name: 'EVAL' | 'EVALSHA', script: string, args: readonly (string | number)[]): Promise<unknown> {
  const command = new EncodedCommand(name.toLowerCase(), encode(name, script, args));
  return redis.sendCommand(command) as Promise<unknown>;
}

// Scratch space for encode (one call at a time: it never awaits). Not emptied after a call, so
// its backing stores are allocated once.
const texts: string[] = [];
const lengths: number[] = [];
/** Per argument: all ASCII and short, so written by writeAscii (no call into C++). */
const asciis: boolean[] = [];

/** Strings up to this length are checked and written in JS; a buf.write call costs more. */
const SHORT = 64;

/** True when every character of `text` (short) is ASCII: its UTF-8 length is its length. */
function isShortAscii(text: string): boolean {
  if (text.length > SHORT) return false;
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) > 0x7f) return false;
  return true;
}

/** `*<n>\r\n$<len>\r\n<name>\r\n$<len>\r\n<script>\r\n` then each argument as a bulk string. */
export function encode(name: string, script: string, args: readonly (string | number)[]): Buffer {
  const n = args.length + 2;
  let size = 1 + digits(n) + 2 + bulkSize(name.length) + bulkSize(Buffer.byteLength(script));
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const text = typeof a === 'string' ? a : String(a);
    const ascii = isShortAscii(text);
    const len = ascii ? text.length : Buffer.byteLength(text);
    texts[i] = text;
    lengths[i] = len;
    asciis[i] = ascii;
    size += bulkSize(len);
  }
  const buf = Buffer.allocUnsafe(size);
  buf[0] = 0x2a; // *
  let at = writeDigits(buf, 1, n);
  at = crlf(buf, at);
  at = writeBulk(buf, at, name, name.length, true);
  at = writeBulk(buf, at, script, Buffer.byteLength(script), false);
  for (let i = 0; i < args.length; i++) at = writeBulk(buf, at, texts[i]!, lengths[i]!, asciis[i]!);
  return buf;
}

// Lengths and counts are small non-negative integers: `| 0` keeps them in integer registers
// (Math.floor and % on doubles made encode several times slower).
function digits(n: number): number {
  let d = 1;
  while (n >= 10) {
    n = (n / 10) | 0;
    d++;
  }
  return d;
}

function bulkSize(len: number): number {
  return 1 + digits(len) + 2 + len + 2;
}

function writeDigits(buf: Buffer, at: number, n: number): number {
  const d = digits(n);
  for (let i = at + d - 1; i >= at; i--) {
    const q = (n / 10) | 0;
    buf[i] = 0x30 + n - q * 10;
    n = q;
  }
  return at + d;
}

function crlf(buf: Buffer, at: number): number {
  buf[at] = 0x0d;
  buf[at + 1] = 0x0a;
  return at + 2;
}

function writeBulk(buf: Buffer, at: number, text: string, len: number, ascii: boolean): number {
  buf[at] = 0x24; // $
  at = crlf(buf, writeDigits(buf, at + 1, len));
  if (ascii) for (let i = 0; i < len; i++) buf[at + i] = text.charCodeAt(i);
  else if (len > 0) buf.write(text, at, len, 'utf8');
  return crlf(buf, at + len);
}
