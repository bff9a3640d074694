// `npm run cluster -- --redis-cluster` (scripts/cluster.mjs) as a user runs it: it starts a 6-node
// Redis Cluster, 2 edges, a publisher and nginx, prints what to curl; a publish through nginx
// reaches a subscriber through nginx; Ctrl-C (SIGINT) stops every process it started.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { connect } from 'node:net';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { freePort, httpRequest, RecordingSubscriber, waitFor } from '@cyclone-sse/testkit';

const SCRIPT = fileURLToPath(new URL('../../scripts/cluster.mjs', import.meta.url));

function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

test(
  'npm run cluster -- --redis-cluster: a publish through nginx reaches a subscriber through nginx; SIGINT stops everything',
  { timeout: 150_000 },
  async (t) => {
    const port = await freePort();
    const prefix = `cs${process.pid}`;
    const child = spawn(process.execPath, [SCRIPT, '--redis-cluster', '--port', String(port), '--redis-prefix', prefix], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    t.after(async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGINT'); // the script's own stop: every process it started
      const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
      await exited;
      clearTimeout(timer);
    });
    await waitFor(() => out.includes('Ctrl-C stops everything.') || child.exitCode !== null, 120_000, `the cluster to start:\n${out}`, 100);
    assert.equal(child.exitCode, null, out);

    // What it printed: nginx, the edges and publisher, the 6 Redis nodes (3 primaries), the curl lines.
    const base = `http://127.0.0.1:${port}`;
    assert.ok(out.includes(`cyclone-sse cluster on ${base}`), out);
    assert.ok(out.includes(`curl -N '${base}/?channels=base'`), out);
    assert.ok(out.includes(`curl -X POST -d "message=%5B123%2C+124%5D&channel=base" ${base}/publish`), out);
    const redisLine = /redis cluster: (.*)\n/.exec(out)?.[1] ?? '';
    const redisPorts = [...redisLine.matchAll(/(\d+)/g)].map((m) => Number(m[1]));
    assert.equal(redisPorts.length, 6, redisLine);
    assert.equal((redisLine.match(/\(primary\)/g) ?? []).length, 3, redisLine);
    const nodePorts = [...out.matchAll(/http:\/\/127\.0\.0\.1:(\d+)/g)].map((m) => Number(m[1])).filter((p) => p !== port);
    assert.ok(nodePorts.length >= 6, `2 edges + a publisher, each with a metrics port: ${out}`);
    const statsUrl = /curl '(http:\/\/127\.0\.0\.1:\d+\/stats\?scope=cluster)'/.exec(out)?.[1];
    assert.ok(statsUrl, out);

    // The printed commands work: subscribe and publish through nginx.
    const sub = new RecordingSubscriber(`${base}/?channels=base`);
    t.after(() => sub.close());
    await sub.opened();
    const r = await httpRequest(`${base}/publish`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'message=%5B123%2C+124%5D&channel=base',
    });
    assert.equal(r.status, 200, r.text);
    await waitFor(() => sub.has('[123, 124]'), 15_000, 'the publish through nginx at the subscriber');
    assert.deepEqual(
      sub.received.map((m) => m.data),
      ['[123, 124]'],
    );
    await waitFor(
      async () => JSON.stringify((await httpRequest(statsUrl)).json) === JSON.stringify([['base', 1]]),
      10_000,
      'cluster-wide stats',
    );
    sub.close();

    // Ctrl-C: the script exits 0 and nothing it started listens any more.
    child.kill('SIGINT');
    assert.equal(await exited, 0, out);
    for (const p of [port, ...nodePorts, ...redisPorts]) assert.equal(await listening(p), false, `port ${p} still listening`);
  },
);
