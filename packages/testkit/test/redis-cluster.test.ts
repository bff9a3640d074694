// The Redis Cluster harness itself (packages/testkit/src/redis-cluster.ts): the layout it builds,
// that close() leaves no process and no directory behind, a slot migration under a write load
// that loses no acknowledged write, and a kill -9 failover.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { test } from 'node:test';
import { Cluster } from 'ioredis';
import { startRedisCluster, waitFor, type RedisCluster } from '@cyclone-sse/testkit';

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function cluster(t: { after(fn: () => unknown): void }, opts?: Parameters<typeof startRedisCluster>[0]): Promise<RedisCluster> {
  const c = await startRedisCluster(opts);
  t.after(() => c.close());
  return c;
}

test('3 primaries × 1 replica: the redis-cli slot split, one replica each; close() kills every PID and removes every directory', async (t) => {
  const c = await startRedisCluster();
  let closed = false;
  t.after(() => (closed ? undefined : c.close()));
  t.diagnostic(`cluster ready in ${c.startupMs} ms`);
  assert.equal(c.nodes.length, 6);
  assert.deepEqual(
    c.nodes.map((n) => n.role),
    ['primary', 'primary', 'primary', 'replica', 'replica', 'replica'],
  );
  assert.equal(c.seeds, c.nodes.map((n) => `127.0.0.1:${n.port}`).join(','));
  assert.deepEqual(
    c.seedList.map((s) => s.port),
    c.nodes.map((n) => n.port),
  );
  const primaries = c.nodes.slice(0, 3).map((n) => n.port);
  assert.deepEqual(
    (await c.slotMap()).map((r) => [r.first, r.last, r.primary]),
    [
      [0, 5460, primaries[0]],
      [5461, 10922, primaries[1]],
      [10923, 16383, primaries[2]],
    ],
  );
  assert.deepEqual(await c.primaryPorts(), primaries);
  assert.equal(await c.slotOwner(5461), primaries[1]);
  const shards = await c.shards();
  assert.deepEqual(
    shards.map((s) => s.slots),
    [[[0, 5460]], [[5461, 10922]], [[10923, 16383]]],
  );
  for (const s of shards) assert.deepEqual(s.nodes.map((n) => n.role).sort(), ['master', 'replica']);
  for (const n of c.nodes) {
    assert.match(n.id, /^[0-9a-f]{40}$/);
    assert.ok(n.alive && isRunning(n.pid));
    assert.equal(await c.command(n.port, 'CONFIG', 'GET', 'save').then((v) => (v as string[])[1]), '');
    assert.equal(await c.command(n.port, 'CONFIG', 'GET', 'appendonly').then((v) => (v as string[])[1]), 'no');
    assert.ok(String(await c.command(n.port, 'CONFIG', 'GET', 'cluster-config-file').then((v) => (v as string[])[1])).startsWith(n.dir));
  }
  const pids = c.nodes.map((n) => n.pid);
  const dirs = c.nodes.map((n) => n.dir);
  await c.close();
  closed = true;
  for (const pid of pids) assert.equal(isRunning(pid), false, `pid ${pid} still running`);
  for (const dir of dirs) assert.equal(existsSync(dir), false, `${dir} still exists`);
  await c.close(); // idempotent
});

test('1 primary + 1 replica (below the 3 primaries redis-cli insists on) is built by hand', async (t) => {
  const c = await cluster(t, { primaries: 1, replicasPerPrimary: 1 });
  assert.deepEqual(
    (await c.slotMap()).map((r) => [r.first, r.last, r.primary]),
    [[0, 16383, c.nodes[0]!.port]],
  );
  assert.deepEqual(
    c.nodes.map((n) => n.role),
    ['primary', 'replica'],
  );
  const repl = String(await c.command(c.nodes[1]!.port, 'INFO', 'replication'));
  assert.match(repl, /master_link_status:up/);
});

test('migrateSlot under a write load: keys and every acknowledged write end on the new owner', async (t) => {
  const c = await cluster(t, { replicasPerPrimary: 0 });
  const client = new Cluster([...c.seedList], { redisOptions: { connectTimeout: 2000 } });
  t.after(() => client.disconnect());
  // A script shaped like the publish script: INCR a sequence, XADD a history entry, both in one slot.
  client.defineCommand('step', {
    numberOfKeys: 2,
    lua: "local s = redis.call('INCR', KEYS[1]); redis.call('XADD', KEYS[2], s .. '-0', 'f', ARGV[1]); return s",
  });
  const step = (client as unknown as { step(a: string, b: string, v: string): Promise<number> }).step.bind(client);
  const tag = '{p60}'; // slot 360, on the first shard
  const slot = Number(await client.cluster('KEYSLOT', tag));
  assert.equal(slot, 360);
  const KEYS = 2000;
  const pipe = client.pipeline();
  for (let i = 0; i < KEYS; i++) pipe.set(`${tag}:k${i}`, String(i));
  await pipe.exec();

  let stop = false;
  const acked: number[] = [];
  const errors: string[] = [];
  const worker = async (): Promise<void> => {
    while (!stop) {
      try {
        acked.push(await step(`${tag}:seq`, `${tag}:h`, 'x'));
      } catch (err) {
        errors.push((err as Error).message);
      }
    }
  };
  const workers = Array.from({ length: 4 }, () => worker());
  const [from, , to] = await c.primaryPorts();
  await waitFor(() => acked.length >= 50, 10_000, 'writes before the move');
  const before = acked.length;
  const result = await c.migrateSlot(slot, to!, {
    batch: 100,
    onMigrating: async (move) => {
      assert.deepEqual(move, { slot, from, to });
      // Writes go on while the slot is MIGRATING/IMPORTING (ASK redirections).
      const at = acked.length;
      await waitFor(() => acked.length >= at + 50, 10_000, 'writes during the move');
    },
  });
  const during = acked.length - before;
  await waitFor(() => acked.length >= before + during + 50, 10_000, 'writes after the move');
  stop = true;
  await Promise.all(workers);
  t.diagnostic(`moved ${result.keys} keys; ${acked.length} writes acknowledged (${during} during the move); errors: ${errors.length}`);
  assert.deepEqual(errors, []);
  assert.equal(result.from, from);
  assert.equal(result.to, to);
  assert.ok(result.keys >= KEYS);
  assert.equal(await c.slotOwner(slot), to);
  assert.equal(await c.command(from!, 'CLUSTER', 'COUNTKEYSINSLOT', slot), 0);
  assert.equal(await c.command(to!, 'CLUSTER', 'COUNTKEYSINSLOT', slot), KEYS + 2);
  // Every acknowledged sequence number is distinct, and all of them are in the history.
  assert.equal(new Set(acked).size, acked.length);
  assert.equal(Number(await client.get(`${tag}:seq`)), acked.length);
  assert.equal(await client.xlen(`${tag}:h`), acked.length);
  assert.equal(await client.get(`${tag}:k${KEYS - 1}`), String(KEYS - 1));
  // Moving it to its owner is a no-op; a bad slot is a clear error.
  assert.deepEqual(await c.migrateSlot(slot, to!), { from: to, to, keys: 0 });
  await assert.rejects(c.migrateSlot(16384, to!), /slot must be 0\.\.16383/);
});

test('kill9 + waitForFailover: the replica takes over with the data; restart brings the old primary back as a replica', async (t) => {
  const c = await cluster(t);
  const [dead] = await c.primaryPorts();
  const shard = (await c.shards()).find((s) => s.nodes.some((n) => n.port === dead))!;
  const replica = shard.nodes.find((n) => n.role === 'replica')!.port;
  await c.command(dead!, 'SET', '{p60}:before', 'kept');
  assert.equal(await c.command(dead!, 'WAIT', 1, 2000), 1);
  const deadPid = c.nodes.find((n) => n.port === dead)!.pid;

  await c.kill9(dead!);
  assert.equal(isRunning(deadPid), false);
  const promoted = await c.waitForFailover(dead!);
  assert.equal(promoted, replica);
  assert.equal(await c.slotOwner(0), replica);
  assert.equal(await c.command(replica, 'GET', '{p60}:before'), 'kept');
  const roleOf = (port: number): [string, boolean] => {
    const n = c.nodes.find((x) => x.port === port)!;
    return [n.role, n.alive];
  };
  assert.deepEqual(roleOf(dead!), ['replica', false]);
  assert.deepEqual(roleOf(replica), ['primary', true]);
  assert.equal((await c.primaryPorts()).length, 3);

  await c.restart(dead!);
  await c.waitForStable();
  await waitFor(
    async () => /master_link_status:up/.test(String(await c.command(dead!, 'INFO', 'replication'))),
    15_000,
    'the old primary to sync as a replica',
  );
  assert.equal(c.nodes.find((n) => n.port === dead)!.role, 'replica');
  assert.equal(await c.slotOwner(0), replica);
});
