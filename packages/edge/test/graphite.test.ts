/**
 * The seed's Graphite export: `--export graphite` sends `<path>.<channel> <count> <unix-seconds>`
 * lines over UDP every `--export-interval`, from this process's channel counts, with channel
 * names sanitised for Graphite paths. A UDP listener stands in for carbon.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { parseConfig } from '@cyclone-sse/common';
import { RecordingSubscriber, startTestHub, waitFor } from '@cyclone-sse/testkit';
import { datagrams, graphiteLines } from '../src/graphite.js';

interface Datagram {
  at: number;
  lines: string[];
}

test('graphite lines: sanitised channel nodes, prefix with or without a trailing dot, colliding names summed', () => {
  assert.deepEqual(
    graphiteLines(
      'graphite.prefix.for.stats',
      [
        ['base', 3],
        ['news.sport', 2],
        ['a b/c:d', 1],
        ['café', 4],
      ],
      1700000000,
    ),
    [
      'graphite.prefix.for.stats.base 3 1700000000\n',
      'graphite.prefix.for.stats.news_sport 2 1700000000\n',
      'graphite.prefix.for.stats.a_b_c_d 1 1700000000\n',
      'graphite.prefix.for.stats.caf_ 4 1700000000\n',
    ],
  );
  assert.deepEqual(
    graphiteLines(
      'cyclone-sse.',
      [
        ['x.y', 1],
        ['x_y', 2],
      ],
      5,
    ),
    ['cyclone-sse.x_y 3 5\n'],
  );
  // Many channels: several datagrams, each within the size limit, no line split.
  const many = graphiteLines(
    'p',
    Array.from({ length: 300 }, (_, i) => [`channel-${i}`, i] as const),
    1,
  );
  const grams = datagrams(many);
  assert.ok(grams.length > 1);
  assert.ok(grams.every((g) => g.length <= 1400));
  assert.equal(grams.map((g) => g.toString()).join(''), many.join(''));
});

test(
  '--export graphite sends the channel counts over UDP every interval; a channel that empties is sent once with 0',
  { timeout: 30_000 },
  async (t) => {
    const carbon = createSocket('udp4');
    carbon.bind(0, '127.0.0.1');
    await once(carbon, 'listening');
    t.after(() => carbon.close());
    const received: Datagram[] = [];
    carbon.on('message', (msg) => received.push({ at: Date.now(), lines: msg.toString().split('\n').filter(Boolean) }));
    const port = carbon.address().port;

    // The seed README's flags, with = syntax, a short interval and a prefix with a trailing dot.
    const started = Date.now();
    const hub = await startTestHub(t, [
      '--export=graphite',
      '--export-host=127.0.0.1',
      `--export-port=${port}`,
      '--export-interval=0.2',
      '--export-path=graphite.prefix.for.stats.',
    ]);
    const subs = [
      new RecordingSubscriber(`${hub.base}/?channels=news.sport&channels=base`),
      new RecordingSubscriber(`${hub.base}/?channels=news.sport`),
      new RecordingSubscriber(`${hub.base}/?channels=${encodeURIComponent('a b')}`),
    ];
    t.after(() => subs.forEach((s) => s.close()));
    await Promise.all(subs.map((s) => s.opened()));

    const parse = (d: Datagram) =>
      new Map(
        d.lines.map((l) => {
          const [path, count, ts] = l.split(' ');
          assert.equal(l.split(' ').length, 3, `three fields: ${l}`);
          assert.match(ts!, /^\d+$/);
          assert.ok(Math.abs(Number(ts) - d.at / 1000) < 5, `unix seconds: ${l}`);
          return [path!, Number(count)] as const;
        }),
      );
    const full = await waitFor(() => received.map(parse).find((m) => m.size === 3), 5000, 'a datagram with all three channels');
    assert.deepEqual(Object.fromEntries(full), {
      'graphite.prefix.for.stats.news_sport': 2,
      'graphite.prefix.for.stats.base': 1,
      'graphite.prefix.for.stats.a_b': 1,
    });
    // The first export waits one interval; then one per interval.
    assert.ok(received[0]!.at - started >= 150, 'first export one interval after start');

    subs[2]!.close();
    subs[0]!.close();
    const n = received.length;
    const P = 'graphite.prefix.for.stats.';
    // Until only news.sport (one subscriber left) is sent; on the way, each emptied channel once with 0.
    await waitFor(
      () =>
        received
          .slice(n)
          .map(parse)
          .some((m) => m.size === 1 && m.get(`${P}news_sport`) === 1),
      5000,
      'only news.sport left',
    );
    const after = received.slice(n).map(parse);
    for (const gone of ['a_b', 'base']) {
      assert.equal(after.filter((m) => m.get(P + gone) === 0).length, 1, `${gone} sent with 0 exactly once`);
      assert.ok(after.findIndex((m) => m.get(P + gone) === 0) < after.findIndex((m) => m.size === 1), `${gone} 0 before it stops`);
    }
    const last = after.at(-1)!;
    assert.deepEqual(Object.fromEntries(last), { [`${P}news_sport`]: 1 });
  },
);

test('--export graphite without host or port is a configuration error; an unknown exporter too', async () => {
  const missing = await parseConfig('all-in-one', ['--export=graphite', '--export-host=127.0.0.1'], {});
  assert.equal(missing.kind, 'errors');
  assert.match(missing.kind === 'errors' ? missing.errors.join('\n') : '', /--export graphite needs --export-host and --export-port/);
  const unknown = await parseConfig('edge', ['--export', 'json', '--redis-url', 'redis://x'], {});
  assert.match(unknown.kind === 'errors' ? unknown.errors.join('\n') : '', /--export: "json" is not supported/);
  // The seed's stock options file has --export= (off) and --export-port=0: valid.
  const off = await parseConfig('all-in-one', ['--export=', '--export-host=127.0.0.1', '--export-port=0'], {});
  assert.equal(off.kind, 'config');
});
