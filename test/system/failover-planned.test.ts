// Redis failover under load on real Sentinel groups (scenario in failover-scenario.ts): a planned
// failover, a bare SENTINEL FAILOVER while publishing, and a partitioned primary that comes back.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { only, report, scenario } from './failover-scenario.js';

test(
  'a planned failover (CLIENT PAUSE WRITE, then SENTINEL FAILOVER): no reset, nothing lost',
  { skip: only !== undefined && only !== 'planned' },
  async (t) => {
    const o = await scenario(t, 'planned', 0);
    report('planned failover', o);
    assert.equal(o.resets, 0, 'no reset');
  },
);

test(
  'a bare SENTINEL FAILOVER while publishing: I1 and I2 hold (writes in its window may be lost, then reset)',
  { skip: only !== undefined && only !== 'failover' },
  async (t) => {
    const o = await scenario(t, 'failover', 0);
    report('SENTINEL FAILOVER', o);
  },
);

test(
  'the primary partitioned (SIGSTOP) and back as a stale primary: I1 and I2 hold',
  { skip: only !== undefined && only !== 'partition' },
  async (t) => {
    const o = await scenario(t, 'partition', 0);
    report('partition', o);
  },
);
