/**
 * The time-without-Redis clock (broker-downtime.ts) on a hand-driven clock: the current outage,
 * the total across outages, the /readyz fields and the two series, exactly.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BrokerDowntime, Registry, registerDowntimeMetrics } from '@cyclone-sse/common';

test('BrokerDowntime: current outage, total across outages, readiness fields and metrics', async () => {
  let now = 1_000_000;
  let up = true;
  const clock = new BrokerDowntime(
    () => up,
    () => now,
  );
  const registry = new Registry();
  registerDowntimeMetrics(registry, 'edge', clock);
  const series = async () => {
    const text = await registry.metrics();
    const value = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1]);
    return [value('cyclone_sse_edge_redis_down_seconds'), value('cyclone_sse_edge_redis_down_seconds_total')];
  };

  assert.deepEqual(clock.read(), { up: true, downSeconds: 0, totalSeconds: 0 });
  assert.deepEqual(clock.readyFields(), { redis: 'up', redisDownSeconds: 0 });
  up = false;
  now += 100;
  assert.deepEqual(clock.read(), { up: false, downSeconds: 0, totalSeconds: 0 }, 'down from the first reading that saw it');
  now += 2500;
  assert.deepEqual(clock.readyFields(), { redis: 'down', redisDownSeconds: 2.5 });
  assert.deepEqual(await series(), [2.5, 2.5]);
  up = true;
  now += 500;
  assert.deepEqual(clock.read(), { up: true, downSeconds: 0, totalSeconds: 3 });
  assert.deepEqual(await series(), [0, 3]);
  up = false;
  clock.read();
  now += 1250;
  assert.deepEqual(clock.read(), { up: false, downSeconds: 1.25, totalSeconds: 4.25 });
  assert.deepEqual(await series(), [1.25, 4.25], 'the counter only grows, by the time since the last scrape');
  up = true;
  clock.read(); // the 250 ms sampling timer sees it
  now += 10_000;
  assert.deepEqual(await series(), [0, 4.25], 'an outage ends at the first reading that sees Redis up');
});
