// The Broker contract: every implementation runs these cases (memory-broker.test.ts,
// redis-broker.test.ts, redis-cluster-broker.test.ts). Assertions are on what an edge observes:
// ids, exact frame bytes, the messages and resets of a history read, the order and multiplicity
// of live messages.
//
// A partitioned broker (RedisClusterBroker) orders messages within a partition only
// (docs/delivery.md#partitions-on-a-redis-cluster): there, every channel of the contract is
// pinned to one partition with a `{tag}` (`BrokerTraits.channel`), which is how users get one
// order across channels, and the cases hold as written. Its positions name their partition
// (`BrokerTraits.partition`).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { seqOf, waitFor } from '@cyclone-sse/testkit';
import {
  formatId,
  parseId,
  type Broker,
  type BrokerMessage,
  type BrokerSink,
  type Cursor,
  type HistoryOptions,
  type ResetReason,
} from '../src/index.js';

export interface BrokerFixture {
  /** Not started: call `subscribe` (optional) and `start`. */
  broker: Broker;
  cleanup(): Promise<void>;
  /** Returns once the channel's history has expired (the broker was made with a short TTL). */
  expireHistory(channel: string): Promise<void>;
  /**
   * Started, with a sink: resolves once live messages of `channels` reach the sink (a partitioned
   * broker delivers only the channels an edge watches, as the hub's subscribers make it do).
   */
  watch?(channels: string[]): Promise<void>;
  /** `Broker.livePosition` of a broker that has it per stream (a partitioned one), for the contract's channels. */
  livePosition?(): Cursor | undefined;
}

/** How a broker differs where the contract allows it to. */
export interface BrokerTraits {
  /** The name the contract's channel `name` gets here (default: itself); every one must fall in one partition. */
  channel?(name: string): string;
  /** The partition positions name (`Cursor.partition`), when the broker's positions carry one. */
  partition?: number;
}

export type MakeBroker = (options: HistoryOptions) => Promise<BrokerFixture>;

/** A sink that records everything; `active` is what `activeChannels()` answers. */
export class RecordingSink implements BrokerSink {
  readonly messages: BrokerMessage[] = [];
  readonly lostCalls: { channels: string[]; reason: ResetReason; position: Cursor; afterMessages: number }[] = [];
  constructor(readonly active = new Set<string>()) {}

  message(msg: BrokerMessage): void {
    this.messages.push(msg);
  }

  activeChannels(): Iterable<string> {
    return this.active;
  }

  lost(channels: string[], reason: ResetReason, position: Cursor): void {
    this.lostCalls.push({ channels, reason, position, afterMessages: this.messages.length });
  }

  ids(): string[] {
    return this.messages.map((m) => idOf(m.frame));
  }

  /** The ids of the messages of one channel, in the order they came. */
  idsOn(channel: string): string[] {
    return this.messages.filter((m) => m.channel === channel).map((m) => idOf(m.frame));
  }
}

/** The id on the first line of a frame. */
export function idOf(frame: Buffer): string {
  const text = frame.toString('utf8');
  assert.ok(text.startsWith('id: '), `frame starts with an id line: ${JSON.stringify(text)}`);
  return text.slice(4, text.indexOf('\n'));
}

const DEFAULTS: HistoryOptions = { historySize: 1000, historyTtlSeconds: 3600, idempotencyTtlSeconds: 60 };

export function brokerContract(name: string, makeBroker: MakeBroker, traits: BrokerTraits = {}): void {
  /** A contract channel's name on this broker. */
  const ch = (channel: string): string => traits.channel?.(channel) ?? channel;
  /** A position as this broker gives it (with its partition, if it names one). */
  const at = (position: Cursor): Cursor => (traits.partition === undefined ? position : { ...position, partition: traits.partition });
  /** A cursor of another epoch: on a Redis Cluster an epoch names its partition by its first character, here 0. */
  const FOREIGN_CURSOR = '0zzzzzzzzzzzzz-1';

  describe(`Broker contract: ${name}`, () => {
    async function started(t: { after(fn: () => Promise<void>): void }, options: Partial<HistoryOptions> = {}, sink?: BrokerSink) {
      const fixture = await makeBroker({ ...DEFAULTS, ...options });
      t.after(() => fixture.cleanup());
      if (sink) fixture.broker.subscribe(sink);
      await fixture.broker.start();
      if (sink) await fixture.watch?.(['a', 'b', 'c'].map(ch));
      return fixture;
    }

    async function publishOne(broker: Broker, channels: string[], data: string, event?: string): Promise<string[]> {
      const [result] = await broker.publish([{ channels, data, event }]);
      return result!.ids;
    }

    test('publish answers <epoch>-<seq> ids, strictly increasing across channels', async (t) => {
      const { broker } = await started(t);
      assert.equal(broker.isReady(), true);
      const start = await broker.position();
      const ids = [
        ...(await publishOne(broker, [ch('a')], '1')),
        ...(await publishOne(broker, [ch('b')], '2')),
        ...(await publishOne(broker, [ch('a')], '3')),
      ];
      const cursors = ids.map((id) => parseId(id)!);
      assert.ok(
        cursors.every((c) => c && c.epoch === start.epoch),
        `one epoch: ${ids.join(',')}`,
      );
      for (let i = 1; i < cursors.length; i++) assert.ok(cursors[i]!.seq > cursors[i - 1]!.seq, ids.join(','));
      assert.ok(cursors[0]!.seq > start.seq);
      assert.deepEqual(await broker.position(), at({ epoch: start.epoch, seq: cursors[2]!.seq }));
    });

    test('a multi-channel publish is one message per channel, ids in the order given', async (t) => {
      const { broker } = await started(t);
      const start = await broker.position();
      const [result] = await broker.publish([{ channels: [ch('b'), ch('a'), ch('c')], data: 'x' }]);
      assert.equal(result!.duplicate, false);
      assert.equal(result!.ids.length, 3);
      const seqs = result!.ids.map(seqOf);
      assert.ok(seqs[0]! < seqs[1]! && seqs[1]! < seqs[2]!);
      for (const [i, channel] of [ch('b'), ch('a'), ch('c')].entries()) {
        const h = await broker.history([channel], formatId(start.epoch, start.seq));
        assert.deepEqual(
          h.messages.map((m) => [m.channel, idOf(m.frame)]),
          [[channel, result!.ids[i]]],
        );
      }
    });

    test('frames are exact: id, optional event, one data line per line (LF, CRLF, CR)', async (t) => {
      const sink = new RecordingSink();
      const { broker } = await started(t, {}, sink);
      const start = await broker.position();
      const [a] = await publishOne(broker, [ch('a')], 'a\nb', 'x');
      const [b] = await publishOne(broker, [ch('a')], 'one\r\ntwo\rthree\n', undefined);
      const [c] = await publishOne(broker, [ch('a')], '["ev",{"k":"ü"}]', undefined);
      const expected = [
        `id: ${a}\nevent: x\ndata: a\ndata: b\n\n`,
        `id: ${b}\ndata: one\ndata: two\ndata: three\ndata: \n\n`,
        `id: ${c}\ndata: ["ev",{"k":"ü"}]\n\n`,
      ];
      const h = await broker.history([ch('a')], formatId(start.epoch, start.seq));
      assert.deepEqual(
        h.messages.map((m) => m.frame.toString('utf8')),
        expected,
      );
      await waitFor(() => sink.messages.length >= 3, 5000, 'three live messages');
      assert.deepEqual(
        sink.messages.map((m) => m.frame.toString('utf8')),
        expected,
      );
    });

    test('a batch is applied in order and answers one result per input', async (t) => {
      const { broker } = await started(t);
      const start = await broker.position();
      const results = await broker.publish([
        { channels: [ch('a')], data: '1' },
        { channels: [ch('b'), ch('a')], data: '2' },
        { channels: [ch('a')], data: '3' },
      ]);
      assert.equal(results.length, 3);
      const ids = results.flatMap((r) => r.ids);
      assert.equal(ids.length, 4);
      const seqs = ids.map(seqOf);
      assert.deepEqual(
        [...seqs].sort((x, y) => x - y),
        seqs,
      );
      const h = await broker.history([ch('a'), ch('b')], formatId(start.epoch, start.seq));
      assert.deepEqual(
        h.messages.map((m) => idOf(m.frame)),
        ids,
      );
      assert.deepEqual(
        h.messages.map((m) => m.channel),
        [ch('a'), ch('b'), ch('a'), ch('a')],
      );
    });

    test('a repeated idempotency key answers the first result and publishes nothing', async (t) => {
      const sink = new RecordingSink();
      const { broker } = await started(t, {}, sink);
      const start = await broker.position();
      const input = { channels: [ch('a'), ch('b')], data: 'once', idempotencyKey: 'k-1' };
      const [first] = await broker.publish([input]);
      const [again] = await broker.publish([{ ...input, data: 'changed' }]);
      const batch = await broker.publish([input, { channels: [ch('a')], data: 'sentinel' }]);
      assert.equal(first!.duplicate, false);
      assert.deepEqual(again, { ids: first!.ids, duplicate: true });
      assert.deepEqual(batch[0], { ids: first!.ids, duplicate: true });
      const [sentinel] = batch[1]!.ids;
      assert.equal(seqOf(sentinel!), seqOf(first!.ids[1]!) + 1, 'the duplicates took no sequence numbers');
      await waitFor(() => sink.ids().includes(sentinel!), 5000, 'the sentinel');
      assert.deepEqual(sink.ids(), [...first!.ids, sentinel]);
      const h = await broker.history([ch('a'), ch('b')], formatId(start.epoch, start.seq));
      assert.deepEqual(
        h.messages.map((m) => idOf(m.frame)),
        [...first!.ids, sentinel],
      );
    });

    test('the sink gets live messages once, in publish order, with exact frames', async (t) => {
      const sink = new RecordingSink(new Set([ch('a'), ch('b')]));
      const { broker } = await started(t, {}, sink);
      const expected: string[] = [];
      for (let i = 0; i < 20; i++) {
        const channel = i % 3 === 0 ? ch('b') : ch('a');
        const [id] = await publishOne(broker, [channel], `m${i}`);
        expected.push(`${channel} id: ${id}\ndata: m${i}\n\n`);
      }
      const batch = await broker.publish(Array.from({ length: 30 }, (_, i) => ({ channels: [ch('a')], data: `b${i}` })));
      batch.forEach((r, i) => expected.push(`${ch('a')} id: ${r.ids[0]}\ndata: b${i}\n\n`));
      await waitFor(() => sink.messages.length >= expected.length, 5000, `${expected.length} live messages`);
      assert.deepEqual(
        sink.messages.map((m) => `${m.channel} ${m.frame.toString('utf8')}`),
        expected,
      );
      for (const m of sink.messages) assert.ok(Number.isFinite(m.publishedAt) && m.publishedAt > 1.6e12);
      assert.deepEqual(sink.lostCalls, []);
    });

    test('livePosition splits the live stream: at or below it already delivered, above it all still to come', async (t) => {
      const sink = new RecordingSink();
      const fixture = await started(t, {}, sink);
      const { broker } = fixture;
      const live = fixture.livePosition?.bind(fixture) ?? broker.livePosition?.bind(broker);
      if (!live) {
        t.skip(`${name} has no livePosition (optional)`);
        return;
      }
      const [first] = await publishOne(broker, [ch('a')], 'first');
      await waitFor(() => sink.ids().includes(first!) && live() !== undefined, 5000, 'first message delivered, in sync');
      assert.deepEqual(live(), await broker.position(), 'quiet: the top of the sequence');
      // Sampled on every turn while publishes are in flight (for Redis: sequenced but not yet received).
      const samples: { p: Cursor; delivered: number }[] = [];
      let done = false;
      const all = Promise.all(Array.from({ length: 40 }, (_, i) => publishOne(broker, [i % 3 === 0 ? ch('b') : ch('a')], `m${i}`))).then(
        () => (done = true),
      );
      while (!done) {
        const p = live();
        if (p) samples.push({ p, delivered: sink.messages.length });
        await new Promise((resolve) => setImmediate(resolve));
      }
      await all;
      const [sentinel] = await publishOne(broker, [ch('c')], 'sentinel');
      await waitFor(() => sink.ids().includes(sentinel!), 5000, 'the sentinel');
      const top = await broker.position();
      assert.ok(samples.length > 0);
      for (const { p, delivered } of samples) {
        assert.equal(p.epoch, top.epoch);
        assert.ok(p.seq <= top.seq);
        assert.ok(
          sink.messages.slice(0, delivered).every((m) => m.seq <= p.seq),
          `delivered before ${p.seq}`,
        );
        const after = sink.ids().slice(delivered);
        const h = await broker.history([ch('a'), ch('b'), ch('c')], formatId(p.epoch, p.seq));
        assert.equal(h.reset, undefined);
        assert.deepEqual(
          after,
          h.messages.map((m) => idOf(m.frame)),
          `after ${p.seq}: exactly the history after it`,
        );
      }
      assert.deepEqual(sink.lostCalls, []);
    });

    describe('resume from a cursor', () => {
      test('inside the history: exactly the messages after it', async (t) => {
        const { broker } = await started(t);
        const ids: string[] = [];
        for (let i = 0; i < 5; i++) ids.push(...(await publishOne(broker, [ch('a')], `m${i}`)));
        const h = await broker.history([ch('a')], ids[1]!);
        assert.equal(h.reset, undefined);
        assert.deepEqual(
          h.messages.map((m) => idOf(m.frame)),
          ids.slice(2),
        );
        assert.deepEqual(
          h.messages.map((m) => m.frame.toString()),
          ids.slice(2).map((id, i) => `id: ${id}\ndata: m${i + 2}\n\n`),
        );
        assert.deepEqual(h.position, at(parseId(ids[4]!)!));
      });

      test('at the top: nothing, no reset', async (t) => {
        const { broker } = await started(t);
        await publishOne(broker, [ch('a')], '1');
        const [top] = await publishOne(broker, [ch('a'), ch('b')], '2');
        const last = await broker.position();
        assert.equal(formatId(last.epoch, last.seq - 1), top);
        const h = await broker.history([ch('a'), ch('b')], formatId(last.epoch, last.seq));
        assert.deepEqual(h, { position: last, messages: [], more: false });
      });

      test('trimmed past the cursor: that channel resets, the others replay', async (t) => {
        const { broker } = await started(t, { historySize: 5 });
        const [cursor] = await publishOne(broker, [ch('a')], 'first');
        const [b1] = await publishOne(broker, [ch('b')], 'b1');
        // Far more than the size: a broker may keep more than `historySize` (MAXLEN ~), not fewer.
        const batch = await broker.publish(Array.from({ length: 400 }, (_, i) => ({ channels: [ch('a')], data: `a${i}` })));
        const [b2] = await publishOne(broker, [ch('b')], 'b2');
        const h = await broker.history([ch('a'), ch('b')], cursor!);
        assert.deepEqual(h.reset, { channels: [ch('a')], reason: 'trimmed' });
        assert.deepEqual(
          h.messages.map((m) => idOf(m.frame)),
          [b1, b2],
        );
        // A cursor among the newest messages of `a` is still complete.
        const recent = batch[batch.length - 3]!.ids[0]!;
        const r = await broker.history([ch('a'), ch('b')], recent);
        assert.equal(r.reset, undefined);
        assert.deepEqual(
          r.messages.map((m) => idOf(m.frame)),
          [batch[398]!.ids[0], batch[399]!.ids[0], b2],
        );
      });

      test('expired past the cursor: that channel resets as expired', async (t) => {
        const fixture = await started(t, { historyTtlSeconds: 1 });
        const { broker } = fixture;
        const [cursor] = await publishOne(broker, [ch('a')], 'a1');
        await publishOne(broker, [ch('a')], 'a2');
        await fixture.expireHistory(ch('a'));
        const [b1] = await publishOne(broker, [ch('b')], 'b1');
        const h = await broker.history([ch('a'), ch('b')], cursor!);
        assert.deepEqual(h.reset, { channels: [ch('a')], reason: 'expired' });
        assert.deepEqual(
          h.messages.map((m) => idOf(m.frame)),
          [b1],
        );
        // A cursor after the expired messages proves nothing was lost since.
        const top = await broker.position();
        assert.deepEqual(await broker.history([ch('a')], formatId(top.epoch, top.seq)), { position: top, messages: [], more: false });
      });

      test('no publish on a channel since the cursor, others published: no reset', async (t) => {
        const { broker } = await started(t, { historySize: 5 });
        await publishOne(broker, [ch('a')], 'a1');
        const [cursor] = await publishOne(broker, [ch('b')], 'b1');
        const batch = await broker.publish(Array.from({ length: 50 }, (_, i) => ({ channels: [ch('a')], data: `a${i}` })));
        const h = await broker.history([ch('b'), ch('never-published')], cursor!);
        assert.deepEqual(h, { position: at(parseId(batch[49]!.ids[0]!)!), messages: [], more: false });
      });

      test('another epoch, a future cursor, a malformed cursor: every requested channel resets', async (t) => {
        const { broker } = await started(t);
        await publishOne(broker, [ch('a')], 'a1');
        const top = await broker.position();
        const cases: [string, ResetReason][] = [
          [FOREIGN_CURSOR, 'epoch'],
          [formatId(top.epoch, top.seq + 100), 'future'],
          ['abc', 'malformed'],
          ['', 'malformed'],
          ['x-y', 'malformed'],
          [`${top.epoch}-`, 'malformed'],
        ];
        for (const [cursor, reason] of cases) {
          const h = await broker.history([ch('a'), ch('b'), ch('a')], cursor);
          assert.deepEqual(
            h,
            { position: top, messages: [], reset: { channels: [ch('a'), ch('b')], reason }, more: false },
            `cursor ${JSON.stringify(cursor)}`,
          );
        }
      });

      test('several channels merge in global sequence order, without duplicates', async (t) => {
        const { broker } = await started(t);
        const start = await broker.position();
        const expected: string[] = [];
        for (let i = 0; i < 12; i++) {
          const channels = i % 4 === 0 ? [ch('a'), ch('b')] : i % 3 === 0 ? [ch('c')] : [ch('a')];
          expected.push(...(await publishOne(broker, channels, `m${i}`)));
        }
        await publishOne(broker, [ch('other')], 'not requested');
        const h = await broker.history([ch('c'), ch('a'), ch('b'), ch('a')], formatId(start.epoch, start.seq));
        assert.equal(h.reset, undefined);
        assert.deepEqual(
          h.messages.map((m) => idOf(m.frame)),
          expected,
        );
        const mid = expected[5]!;
        const later = await broker.history([ch('a'), ch('b'), ch('c')], mid);
        assert.deepEqual(
          later.messages.map((m) => idOf(m.frame)),
          expected.slice(6),
        );
      });

      test('pages: bounded by messages and bytes, chained by the last id, together exactly the whole read', async (t) => {
        const { broker } = await started(t);
        const start = await broker.position();
        const expected: string[] = [];
        for (let i = 0; i < 40; i++) {
          const channels = i % 5 === 0 ? [ch('a'), ch('b')] : i % 2 === 0 ? [ch('b')] : [ch('a')];
          // Sizes vary so byte limits cut at different places than message limits.
          expected.push(...(await publishOne(broker, channels, `m${i}:${'x'.repeat((i * 37) % 300)}`)));
        }
        const whole = await broker.history([ch('a'), ch('b')], formatId(start.epoch, start.seq));
        assert.equal(whole.more, false);
        assert.deepEqual(
          whole.messages.map((m) => idOf(m.frame)),
          expected,
        );
        for (const limits of [
          { maxMessages: 7, maxBytes: 1 << 20 },
          { maxMessages: 1000, maxBytes: 900 },
          { maxMessages: 3, maxBytes: 1 },
        ]) {
          const got: string[] = [];
          let cursor = formatId(start.epoch, start.seq);
          let pages = 0;
          for (;;) {
            const page = await broker.history([ch('a'), ch('b')], cursor, limits);
            pages++;
            assert.equal(page.reset, undefined);
            assert.ok(page.messages.length >= 1 || !page.more, 'a cut page carries at least one message');
            assert.ok(page.messages.length <= limits.maxMessages, 'at most maxMessages');
            const bytes = page.messages.reduce((n, m) => n + m.frame.length, 0);
            assert.ok(page.messages.length === 1 || bytes <= limits.maxBytes, `at most maxBytes (${bytes} > ${limits.maxBytes})`);
            got.push(...page.messages.map((m) => idOf(m.frame)));
            if (!page.more) break;
            cursor = idOf(page.messages[page.messages.length - 1]!.frame);
            assert.ok(pages < 200, 'pages end');
          }
          assert.deepEqual(got, expected, `pages of ${JSON.stringify(limits)} chain into the whole history`);
          assert.ok(pages > 1, 'the limits did cut');
        }
      });

      test('a page after a trim reports the trimmed channel and still pages the others', async (t) => {
        const { broker } = await started(t, { historySize: 5 });
        const start = await broker.position();
        const kept: string[] = [];
        for (let i = 0; i < 4; i++) kept.push(...(await publishOne(broker, [ch('keep')], `k${i}`)));
        // Redis trims with MAXLEN ~ (whole macro nodes): publish well past one node.
        await broker.publish(Array.from({ length: 300 }, (_, i) => ({ channels: [ch('trim')], data: `t${i}` })));
        const page = await broker.history([ch('keep'), ch('trim')], formatId(start.epoch, start.seq), {
          maxMessages: 2,
          maxBytes: 1 << 20,
        });
        assert.deepEqual(page.reset, { channels: [ch('trim')], reason: 'trimmed' });
        assert.deepEqual(
          page.messages.map((m) => idOf(m.frame)),
          kept.slice(0, 2),
        );
        assert.equal(page.more, true);
      });
    });
  });
}
