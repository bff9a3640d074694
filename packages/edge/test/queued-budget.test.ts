// The edge's budget for queued bytes (issue 16, --max-queued-bytes-total): many slow readers,
// each under its own --max-queued-bytes, must not add up to an OOM kill. Past the budget the
// connections holding the most are closed as slow (they resume from their last id) and
// everyone else keeps receiving. Real parts: a spawned all-in-one, raw sockets that stop reading.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  channelsPath,
  openStream,
  publishJson,
  scrapeMetric,
  scrapeMetrics,
  spawnNode,
  startCanary,
  startTestHub,
  waitFor,
  watchRss,
  type RawHttpClient,
} from '@cyclone-sse/testkit';

const KiB = 1024;
const MiB = 1024 * KiB;
const PAD = 'q'.repeat(16 * KiB);

/**
 * Publishes `per` messages of ~16 KiB to each channel (one request per channel, so the
 * process's own heap churn stays small next to the queues measured); returns the ids per channel.
 */
async function publishRound(base: string, round: number | string, plan: [string, number][]): Promise<Map<string, string[]>> {
  const ids = new Map<string, string[]>();
  for (const [channel, per] of plan) {
    const r = await publishJson(
      base,
      Array.from({ length: per }, (_, i) => ({ channel, data: `${round}.${i}:${PAD}` })),
    );
    assert.equal(r.status, 200, r.text);
    ids.set(
      channel,
      (r.json as { ids: string[] }[]).map((a) => a.ids[0]!),
    );
  }
  return ids;
}

/** Asserts two id lists are equal, naming the first difference (not printing thousands of ids). */
function sameIds(got: (string | undefined)[], want: string[], what: string): void {
  let i = 0;
  while (i < got.length && i < want.length && got[i] === want[i]) i++;
  if (i === got.length && i === want.length) return;
  assert.fail(`${what}: ${got.length} ids, ${want.length} expected; first difference at ${i}: got ${got[i]}, expected ${want[i]}`);
}

test('slow readers over --max-queued-bytes-total: the largest are closed as slow, the total stays bounded, the others get everything', async (t) => {
  const BUDGET = 16 * MiB;
  const node = await spawnNode('all-in-one', [
    '--log-level',
    'info',
    '--heartbeat',
    '60',
    '--max-body',
    String(4 * MiB),
    '--history-size',
    '16',
    // Far above what any one reader queues here: only the edge's total can close them.
    '--max-queued-bytes',
    String(64 * MiB),
    '--max-queued-bytes-total',
    String(BUDGET),
  ]);
  t.after(() => node.stop(3000));
  const canary = await startCanary({ port: node.port, base: node.base });
  t.after(() => canary.stop().catch(() => undefined)); // stops its publisher if the test failed early

  // Each slow reader has a channel of its own (its queue holds frames nobody else holds). Heavy
  // channels get twice the bytes of light ones, so a heavy reader always holds more.
  const heavy = ['h0', 'h1', 'h2', 'h3'];
  const light = ['l0', 'l1', 'l2', 'l3'];
  const plan: [string, number][] = [...heavy.map((ch): [string, number] => [ch, 32]), ...light.map((ch): [string, number] => [ch, 16])];
  // Warm-up without readers: the heap and allocator grow to what publishing alone costs, so the
  // RSS growth measured below is what the readers' queues cost.
  for (let round = 0; round < 30; round++) await publishRound(node.base, `w${round}`, plan);
  const rss = watchRss(node.pid);
  const baseline = rss.peak();

  const slow = new Map<string, RawHttpClient>();
  t.after(() => slow.forEach((c) => c.close()));
  for (const ch of [...heavy, ...light]) {
    const c = await openStream(node.port, `/?channels=${ch}`);
    c.socket.pause(); // reads nothing from here on
    slow.set(ch, c);
  }
  // A healthy reader on one heavy and one light channel, reading everything as it comes.
  const fast = await openStream(node.port, channelsPath(['h0', 'l0']), { t });

  const published = new Map<string, string[]>([...heavy, ...light].map((ch) => [ch, []]));
  const order: string[] = []; // ids of h0 and l0 in publish order: what the fast reader must get
  let shed = 0;
  let maxQueued = 0;
  const round = async (name: string, roundPlan: [string, number][]) => {
    const ids = await publishRound(node.base, name, roundPlan);
    for (const [ch, list] of ids) published.get(ch)!.push(...list);
    order.push(...(ids.get('h0') ?? []), ...(ids.get('l0') ?? []));
    const m = await scrapeMetrics(node.metricsBase);
    const queued = m.get('cyclone_sse_edge_queued_bytes') ?? NaN;
    maxQueued = Math.max(maxQueued, queued);
    assert.ok(queued <= BUDGET, `queued ${queued} bytes after round ${name}, budget ${BUDGET}`);
    shed = m.get('cyclone_sse_edge_connections_shed_total') ?? 0;
    // Heavy readers always hold more than light ones: no light reader goes while a heavy one is open.
    assert.ok(shed <= heavy.length, `${shed} shed: a light reader went`);
    assert.equal(m.get('cyclone_sse_edge_connections_closed_total{reason="slow"}'), shed, 'every slow close so far is a shed');
  };
  // Phase 1: every channel, until the budget has shed all four heavy readers.
  for (let r = 0; shed < heavy.length; r++) {
    assert.ok(r < 80, `the budget never shed all heavy readers (shed ${shed}, queued at most ${maxQueued})`);
    await round(`p${r}`, plan);
  }
  // Everyone reads again (uWS would cut a reader that takes nothing for ~10 s).
  for (const c of slow.values()) c.socket.resume();
  // Phase 2: the attack goes on on the heavy channels; their readers are gone, nothing piles up.
  // (Without the budget their queues would hold another 4 × 8 MiB.)
  for (let r = 0; r < 16; r++) await round(`q${r}`, plan.slice(0, heavy.length));
  const peak = rss.stop();
  const growth = peak - baseline;
  const totalPublished = [...published.values()].reduce((n, ids) => n + ids.length, 0) * 16 * KiB;
  t.diagnostic(
    `published ${(totalPublished / MiB).toFixed(0)} MiB to the readers' channels; queued at most ${(maxQueued / MiB).toFixed(1)} MiB ` +
      `(budget ${BUDGET / MiB} MiB); RSS growth ${(growth / MiB).toFixed(1)} MiB (baseline ${(baseline / MiB).toFixed(0)} MiB)`,
  );

  // Which ones went: the four heavy readers, closed by the server (they see the end once they read).
  for (const ch of heavy) {
    const c = slow.get(ch)!;
    await c.untilEnded(20_000);
    const got = c.events.map((e) => e.id);
    assert.ok(got.length < published.get(ch)!.length, `${ch} was cut off`);
    sameIds(got, published.get(ch)!.slice(0, got.length), `${ch}: what it got is a prefix, in order`);
  }
  // The light readers stayed: they get every message of their channel, and a sentinel published now.
  const sentinels = await publishRound(
    node.base,
    'sentinel',
    light.map((ch) => [ch, 1]),
  );
  for (const ch of light) {
    const c = slow.get(ch)!;
    const all = [...published.get(ch)!, ...sentinels.get(ch)!];
    await c.untilEvents(all.length, 30_000);
    sameIds(
      c.events.map((e) => e.id),
      all,
      `${ch} got every message`,
    );
    assert.equal(c.ended, false, `${ch} is still open`);
  }
  order.push(...sentinels.get('l0')!);
  await fast.untilEvents(order.length, 30_000);
  sameIds(
    fast.events.map((e) => e.id),
    order,
    'the healthy reader got every message, in order',
  );
  await canary.stop();

  const m = await scrapeMetrics(node.metricsBase);
  assert.equal(m.get('cyclone_sse_edge_connections_shed_total'), heavy.length);
  assert.equal(m.get('cyclone_sse_edge_connections_closed_total{reason="slow"}'), heavy.length);
  // Everything held was given back: the readers drained, the shed connections returned theirs.
  await waitFor(async () => (await scrapeMetric(node.metricsBase, 'cyclone_sse_edge_queued_bytes')) === 0, 5000, 'queued bytes back to 0');
  // One warning for the episode, not one per shed connection.
  const warnings = node
    .output()
    .split('\n')
    .filter((l) => l.includes('"event":"queued_bytes_budget"') && l.includes('"level":"warn"'));
  assert.equal(warnings.length, 1, node.output());
  // Without the budget the eight readers' queues would hold ~100 MiB here (the bytes published to
  // their channels less what the kernel buffers took; measured 66 MiB of RSS growth without
  // phase 2); with it, at most the 16 MiB budget.
  assert.ok(growth < 64 * MiB, `RSS grew ${(growth / MiB).toFixed(1)} MiB (bound 64 MiB)`);
});

test('a reader that keeps reading, slower than its channel, is closed as slow; what waits for it is counted', async (t) => {
  // What waits for a blocked connection — the rest of the write that met backpressure, its queue,
  // uWS's copy of one piece — is what the edge's budget adds up. Nothing more is handed to uWS
  // while its own buffer is not empty (uWS would append it whole), so what a reader slower than
  // its channel leaves behind piles up where --max-queued-bytes sees it.
  const { port, base, metricsBase, hub } = await startTestHub(t, [
    '--max-queued-bytes',
    String(512 * KiB),
    '--max-body',
    String(4 * MiB),
    '--history-size',
    '16',
    '--heartbeat',
    '60',
  ]);
  const reader = await openStream(port, '/?channels=trickle', { t });
  const fast = await openStream(port, '/?channels=trickle', { t });
  reader.socket.pause();
  // ~800 KiB/s: 16 KiB every 20 ms, while the channel carries ~5 MiB/s.
  const trickle = setInterval(() => void reader.socket.read(16 * KiB), 20);
  t.after(() => clearInterval(trickle));
  const ids: string[] = [];
  let maxQueued = 0;
  const slowClosed = () => scrapeMetric(metricsBase, 'cyclone_sse_edge_connections_closed_total{reason="slow"}');
  for (let round = 0; (await slowClosed()) === 0; round++) {
    assert.ok(round < 400, `never closed (the edge holds ${hub.edge.hub.queuedBytes} bytes for it now)`);
    ids.push(...(await publishRound(base, round, [['trickle', 16]])).get('trickle')!);
    maxQueued = Math.max(maxQueued, hub.edge.hub.queuedBytes);
    await new Promise((r) => setTimeout(r, 50));
  }
  clearInterval(trickle);
  reader.socket.resume();
  await reader.untilEnded(20_000);
  t.diagnostic(`closed after ${(ids.length * 16) / KiB} MiB published; the edge held at most ${(maxQueued / KiB).toFixed(0)} KiB for it`);
  assert.equal(await slowClosed(), 1);
  const got = reader.events.map((e) => e.id);
  sameIds(got, ids.slice(0, got.length), 'what it got is a prefix, in order');
  // Its queue (512 KiB, and one more round before it is closed), the rest of one earlier queue
  // write, one 16 KiB piece in uWS.
  assert.ok(maxQueued <= 2 * (512 + 256) * KiB + 16 * KiB, `held ${maxQueued} bytes`);
  await fast.untilEvents(ids.length, 30_000);
  sameIds(
    fast.events.map((e) => e.id),
    ids,
    'the healthy reader on the same channel got everything',
  );
});
