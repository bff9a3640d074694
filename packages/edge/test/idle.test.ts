import { test } from 'node:test';
import assert from 'node:assert/strict';
import { publishJson, RawHttpClient, scrapeMetric, spawnNode, waitFor } from '@cyclone-sse/testkit';

// The bench holds 10 000; the suite holds 5 000 for 8 s to stay inside the CI budget.
const N = Number(process.env.IDLE_CONNECTIONS ?? 5000);
const HOLD_MS = Number(process.env.IDLE_HOLD_MS ?? 8000);

test(`${N} idle connections stay open with heartbeats, then all receive a message`, async (t) => {
  const hub = await spawnNode('all-in-one', ['--heartbeat', '2', '--log-level', 'info', '--max-connections-per-ip', '0']);
  t.after(() => hub.stop());
  const clients: RawHttpClient[] = [];
  t.after(() => clients.forEach((c) => c.close()));
  for (let i = 0; i < N; i += 64) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(64, N - i) }, () => RawHttpClient.request(hub.port, `/?channels=idle&channels=c${i % 100}`)),
    );
    clients.push(...batch);
  }
  await waitFor(() => clients.every((c) => c.text.includes(':ok\n\n')), 30_000, 'all streams open', 100);
  const gauge = async () => scrapeMetric(hub.metricsBase, 'cyclone_sse_edge_connections');
  assert.equal(await gauge(), N);
  const start = Date.now();
  await waitFor(() => Date.now() - start >= HOLD_MS, HOLD_MS + 1000, 'hold period', 250);
  assert.equal(clients.filter((c) => c.ended).length, 0, 'none closed');
  const minBeats = Math.min(...clients.map((c) => c.text.split(':\n\n').length - 1));
  assert.ok(minBeats >= 2, `every stream got heartbeats (min ${minBeats})`);
  const r = await publishJson(hub.base, { channel: 'idle', data: 'wake' });
  const id = (r.json as { ids: string[] }).ids[0]!;
  await waitFor(() => clients.every((c) => c.text.includes(`id: ${id}\ndata: wake\n\n`)), 30_000, 'delivery to all', 100);
  assert.equal(await gauge(), N);
});
