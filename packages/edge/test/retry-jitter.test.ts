// Jittered `retry:` (issue 16): a browser reconnects after the last `retry:` it got, so the
// clients of an edge that dies (a crash, an OOM kill) must not all hold the same value.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { publishJson, RawHttpClient, startTestHub } from '@cyclone-sse/testkit';

/** Opens `n` streams with the same request and waits for each one's first bytes. */
async function streams(port: number, n: number, headers: Record<string, string> = {}): Promise<RawHttpClient[]> {
  const list = await Promise.all(Array.from({ length: n }, () => RawHttpClient.request(port, '/?channels=j', { headers })));
  for (const c of list) await c.until((x) => x.body.includes(':ok\n\n'), 5000, 'first bytes');
  return list;
}

/** The value of the one `retry:` line that `re` finds in each stream's body. */
function retries(list: RawHttpClient[], re: RegExp): number[] {
  return list.map((c) => {
    const m = re.exec(c.body);
    assert.ok(m, JSON.stringify(c.body));
    return Number(m[1]);
  });
}

function assertSpread(values: number[], min: number, max: number, spread: number): void {
  for (const v of values) assert.ok(v >= min && v <= max, `retry: ${v} within [${min}, ${max}]`);
  // Uniform draws: all of them within `spread` of each other has a probability below 1e-9 here.
  assert.ok(Math.max(...values) - Math.min(...values) > spread, `spread over more than ${spread} ms: ${values.join(' ')}`);
}

test('resumed streams get their own retry: too, and the drain spreads its hints over [retry, 2 × retry]', async (t) => {
  const { port, base, hub } = await startTestHub(t, ['--retry', '1000', '--heartbeat', '60']);
  const r = await publishJson(base, { channel: 'j', data: 'x' });
  const [id] = (r.json as { ids: string[] }).ids;
  const list = await streams(port, 30, { 'Last-Event-ID': id! });
  t.after(() => list.forEach((c) => c.close()));
  assertSpread(retries(list, /^retry: (\d+)\n:ok\n\n$/), 1000, 1500, 200);
  // SIGTERM's drain: every stream ends with a hint of its own.
  await hub.stop(0.2);
  for (const c of list) await c.untilComplete(5000);
  assertSpread(retries(list, /\nretry: (\d+)\n\n$/), 1000, 2000, 400);
});

test('--retry-jitter 0: every stream and every end carries exactly --retry', async (t) => {
  const { port } = await startTestHub(t, ['--retry', '1000', '--retry-jitter', '0', '--max-stream-seconds', '1', '--heartbeat', '60']);
  const list = await streams(port, 10);
  t.after(() => list.forEach((c) => c.close()));
  // Streams end after 80–100 % of --max-stream-seconds, with a retry: line.
  for (const c of list) await c.untilComplete(5000);
  for (const c of list) assert.match(c.body, /^retry: 1000\nid: [0-9a-z]+-\d+\n:ok\n\nretry: 1000\n\n$/);
});

test('--retry-jitter 2 spreads the first retry: over [retry, 3 × retry]', async (t) => {
  const { port } = await startTestHub(t, ['--retry', '1000', '--retry-jitter', '2']);
  const list = await streams(port, 30);
  t.after(() => list.forEach((c) => c.close()));
  assertSpread(retries(list, /^retry: (\d+)\nid: /), 1000, 3000, 800);
});
