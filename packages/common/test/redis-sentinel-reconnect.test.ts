// A Sentinel client (createRedisClient, with the broker's options) through a kill -9 failover whose
// +switch-master announcement comes while the client is still asking a sentinel for the primary:
// it must go on reconnecting and reach the promoted replica. With ioredis's failover detector kept
// from the connection that closed, the announcement aborted that reconnect attempt and the client
// ended for good (status 'end', no more retries): an edge whose subscriber connection did so never
// saw the new epoch. Real processes: a primary, a replica, three sentinels; the client reaches one
// sentinel through a relay that answers nothing to new connections while the failover runs (a
// sentinel slow to answer), so it is mid-question whenever the announcement comes.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { test } from 'node:test';
import { startRedisSentinelGroup, startTcpRelay, waitFor } from '@cyclone-sse/testkit';
import { BROKER_CLIENT_OPTIONS, createRedisClient } from '../src/index.js';

test('Sentinel: the +switch-master announcement of a kill -9 failover, while the client asks a sentinel for the primary, does not end the client', async (t) => {
  const group = await startRedisSentinelGroup({ replicas: 1, sentinels: 3, downAfterMs: 1000 });
  t.after(() => group.close());
  const relay = await startTcpRelay(group.sentinels[0]!.port);
  t.after(() => relay.close());
  // Only the relayed sentinel (updateSentinels off: the others it names are not asked), so every
  // question for the primary goes through the relay; its announcements reach the failover
  // detector over the connection made before the hold.
  const client = createRedisClient(
    { sentinels: [{ host: '127.0.0.1', port: relay.port }], sentinelName: group.name },
    { ...BROKER_CLIENT_OPTIONS, connectionName: 'reconnect-test', updateSentinels: false },
  );
  t.after(() => client.disconnect());
  const events: string[] = [];
  client.on('error', (err: Error) => events.push(`error ${err.message}`));
  client.on('end', () => events.push('end'));
  const subscribed = once(client, 'failoverSubscribed');
  await client.connect();
  await subscribed;

  const old = await group.primary();
  relay.hold();
  await group.kill9(old.port);
  const promoted = await group.waitForNewPrimary(old.port, 30_000);
  // Every sentinel names the new primary: each has published +switch-master. Two more failed
  // questions (each ends when the held one times out) and the announcement has been handled.
  const seen = events.length;
  const unanswered = () => events.slice(seen).filter((e) => e.includes('All sentinels are unreachable')).length;
  await waitFor(() => events.includes('end') || unanswered() >= 2, 15_000, 'two unanswered questions to the sentinel');
  relay.release();
  await waitFor(() => events.includes('end') || client.status === 'ready', 15_000, 'the client to reconnect');
  assert.ok(!events.includes('end'), `the client ended instead of reconnecting: ${events.slice(-3).join(' | ')}`);
  const info = await client.info('server');
  assert.equal(Number(/tcp_port:(\d+)/.exec(info)?.[1]), promoted, 'connected to the promoted replica');
});
