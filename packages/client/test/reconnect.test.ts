/**
 * The client's connection logic against a scripted EventSource (the browser behaviour is
 * covered in Chromium by test/system/client.test.ts): recreate after the browser gave up,
 * with backoff and ?lastEventId=; duplicates dropped by id; reset always taken; routing of
 * ["name", data] payloads; token refresh on token-expired.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect, isNewer, type Message } from '@cyclone-sse/client';

class FakeEventSource {
  static instances: FakeEventSource[] = [];
  readyState = 0;
  onopen: (() => void) | null = null;
  onerror: (() => void) | null = null;
  readonly listeners = new Map<string, ((e: { data: string; lastEventId: string }) => void)[]>();
  readonly createdAt = Date.now();
  constructor(readonly url: URL) {
    FakeEventSource.instances.push(this);
  }
  addEventListener(type: string, fn: (e: { data: string; lastEventId: string }) => void): void {
    this.listeners.set(type, [...(this.listeners.get(type) ?? []), fn]);
  }
  close(): void {
    this.readyState = 2;
  }
  /** Server side: the stream opened (like a browser: onopen and the 'open' listeners). */
  opened(): void {
    this.readyState = 1;
    this.onopen?.();
    for (const fn of this.listeners.get('open') ?? []) fn({ data: '', lastEventId: '' });
  }
  emit(type: string, data: string, lastEventId: string): void {
    for (const fn of this.listeners.get(type) ?? []) fn({ data, lastEventId });
  }
  /** What a browser does on a 502: fail the connection for good. */
  giveUp(): void {
    this.readyState = 2;
    this.onerror?.();
    for (const fn of this.listeners.get('error') ?? []) fn({ data: '', lastEventId: '' });
  }
}
(globalThis as unknown as { EventSource: unknown }).EventSource = FakeEventSource;

async function next(n: number, timeoutMs = 2000): Promise<FakeEventSource> {
  const deadline = Date.now() + timeoutMs;
  while (FakeEventSource.instances.length < n) {
    if (Date.now() > deadline) throw new Error(`no EventSource #${n}`);
    await sleep(2);
  }
  return FakeEventSource.instances[n - 1]!;
}

test('isNewer compares ids of one epoch by sequence; other epochs and foreign ids pass', () => {
  assert.equal(isNewer('ab-10', 'ab-9'), true);
  assert.equal(isNewer('ab-9', 'ab-10'), false);
  assert.equal(isNewer('ab-10', 'ab-10'), false);
  assert.equal(isNewer('cd-1', 'ab-10'), true);
  assert.equal(isNewer('ab-1', ''), true);
  assert.equal(isNewer('uuid', 'ab-1'), true);
});

test('after the browser gives up: recreated with backoff and ?lastEventId=, duplicates dropped, reset taken', async (t) => {
  FakeEventSource.instances = [];
  const c = connect({ url: 'http://hub.test/sse/', channels: ['a', 'b c'], shared: false, minDelay: 40, maxDelay: 80 });
  t.after(() => c.close());
  const got: Message[] = [];
  const opens: string[] = [];
  c.on('message', (m) => got.push(m));
  c.on('reset', (m) => got.push(m));
  c.on('open', () => opens.push('open'));
  c.on('error', () => opens.push('error'));

  const es1 = await next(1);
  assert.equal(es1.url.href, 'http://hub.test/sse/?channels=a&channels=b+c');
  es1.opened();
  es1.emit('message', 'm1', 'ep-1');
  es1.emit('message', 'm2', 'ep-2');
  es1.giveUp();
  const gaveUpAt = Date.now();

  const es2 = await next(2);
  const waited = es2.createdAt - gaveUpAt;
  assert.ok(waited >= 15, `backoff before recreating (${waited} ms)`);
  assert.equal(es2.url.searchParams.get('lastEventId'), 'ep-2');
  assert.deepEqual(es2.url.searchParams.getAll('channels'), ['a', 'b c']);
  es2.giveUp(); // a second failure doubles the delay
  const es3 = await next(3);
  assert.ok(es3.createdAt - es2.createdAt >= 35, `second backoff longer (${es3.createdAt - es2.createdAt} ms)`);
  es3.opened();
  es3.emit('message', 'm2 again', 'ep-2'); // overlap: already delivered
  es3.emit('message', 'm3', 'ep-3');
  es3.emit('reset', '{"channels":["a"],"reason":"trimmed"}', 'ep-3');
  es3.emit('message', 'new epoch', 'xy-1');

  assert.deepEqual(
    got.map((m) => [m.type, m.data, m.lastEventId]),
    [
      ['message', 'm1', 'ep-1'],
      ['message', 'm2', 'ep-2'],
      ['message', 'm3', 'ep-3'],
      ['reset', '{"channels":["a"],"reason":"trimmed"}', 'ep-3'],
      ['message', 'new epoch', 'xy-1'],
    ],
  );
  assert.deepEqual(opens, ['open', 'error', 'open']);
  assert.equal(c.lastEventId, 'xy-1');
});

test('route() dispatches ["name", data] payloads; onReset parses the reset body', async (t) => {
  FakeEventSource.instances = [];
  const c = connect({ url: 'http://hub.test/', channels: ['base'], shared: false });
  t.after(() => c.close());
  const comments: unknown[] = [];
  const resets: unknown[] = [];
  c.route('comment', (data) => comments.push(data));
  c.onReset((info) => resets.push(info));
  const es = await next(1);
  es.opened();
  es.emit('message', '["comment", {"text": "hi"}]', 'e-1');
  es.emit('message', '["other", 1]', 'e-2');
  es.emit('message', 'not json', 'e-3');
  es.emit('message', '["comment", "123"]', 'e-4');
  es.emit('reset', '{"channels":["base"],"reason":"malformed"}', 'e-9');
  assert.deepEqual(comments, [{ text: 'hi' }, '123']);
  assert.deepEqual(resets, [{ channels: ['base'], reason: 'malformed' }]);
});

test('token-expired: surfaced, then a new token is fetched and the stream resumes with it', async (t) => {
  FakeEventSource.instances = [];
  let n = 0;
  const c = connect({ url: 'http://hub.test/', channels: ['p'], shared: false, token: async () => `tok${++n}` });
  t.after(() => c.close());
  const expired: string[] = [];
  c.on('token-expired', (m) => expired.push(m.lastEventId));
  const es1 = await next(1);
  assert.equal(es1.url.searchParams.get('token'), 'tok1');
  es1.opened();
  es1.emit('message', 'x', 'e-5');
  es1.emit('token-expired', '{}', 'e-5');
  const es2 = await next(2);
  assert.equal(es1.readyState, 2, 'old stream closed');
  assert.equal(es2.url.searchParams.get('token'), 'tok2');
  assert.equal(es2.url.searchParams.get('lastEventId'), 'e-5');
  assert.deepEqual(expired, ['e-5']);
});
