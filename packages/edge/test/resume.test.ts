import { test } from 'node:test';
import assert from 'node:assert/strict';
import { publishJson, RawHttpClient, seqOf, startTestHub, type SseEvent } from '@cyclone-sse/testkit';

async function pub(base: string, channel: string, data: string): Promise<string> {
  const r = await publishJson(base, { channel, data });
  assert.equal(r.status, 200, r.text);
  return (r.json as { ids: string[] }).ids[0]!;
}

async function open(port: number, path: string, lastEventId?: string): Promise<RawHttpClient> {
  const c = await RawHttpClient.request(port, path, { headers: lastEventId === undefined ? {} : { 'Last-Event-ID': lastEventId } });
  await c.until((x) => x.body.includes(':ok\n\n'), 5000, 'open');
  return c;
}

const reset = (e: SseEvent) => (e.event === 'reset' ? (JSON.parse(e.data) as { channels: string[]; reason: string }) : undefined);

test('cursor inside history: replays exactly the messages after it, then live', async (t) => {
  const { port, base } = await startTestHub(t);
  const ids = [];
  for (let i = 0; i < 5; i++) ids.push(await pub(base, 'r', `m${i}`));
  const c = await open(port, '/?channels=r', ids[1]);
  t.after(() => c.close());
  await c.untilEvents(3);
  const live = await pub(base, 'r', 'live');
  await c.untilEvents(4);
  assert.deepEqual(
    c.events.map((e) => e.id),
    [ids[2], ids[3], ids[4], live],
  );
  assert.deepEqual(
    c.events.map((e) => e.data),
    ['m2', 'm3', 'm4', 'live'],
  );
});

test('lastEventId query parameter resumes like the header', async (t) => {
  const { port, base } = await startTestHub(t);
  const a = await pub(base, 'q', 'one');
  const b = await pub(base, 'q', 'two');
  const c = await open(port, `/?channels=q&lastEventId=${encodeURIComponent(a)}`);
  t.after(() => c.close());
  await c.untilEvents(1);
  assert.deepEqual(
    c.events.map((e) => e.id),
    [b],
  );
});

test('cursor at the top: nothing replayed, no reset, live continues', async (t) => {
  const { port, base } = await startTestHub(t);
  const top = await pub(base, 'r', 'x');
  const c = await open(port, '/?channels=r', top);
  t.after(() => c.close());
  const next = await pub(base, 'r', 'next');
  await c.untilEvents(1);
  assert.deepEqual(
    c.events.map((e) => [e.id, e.data, e.event]),
    [[next, 'next', undefined]],
  );
});

test('no publish on the channel since the cursor (others published): no reset', async (t) => {
  const { port, base } = await startTestHub(t, ['--history-size', '2']);
  const cursor = await pub(base, 'quiet', 'old');
  for (let i = 0; i < 10; i++) await pub(base, 'busy', `b${i}`);
  const c = await open(port, '/?channels=quiet', cursor);
  t.after(() => c.close());
  const sentinel = await pub(base, 'quiet', 'sentinel');
  await c.untilEvents(1);
  assert.deepEqual(
    c.events.map((e) => e.id),
    [sentinel],
  );
});

test('multi-channel resume merges in global order, no duplicates', async (t) => {
  const { port, base } = await startTestHub(t);
  const cursor = await pub(base, 'a', 'start');
  const expected: string[] = [];
  for (let i = 0; i < 12; i++) {
    const ch = ['a', 'b', 'c'][i % 3]!;
    const id = await pub(base, ch, `${ch}${i}`);
    if (ch !== 'c') expected.push(id);
  }
  const c = await open(port, '/?channels=a&channels=b', cursor);
  t.after(() => c.close());
  await c.untilEvents(expected.length);
  assert.deepEqual(
    c.events.map((e) => e.id),
    expected,
  );
});

test('history trimmed past the cursor: reset for that channel with the top id, others replayed', async (t) => {
  const { port, base } = await startTestHub(t, ['--history-size', '3']);
  const cursor = await pub(base, 'small', 's0');
  const kept = await pub(base, 'other', 'o1');
  for (let i = 1; i <= 5; i++) await pub(base, 'small', `s${i}`);
  const top = await pub(base, 'unrelated', 'u');
  const c = await open(port, '/?channels=small&channels=other', cursor);
  t.after(() => c.close());
  await c.untilEvents(2);
  assert.deepEqual(c.events[0]!.id, kept);
  assert.equal(c.events[1]!.event, 'reset');
  assert.equal(c.events[1]!.id, top);
  assert.deepEqual(reset(c.events[1]!), { channels: ['small'], reason: 'trimmed' });
  const live = await pub(base, 'small', 'live');
  await c.untilEvents(3);
  assert.deepEqual(c.events[2]!.id, live);
});

for (const [name, cursorOf, reason] of [
  ['unknown epoch', (id: string) => `zzzzzz-${seqOf(id)}`, 'epoch'],
  ['malformed', () => 'not-an-id!', 'malformed'],
  ['from the future', (id: string) => `${id.split('-')[0]}-${seqOf(id) + 1000}`, 'future'],
] as const) {
  test(`cursor ${name}: reset for every requested channel, then live`, async (t) => {
    const { port, base } = await startTestHub(t);
    await pub(base, 'a', 'one');
    const top = await pub(base, 'b', 'two');
    const c = await open(port, '/?channels=a&channels=b', cursorOf(top));
    t.after(() => c.close());
    await c.untilEvents(1);
    assert.equal(c.events[0]!.event, 'reset');
    assert.equal(c.events[0]!.id, top);
    assert.deepEqual(reset(c.events[0]!), { channels: ['a', 'b'], reason });
    const live = await pub(base, 'a', 'live');
    await c.untilEvents(2);
    assert.equal(c.events[1]!.id, live);
  });
}

test('no gap and no duplicate between replay and messages published during the replay', async (t) => {
  const { port, base } = await startTestHub(t);
  const cursor = await pub(base, 'race', 'start');
  const published: string[] = [];
  for (let i = 0; i < 50; i++) published.push(await pub(base, 'race', `pre${i}`));
  let stop = false;
  const loop = (async () => {
    for (let i = 0; i < 300 && !stop; i++) published.push(await pub(base, 'race', `during${i}`));
  })();
  const clients: RawHttpClient[] = [];
  for (let i = 0; i < 5; i++) clients.push(await open(port, '/?channels=race', cursor));
  t.after(() => clients.forEach((c) => c.close()));
  stop = true;
  await loop;
  const sentinel = await pub(base, 'race', 'sentinel');
  published.push(sentinel);
  for (const c of clients) {
    await c.until((x) => x.events.some((e) => e.id === sentinel), 5000, 'sentinel');
    assert.deepEqual(
      c.events.map((e) => e.id),
      published,
    );
  }
});
