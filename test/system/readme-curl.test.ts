/**
 * The seed's README, end to end: its curl publish command (verbatim except the port) against an
 * open `eventsource` EventSource; and EventSource's reconnect + Last-Event-ID resume after the
 * server ends a stream with a retry hint.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { EventSource } from 'eventsource';
import { publishJson, RawHttpClient, startTestHub } from '@cyclone-sse/testkit';

const run = promisify(execFile);

interface Received {
  data: string;
  lastEventId: string;
  type: string;
}

/** Collects messages of an EventSource and lets a test wait for a count, bounded. */
function collect(es: EventSource): { got: Received[]; waitFor: (n: number, what?: string) => Promise<void> } {
  const got: Received[] = [];
  let wake: (() => void) | undefined;
  es.addEventListener('message', (ev) => {
    got.push({ data: ev.data as string, lastEventId: ev.lastEventId, type: ev.type });
    wake?.();
  });
  const waitFor = async (n: number, what = `${n} messages`) => {
    const deadline = Date.now() + 8000;
    while (got.length < n) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}; got ${JSON.stringify(got)}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  };
  return { got, waitFor };
}

function opened(es: EventSource): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('EventSource did not open')), 8000);
    es.addEventListener(
      'open',
      () => {
        clearTimeout(timer);
        resolve();
      },
      { once: true },
    );
  });
}

test('the seed README curl command publishes [123, 124] to an open EventSource', { timeout: 20_000 }, async (t) => {
  const hub = await startTestHub(t);
  const es = new EventSource(`${hub.base}/?channels=base`);
  t.after(() => es.close());
  const { got, waitFor } = collect(es);
  await opened(es);

  // Verbatim from the seed README, except the port.
  const cmd = ['--dump-header', '-', '-X', 'POST', '-d', 'message=%5B123%2C+124%5D&channel=base', `http://localhost:${hub.port}/publish`];
  const { stdout } = await run('curl', cmd, { timeout: 10_000 });
  assert.match(stdout, /^HTTP\/1\.1 200 /m, stdout);
  assert.match(stdout, /^Content-Type: application\/json/im, stdout);
  assert.ok(stdout.endsWith('\r\n\r\n{"status": "ok"}'), `curl output ends with the seed answer:\n${stdout}`);

  await waitFor(1);
  assert.equal(got.length, 1);
  assert.equal(got[0]!.data, '[123, 124]');
  assert.deepEqual(JSON.parse(got[0]!.data), [123, 124]);
  assert.equal(got[0]!.type, 'message');
  assert.match(got[0]!.lastEventId, /^[0-9a-z]{1,32}-\d+$/);
});

test('EventSource reconnects after the server ends the stream and resumes with Last-Event-ID', { timeout: 20_000 }, async (t) => {
  // A short retry hint, so the client comes back quickly (eventsource's own default is 3 s).
  const hub = await startTestHub(t, ['--retry', '100', '--retry-jitter', '0']);
  const first = await RawHttpClient.request(hub.port, '/?channels=base');
  t.after(() => first.close());
  await first.until((c) => c.body.includes(':ok\n\n'), 5000, 'first bytes');
  assert.match(first.body, /^retry: 100\nid: [0-9a-z]{1,32}-\d+\n:ok\n\n/, 'retry hint and priming id first');
  first.close();

  // Every request EventSource makes goes through here (real fetch, real socket); the second one
  // (the reconnect) is held until the test has published while the client was away.
  const requests: { lastEventId: string | null }[] = [];
  let releaseReconnect!: () => void;
  const reconnectGate = new Promise<void>((resolve) => (releaseReconnect = resolve));
  let reconnecting!: () => void;
  const reconnectSeen = new Promise<void>((resolve) => (reconnecting = resolve));
  const es = new EventSource(`${hub.base}/?channels=base&channels=other`, {
    fetch: async (input, init) => {
      const headers = new Headers(init?.headers);
      requests.push({ lastEventId: headers.get('last-event-id') });
      if (requests.length === 2) {
        reconnecting();
        await reconnectGate;
      }
      return fetch(input, init);
    },
  });
  t.after(() => {
    releaseReconnect();
    es.close();
  });
  const { got, waitFor } = collect(es);
  let errors = 0;
  es.addEventListener('error', () => errors++);
  await opened(es);

  const published: string[] = [];
  const pub = async (channel: string, data: string) => {
    const r = await publishJson(hub.base, { channel, data });
    assert.equal(r.status, 200, r.text);
    published.push((r.json as { ids: string[] }).ids[0]!);
  };
  await pub('base', 'm1');
  await pub('other', 'm2');
  await waitFor(2);

  // The server ends every open stream with a retry hint (what a drain does, one connection).
  const edgeHub = hub.hub.edge.hub;
  assert.ok(edgeHub.connections.size >= 1);
  for (const conn of [...edgeHub.connections]) conn.close('shutdown', Buffer.from('retry: 100\n'));
  await reconnectSeen;

  // Published while the client is away: must come back through history, in order, once.
  await pub('base', 'm3');
  await pub('unrelated', 'not-mine');
  await pub('other', 'm4');
  releaseReconnect();
  await waitFor(4, 'the replayed messages');
  await pub('base', 'm5');
  await waitFor(5, 'the live message after the resume');

  assert.equal(requests.length, 2, 'exactly one reconnect');
  assert.deepEqual(requests, [{ lastEventId: null }, { lastEventId: published[1] }]);
  assert.ok(errors >= 1, 'the end of the stream was reported as an error event');
  const mine = published.filter((_, i) => i !== 3); // not the 'unrelated' channel
  assert.deepEqual(
    got,
    ['m1', 'm2', 'm3', 'm4', 'm5'].map((data, i) => ({ data, lastEventId: mine[i], type: 'message' })),
  );
  assert.equal(es.readyState, EventSource.OPEN);
});
