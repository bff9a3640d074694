/**
 * Processes of the bench scripts: pinning to a core, free ports, stopping a child, a private
 * redis-server, and parsing its INFO. bench/servers.mjs re-exports the pinning and stop helpers.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer, createConnection } from 'node:net';
import { availableParallelism } from 'node:os';

export const SERVER_CORE = '0';
export const CLIENT_CORE = availableParallelism() > 1 ? '1' : '0';
/** Whether `spawnPinned` pins (there is more than one core). */
export const PIN = availableParallelism() > 1;

/** `cmd args` pinned to `core` (the pid is the command's: taskset execs it). */
export function spawnPinned(core, cmd, args, opts = {}) {
  return PIN ? spawn('taskset', ['-c', core, cmd, ...args], opts) : spawn(cmd, args, opts);
}

export async function stopChild(child, graceMs = 10_000) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  const t = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(t);
}

export async function freePort() {
  const s = createServer().listen(0, '127.0.0.1');
  await once(s, 'listening');
  const { port } = s.address();
  s.close();
  await once(s, 'close');
  return port;
}

/** True when a Redis answers PING on `port`. */
function ping(port) {
  return new Promise((resolve) => {
    const s = createConnection({ port, host: '127.0.0.1' });
    s.on('error', () => resolve(false));
    s.on('connect', () => s.write('PING\r\n'));
    s.on('data', (d) => {
      s.destroy();
      resolve(d.toString().startsWith('+PONG'));
    });
  });
}

/** A private redis-server (no persistence) on a free port, pinned to `core`; resolves once it answers PING. */
export async function startRedis(core) {
  const port = await freePort();
  const child = spawnPinned(
    core,
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--loglevel', 'warning'],
    { stdio: 'ignore' },
  );
  const deadline = Date.now() + 10_000;
  while (!(await ping(port))) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error('redis-server did not start');
    await new Promise((r) => setTimeout(r, 50));
  }
  return { child, port };
}

/** The `field:value` lines of a Redis INFO answer as an object. */
export function parseInfo(text) {
  const out = {};
  for (const line of text.split('\r\n')) {
    const i = line.indexOf(':');
    if (i > 0) out[line.slice(0, i)] = line.slice(i + 1);
  }
  return out;
}
