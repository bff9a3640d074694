/**
 * @cyclone-sse/client — a browser client for cyclone-sse. ESM, no dependencies, one file: the
 * edge serves this very file at `/client.js` (so it stays one module on purpose).
 *
 * - Wraps the native EventSource. The browser reconnects by itself after a network error; after
 *   a non-200 answer (a proxy's 502) it gives up for good (readyState CLOSED). Then this client
 *   creates a new EventSource with backoff, passing the last id as `?lastEventId=` (a new
 *   EventSource has no Last-Event-ID of its own), so the hub replays what was missed.
 * - One connection per origin and channel set for all tabs: the tab holding a Web Lock is the
 *   leader and forwards every message, with its id, over a BroadcastChannel. When it goes away
 *   another tab takes the lock and resumes from the last id it saw: no gap, and duplicates from
 *   the overlap are dropped by id. Without Web Locks or BroadcastChannel every tab connects.
 * - `reset` (history could not cover a gap: reload your state) and `token-expired` (get a new
 *   token) arrive as events. Frames carry no channel name: route by `event:` type with `on()`,
 *   or by element 0 of a `["name", data]` payload (the jquery.sse.js convention) with `route()`.
 */

export interface ClientOptions {
  /** Channels to subscribe to (repeated `channels` parameters). */
  channels: string[];
  /** Stream URL. Default: the root of the origin that served this module (the hub's /client.js). */
  url?: string | URL;
  /** Resume after this id on the first connection. */
  lastEventId?: string;
  /** Share one connection between the tabs of this origin (default true). */
  shared?: boolean;
  /** Name of the shared connection (lock and BroadcastChannel). Default: url + channels. */
  name?: string;
  withCredentials?: boolean;
  /** Backoff bounds in ms for recreating a connection the browser gave up on (1000 … 30000). */
  minDelay?: number;
  maxDelay?: number;
  /** Subscriber token: a value, or a function called before every (re)connect. */
  token?: string | (() => string | Promise<string>);
  /** Query parameter that carries the token (default `token`). */
  tokenParam?: string;
}

/** One event as the page sees it. `type` is the `event:` field, `message` when there was none. */
export interface Message {
  type: string;
  data: string;
  lastEventId: string;
}

export interface ResetInfo {
  channels: string[];
  reason: string;
}

export type Handler = (msg: Message) => void;
export type RouteHandler = (data: unknown, msg: Message) => void;

/** What tabs tell each other: m = message, s = leader state, h = follower hello (+ its types), l = new leader. */
type Peer =
  { t: 'm'; type: string; data: string; id: string } | { t: 's'; open: boolean; id: string } | { t: 'h'; types: string[] } | { t: 'l' };

const ID = /^(.*)-(\d+)$/;
/** The client's own events: never stream event types (the native `open`/`error` are not messages). */
const OWN = ['open', 'error', 'leader'];

/** True unless `id` is an `<epoch>-<seq>` id at or below `last` in the same epoch (a duplicate). */
export function isNewer(id: string, last: string): boolean {
  const a = ID.exec(id);
  const b = ID.exec(last);
  return !a || !b || a[1] !== b[1] || Number(a[2]) > Number(b[2]);
}

/** Calls a handler; an exception is reported without stopping the others. */
function call<A extends unknown[]>(fn: (...args: A) => void, ...args: A): void {
  try {
    fn(...args);
  } catch (err) {
    setTimeout(() => {
      throw err;
    });
  }
}

export class CycloneClient {
  /** Id of the last event delivered; the resume point. */
  lastEventId: string;
  /** True while this tab holds the connection. */
  leader = false;
  /** True while the connection (this tab's or the leader's) is open. */
  open = false;
  readonly url: URL;
  #o: ClientOptions;
  #key: string;
  #es?: EventSource;
  #bc?: BroadcastChannel;
  #handlers = new Map<string, Set<Handler>>();
  #routes = new Map<string, Set<RouteHandler>>();
  #peerTypes = new Set<string>();
  #listened = new Set<string>();
  #attempt = 0;
  #timer?: ReturnType<typeof setTimeout>;
  #release?: () => void;
  #abort?: AbortController;
  #token?: string;
  #closed = false;

  constructor(options: ClientOptions) {
    this.#o = options;
    this.url = new URL(options.url ?? new URL('/', import.meta.url), globalThis.location?.href);
    this.lastEventId = options.lastEventId ?? '';
    if (typeof options.token === 'string') this.#token = options.token;
    this.#key = options.name ?? `cyclone-sse ${this.url.href} ${[...options.channels].sort().join(',')}`;
  }

  /** Starts: as the leader at once, or as a follower waiting for the lock. Called by `connect()`. */
  start(): this {
    const locks = globalThis.navigator?.locks;
    if (this.#o.shared === false || !locks || typeof BroadcastChannel !== 'function') {
      this.#lead();
      return this;
    }
    const bc = (this.#bc = new BroadcastChannel(this.#key));
    bc.onmessage = (e: MessageEvent<Peer>) => this.#peer(e.data);
    this.#abort = new AbortController();
    locks
      .request(
        this.#key,
        { signal: this.#abort.signal },
        () =>
          new Promise<void>((resolve) => {
            this.#release = resolve;
            this.#lead();
          }),
      )
      .catch(() => {});
    this.#post({ t: 'h', types: this.#types() });
    return this;
  }

  /** Handler for an event type: `message` (no `event:` field), any `event:` name, `reset`, `token-expired`; and the client's own `open`, `error`, `leader`. Returns an unsubscribe function. */
  on(type: string, handler: Handler): () => void {
    let set = this.#handlers.get(type);
    if (!set) {
      this.#handlers.set(type, (set = new Set()));
      if (!OWN.includes(type)) {
        this.#listen(type);
        this.#post({ t: 'h', types: [type] });
      }
    }
    set.add(handler);
    return () => set.delete(handler);
  }

  /** `reset`: history could not cover the gap for these channels; reload their state. */
  onReset(handler: (info: ResetInfo, msg: Message) => void): () => void {
    return this.on('reset', (m) => handler(JSON.parse(m.data) as ResetInfo, m));
  }

  /** jquery.sse.js routing: `message` payloads `["name", data]` go to the handlers of `name`. */
  route(name: string, handler: RouteHandler): () => void {
    let set = this.#routes.get(name);
    if (!set) this.#routes.set(name, (set = new Set()));
    set.add(handler);
    return () => set.delete(handler);
  }

  /** Uses a new token from now on and, in the leader, reconnects with it (resuming). */
  setToken(token: string): void {
    this.#token = token;
    this.reconnect();
  }

  /** Leader: drops the current connection and opens a new one at once, resuming from the last id. */
  reconnect(): void {
    if (!this.leader || this.#closed) return;
    this.#drop();
    this.#attempt = 0;
    void this.#connect();
  }

  close(): void {
    this.#closed = true;
    this.#drop();
    this.#abort?.abort();
    this.#release?.();
    this.#bc?.close();
    this.leader = false;
    this.open = false;
  }

  #types(): string[] {
    return [...new Set(['message', 'reset', 'token-expired', ...this.#handlers.keys(), ...this.#peerTypes])].filter(
      (t) => !OWN.includes(t),
    );
  }

  #post(msg: Peer): void {
    this.#bc?.postMessage(msg);
  }

  #emit(type: string, msg: Message): void {
    for (const h of this.#handlers.get(type) ?? []) call(h, msg);
  }

  #status(open: boolean): void {
    if (this.leader) this.#post({ t: 's', open, id: this.lastEventId });
    if (open === this.open) return;
    this.open = open;
    this.#emit(open ? 'open' : 'error', { type: open ? 'open' : 'error', data: '', lastEventId: this.lastEventId });
  }

  #lead(): void {
    if (this.#closed) return this.#release?.();
    this.leader = true;
    this.#emit('leader', { type: 'leader', data: '', lastEventId: this.lastEventId });
    this.#post({ t: 'l' });
    void this.#connect();
  }

  #drop(): void {
    clearTimeout(this.#timer);
    this.#es?.close();
    this.#es = undefined;
  }

  async #connect(): Promise<void> {
    const { token, tokenParam = 'token', channels, withCredentials = false } = this.#o;
    if (typeof token === 'function') this.#token = await token();
    if (this.#closed || this.#es) return;
    const u = new URL(this.url);
    for (const c of channels) u.searchParams.append('channels', c);
    if (this.lastEventId) u.searchParams.set('lastEventId', this.lastEventId);
    if (this.#token) u.searchParams.set(tokenParam, this.#token);
    const es = (this.#es = new EventSource(u, { withCredentials }));
    this.#listened = new Set();
    for (const t of this.#types()) this.#listen(t);
    es.onopen = () => {
      this.#attempt = 0;
      this.#status(true);
    };
    es.onerror = () => {
      if (es !== this.#es) return;
      this.#status(false);
      // CLOSED: the browser gave up (non-200, wrong type). Recreate it, with backoff.
      if (es.readyState === 2) {
        this.#drop();
        const { minDelay = 1000, maxDelay = 30000 } = this.#o;
        const delay = Math.min(maxDelay, minDelay * 2 ** this.#attempt++);
        this.#timer = setTimeout(() => void this.#connect(), delay / 2 + (Math.random() * delay) / 2);
      }
    };
  }

  #listen(type: string): void {
    const es = this.#es;
    if (!es || this.#listened.has(type) || OWN.includes(type)) return;
    this.#listened.add(type);
    es.addEventListener(type, (e) => {
      if (es !== this.#es) return;
      const { data, lastEventId } = e as MessageEvent<string>;
      this.#receive(type, data, lastEventId, true);
    });
  }

  #receive(type: string, data: string, id: string, fromServer: boolean): void {
    // Control events are always taken: a reset moves the cursor (to the top of the sequence, or
    // into a new epoch); token-expired may carry no id of its own.
    if (type !== 'reset' && type !== 'token-expired' && !isNewer(id, this.lastEventId)) return;
    if (id) this.lastEventId = id;
    if (fromServer) this.#post({ t: 'm', type, data, id });
    const msg: Message = { type, data, lastEventId: id };
    this.#emit(type, msg);
    if (type === 'message' && this.#routes.size > 0) {
      let v: unknown;
      try {
        v = JSON.parse(data);
      } catch {
        /* not JSON: no route */
      }
      if (Array.isArray(v) && typeof v[0] === 'string') for (const h of this.#routes.get(v[0]) ?? []) call(h, v[1], msg);
    }
    // The stream ends after token-expired; reconnecting with the same token is pointless.
    if (type === 'token-expired' && fromServer) {
      this.#drop();
      this.#status(false);
      if (typeof this.#o.token === 'function') void this.#connect();
    }
  }

  #peer(p: Peer): void {
    if (p.t === 'h' && this.leader) {
      for (const t of p.types) this.#peerTypes.add(t);
      for (const t of p.types) this.#listen(t);
      this.#post({ t: 's', open: this.open, id: this.lastEventId });
    } else if (this.leader) {
      return; // late words of a previous leader: the resume covers them
    } else if (p.t === 'm') {
      this.#receive(p.type, p.data, p.id, false);
    } else if (p.t === 's') {
      if (p.id && isNewer(p.id, this.lastEventId)) this.lastEventId = p.id;
      this.#status(p.open);
    } else if (p.t === 'l') {
      this.#post({ t: 'h', types: this.#types() });
    }
  }
}

/** Creates and starts a client. */
export function connect(options: ClientOptions): CycloneClient {
  return new CycloneClient(options).start();
}

export interface ElementsOptions extends Partial<ClientOptions> {
  root?: ParentNode;
  selector?: string;
  channelAttr?: string;
  eventAttr?: string;
  eventPrefix?: string;
}

/**
 * The jquery.sse.js contract without jQuery: one connection for the channels listed by every
 * `.sse` element (`data-sse-channels="a,b"`); a `["name", data]` message fires a bubbling
 * CustomEvent `sse.name` (detail = data) on each element listing `name` in `data-sse-events`;
 * `sse.open` / `sse.error` on all of them. The URL defaults to the plugin's `/sse/`.
 */
export function bindElements(options: ElementsOptions = {}): CycloneClient | undefined {
  const {
    root = document,
    selector = '.sse',
    channelAttr = 'data-sse-channels',
    eventAttr = 'data-sse-events',
    eventPrefix = 'sse.',
  } = options;
  const els = [...root.querySelectorAll(selector)];
  const list = (el: Element, attr: string) =>
    (el.getAttribute(attr) ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
  const channels = [...new Set(els.flatMap((el) => list(el, channelAttr)))];
  if (channels.length === 0) return undefined;
  const fire = (el: Element, name: string, detail?: unknown) =>
    el.dispatchEvent(new CustomEvent(eventPrefix + name, { detail, bubbles: true }));
  const client = new CycloneClient({ url: '/sse/', ...options, channels });
  for (const s of ['open', 'error']) client.on(s, () => els.forEach((el) => fire(el, s)));
  for (const name of new Set(els.flatMap((el) => list(el, eventAttr)))) {
    client.route(name, (data) => els.forEach((el) => list(el, eventAttr).includes(name) && fire(el, name, data)));
  }
  return client.start();
}
