import assert from 'node:assert/strict';
import type { AmqpTestTopology } from './amqp-topology.js';
import { RecordingSubscriber } from './cluster.js';
import { publishJson } from './http.js';
import { waitFor } from './wait.js';

/** A subscriber of the fan-out scenario and the channels it asked for. */
export interface FanOutSubscriber {
  sub: RecordingSubscriber;
  channels: string[];
}

/** A message of the fan-out scenario: the i-th, with data `m<i>`. */
export interface FanOutMessage {
  i: number;
  channel: string;
  data: string;
}

/**
 * The fan-out scenario of the cluster system tests, part one: `count` subscribers through `base`
 * (nginx in front of the edges), subscriber i on `channelsOf(i)`, all open; closed when the test ends.
 */
export async function openFanOutSubscribers(
  t: { after(fn: () => unknown): void },
  base: string,
  count: number,
  channelsOf: (i: number) => string[],
): Promise<FanOutSubscriber[]> {
  const subs: FanOutSubscriber[] = [];
  for (let i = 0; i < count; i++) {
    const mine = channelsOf(i);
    subs.push({ sub: new RecordingSubscriber(`${base}/?${mine.map((x) => `channels=${x}`).join('&')}`), channels: mine });
  }
  t.after(() => subs.forEach((s) => s.sub.close()));
  await Promise.all(subs.map((s) => s.sub.opened(20_000)));
  return subs;
}

/**
 * Part two: publishes `count` messages, the i-th on `channels[(i * 7) % channels.length]` with data
 * `m<i>`, even ones over HTTP through `base` (16 in flight, each answered 200), odd ones over AMQP
 * (the publishers declared exchange and queue before listening); then waits until every
 * subscriber received at least as many messages as its channels got. Returns the messages and,
 * per channel, the data published on it.
 */
export async function publishFanOut(
  base: string,
  amqp: Pick<AmqpTestTopology, 'exchange' | 'ch'>,
  channels: string[],
  count: number,
  subs: FanOutSubscriber[],
): Promise<{ messages: FanOutMessage[]; expected: Map<string, Set<string>> }> {
  const messages = Array.from({ length: count }, (_, i) => ({ i, channel: channels[(i * 7) % channels.length]!, data: `m${i}` }));
  const amqpDone = (async () => {
    for (const m of messages.filter((m) => m.i % 2 === 1))
      amqp.ch.publish(amqp.exchange, m.channel, Buffer.from(m.data), { persistent: true });
    await amqp.ch.waitForConfirms();
  })();
  await pool(
    messages.filter((m) => m.i % 2 === 0),
    16,
    async (m) => {
      const r = await publishJson(base, { channel: m.channel, data: m.data });
      assert.equal(r.status, 200, r.text);
    },
  );
  await amqpDone;

  const expected = new Map<string, Set<string>>(channels.map((x) => [x, new Set()]));
  for (const m of messages) expected.get(m.channel)!.add(m.data);
  await waitFor(
    () => subs.every((s) => s.sub.received.length >= s.channels.reduce((n, x) => n + expected.get(x)!.size, 0)),
    60_000,
    'every subscriber to receive its messages',
    50,
  );
  return { messages, expected };
}

/** Runs `fn` over items with at most `n` in flight, preserving nothing but completion. */
async function pool<T>(items: T[], n: number, fn: (item: T) => Promise<void>): Promise<void> {
  let i = 0;
  await Promise.all(
    Array.from({ length: n }, async () => {
      while (i < items.length) await fn(items[i++]!);
    }),
  );
}
