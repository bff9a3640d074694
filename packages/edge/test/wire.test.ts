import { test } from 'node:test';
import assert from 'node:assert/strict';
import { publishForm, publishJson, RawHttpClient, startTestHub } from '@cyclone-sse/testkit';

/** Each stream's own `retry:` is spread by --retry-jitter; 0 pins it, so the bytes can be compared exactly. */
const EXACT_RETRY = ['--retry-jitter', '0'];

test('stream headers and first bytes are exact', async (t) => {
  const { port, hub } = await startTestHub(t, ['--retry', '2500', ...EXACT_RETRY]);
  const c = await RawHttpClient.request(port, '/?channels=base&uuid=123&_=456');
  t.after(() => c.close());
  await c.until((x) => x.body.includes(':ok\n\n'), 5000, 'first bytes');
  assert.equal(c.status, 200);
  assert.equal(c.header('Content-Type'), 'text/event-stream');
  assert.equal(c.header('Cache-Control'), 'no-cache, no-transform');
  assert.equal(c.header('X-Accel-Buffering'), 'no');
  assert.equal(c.header('Access-Control-Allow-Origin'), '*');
  // Opened without a cursor: the priming id is the current position (nothing published yet).
  const { epoch, seq } = await hub.broker.position();
  assert.equal(c.body, `retry: 2500\nid: ${epoch}-${seq}\n:ok\n\n`);
  assert.equal(c.events.length, 0, 'the priming block is no event');
});

test('by default each stream gets its own retry: in [retry, 1.5 × retry], then the same bytes', async (t) => {
  const { port, hub } = await startTestHub(t, ['--retry', '2500']);
  const { epoch, seq } = await hub.broker.position();
  const streams = await Promise.all(Array.from({ length: 40 }, () => RawHttpClient.request(port, '/?channels=base')));
  t.after(() => streams.forEach((c) => c.close()));
  const retries: number[] = [];
  for (const c of streams) {
    await c.until((x) => x.body.includes(':ok\n\n'), 5000, 'first bytes');
    const m = /^retry: (\d+)\nid: (\S+)\n:ok\n\n$/.exec(c.body);
    assert.ok(m, c.body);
    assert.equal(m[2], `${epoch}-${seq}`);
    retries.push(Number(m[1]));
  }
  for (const r of retries) assert.ok(r >= 2500 && r <= 3750, `retry: ${r} within [2500, 3750]`);
  // 40 uniform draws over 1250 ms: all within 300 ms of each other has a probability below 1e-20.
  assert.ok(Math.max(...retries) - Math.min(...retries) > 300, `spread: ${retries.join(' ')}`);
});

test('one frame per message: id, optional event, one data line per payload line', async (t) => {
  const { port, base } = await startTestHub(t, EXACT_RETRY);
  const c = await RawHttpClient.request(port, '/sse?channels=wire');
  t.after(() => c.close());
  await c.until((x) => x.body.includes(':ok'), 5000, 'open');
  const r1 = await publishJson(base, { channel: 'wire', data: '["a", 1]' });
  const r2 = await publishJson(base, { channel: 'wire', data: 'l1\nl2\r\nl3\rl4', event: 'multi' });
  const r3 = await publishForm(base, [
    ['channel', 'wire'],
    ['message', '[123, 124]'],
  ]);
  assert.equal(r3.text, '{"status": "ok"}');
  await c.untilEvents(3);
  const [id1] = (r1.json as { ids: string[] }).ids;
  const [id2] = (r2.json as { ids: string[] }).ids;
  const epoch = id1!.split('-')[0];
  const id3 = `${epoch}-${Number(id2!.split('-')[1]) + 1}`;
  assert.equal(
    c.body,
    `retry: 2000\nid: ${epoch}-${Number(id1!.split('-')[1]) - 1}\n:ok\n\n` +
      `id: ${id1}\ndata: ["a", 1]\n\n` +
      `id: ${id2}\nevent: multi\ndata: l1\ndata: l2\ndata: l3\ndata: l4\n\n` +
      `id: ${id3}\ndata: [123, 124]\n\n`,
  );
});

test('ids strictly increase across channels and only subscribed channels arrive', async (t) => {
  const { port, base } = await startTestHub(t);
  const c = await RawHttpClient.request(port, '/?channels=a&channels=b');
  t.after(() => c.close());
  await c.until((x) => x.body.includes(':ok'), 5000, 'open');
  const sent: string[] = [];
  for (let i = 0; i < 30; i++) {
    const ch = ['a', 'b', 'other'][i % 3]!;
    const r = await publishJson(base, { channel: ch, data: `m${i}` });
    if (ch !== 'other') sent.push(...(r.json as { ids: string[] }).ids);
  }
  await c.untilEvents(sent.length);
  const ids = c.events.map((e) => e.id!);
  assert.deepEqual(ids, sent);
  const seqs = ids.map((id) => Number(id.split('-')[1]));
  for (let i = 1; i < seqs.length; i++) assert.ok(seqs[i]! > seqs[i - 1]!, 'strictly increasing');
  assert.ok(!c.events.some((e) => e.data.startsWith('m') && Number(e.data.slice(1)) % 3 === 2));
});

test('a message published to two subscribed channels arrives twice with two ids', async (t) => {
  const { port, base } = await startTestHub(t);
  const c = await RawHttpClient.request(port, '/?channels=x&channels=y');
  t.after(() => c.close());
  await c.until((x) => x.body.includes(':ok'), 5000, 'open');
  const r = await publishForm(base, [
    ['channel', 'x'],
    ['channel', 'y'],
    ['message', 'both'],
  ]);
  assert.equal(r.status, 200);
  await c.untilEvents(2);
  assert.deepEqual(
    c.events.map((e) => e.data),
    ['both', 'both'],
  );
  assert.notEqual(c.events[0]!.id, c.events[1]!.id);
});

test('heartbeat comment after the configured idle interval', async (t) => {
  const { port } = await startTestHub(t, ['--heartbeat', '0.2', ...EXACT_RETRY]);
  const c = await RawHttpClient.request(port, '/?channels=hb');
  t.after(() => c.close());
  await c.until((x) => /^retry: 2000\nid: [0-9a-z]+-0\n:ok\n\n:\n\n:\n\n/.test(x.body), 5000, 'two heartbeats');
  assert.equal(c.events.length, 0);
});

test('channel names are trimmed and de-duplicated; commas are not split', async (t) => {
  const { port, base } = await startTestHub(t);
  const c = await RawHttpClient.request(port, '/?channels=%20spaced%20&channels=spaced&channels=a,b');
  t.after(() => c.close());
  await c.until((x) => x.body.includes(':ok'), 5000, 'open');
  const stats = (await (await fetch(`${base}/stats`)).json()) as [string, number][];
  assert.deepEqual(stats.sort(), [
    ['a,b', 1],
    ['spaced', 1],
  ]);
  await publishJson(base, { channel: 'a', data: 'not-for-me' });
  await publishJson(base, { channel: 'a,b', data: 'comma' });
  await publishJson(base, { channel: 'spaced', data: 'trimmed' });
  await c.untilEvents(2);
  assert.deepEqual(
    c.events.map((e) => e.data),
    ['comma', 'trimmed'],
  );
});

test('/stats counts local subscribers per channel and drops empty channels', async (t) => {
  const { port, base } = await startTestHub(t);
  const a = await RawHttpClient.request(port, '/?channels=s1&channels=s2');
  const b = await RawHttpClient.request(port, '/?channels=s1');
  await a.until((x) => x.body.includes(':ok'));
  await b.until((x) => x.body.includes(':ok'));
  const stats = async () => ((await (await fetch(`${base}/stats`)).json()) as [string, number][]).sort();
  assert.deepEqual(await stats(), [
    ['s1', 2],
    ['s2', 1],
  ]);
  a.close();
  const deadline = Date.now() + 5000;
  let now = await stats();
  while (JSON.stringify(now) !== JSON.stringify([['s1', 1]]) && Date.now() < deadline) now = await stats();
  assert.deepEqual(now, [['s1', 1]]);
  b.close();
});
