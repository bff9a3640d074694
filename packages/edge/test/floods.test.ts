import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { RawHttpClient, publishJson, spawnNode, waitFor } from '@cyclone-sse/testkit';

/** A control subscriber plus a publisher loop: returns a function that stops it and checks exactness. */
async function control(node: { port: number; base: string }) {
  const sub = await RawHttpClient.request(node.port, '/?channels=control');
  await sub.until((x) => x.body.includes(':ok'), 5000, 'control open');
  const sent: string[] = [];
  let run = true;
  const loop = (async () => {
    for (let i = 0; run; i++) {
      const r = await publishJson(node.base, { channel: 'control', data: `c${i}` });
      assert.equal(r.status, 200);
      sent.push((r.json as { ids: string[] }).ids[0]!);
      await new Promise((res) => setTimeout(res, 20));
    }
  })();
  return async () => {
    run = false;
    await loop;
    await sub.untilEvents(sent.length, 10_000);
    assert.deepEqual(
      sub.events.map((e) => e.id),
      sent,
      'control subscriber lost nothing',
    );
    assert.ok(sent.length > 10);
    sub.close();
  };
}

test('2 000 connections opened and dropped in a loop: the edge keeps serving a control subscriber', async (t) => {
  const node = await spawnNode('all-in-one', ['--log-level', 'info']);
  t.after(() => node.stop());
  const check = await control(node);
  for (let round = 0; round < 10; round++) {
    const batch = await Promise.all(
      Array.from({ length: 200 }, (_, i) => RawHttpClient.request(node.port, `/?channels=flood${i % 7}&channels=control`)),
    );
    await Promise.all(batch.map((c, i) => (i % 2 ? Promise.resolve() : c.until((x) => x.body.includes(':ok'), 5000, 'open'))));
    for (const c of batch) {
      if (c.socket.resetAndDestroy) c.socket.resetAndDestroy();
      else c.close();
    }
  }
  await check();
  const stats = (await (await fetch(`${node.base}/stats`)).json()) as [string, number][];
  await waitFor(
    async () => ((await (await fetch(`${node.base}/stats`)).json()) as [string, number][]).length === 0,
    10_000,
    `flood connections all gone (${JSON.stringify(stats)})`,
  );
});

test('slowloris headers and a body dripped 1 byte at a time are cut by the server; others unaffected', async (t) => {
  const node = await spawnNode('all-in-one', ['--log-level', 'info']);
  t.after(() => node.stop());
  const check = await control(node);
  const sockets: Socket[] = [];
  const closed = new Set<Socket>();
  t.after(() => sockets.forEach((s) => s.destroy()));
  const open = () =>
    new Promise<Socket>((resolve) => {
      const s = connect(node.port, '127.0.0.1', () => resolve(s));
      s.on('close', () => closed.add(s));
      s.on('error', () => closed.add(s));
      sockets.push(s);
    });
  // 20 slowloris requests: one header byte every 500 ms.
  const loris = await Promise.all(Array.from({ length: 20 }, open));
  const head = 'GET /?channels=control HTTP/1.1\r\nHost: x\r\nX-Pad: ' + 'a'.repeat(200);
  // 2 MiB body announced as chunked (no length), dripped one byte at a time.
  const drips = await Promise.all(Array.from({ length: 3 }, open));
  for (const d of drips)
    d.write('POST /publish HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n');
  let i = 0;
  const timer = setInterval(() => {
    for (const s of loris) if (!closed.has(s)) s.write(head[i % head.length]!);
    for (const d of drips) if (!closed.has(d)) d.write('1\r\n[\r\n');
    i++;
  }, 500);
  t.after(() => clearInterval(timer));
  await waitFor(() => [...loris, ...drips].every((s) => closed.has(s)), 25_000, 'server to cut every slow request', 200);
  clearInterval(timer);
  assert.ok(i * 2 < 2 * 1024 * 1024, 'cut long before 2 MiB arrived');
  await check();
});

test('a request with too many headers is dropped without harming the edge', async (t) => {
  const node = await spawnNode('all-in-one', ['--log-level', 'info']);
  t.after(() => node.stop());
  const check = await control(node);
  const headers: Record<string, string> = {};
  for (let i = 0; i < 80; i++) headers[`X-H${i}`] = 'v';
  const c = await RawHttpClient.request(node.port, '/?channels=control', { headers });
  await c.untilEnded(15_000);
  assert.equal(c.status, 0, 'no response, connection closed');
  await check();
});
