import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitFor } from './wait.js';

export interface RedisServerOptions {
  /**
   * AOF persistence (`--appendonly yes --appendfsync always`), so a kill -9 + restart keeps every
   * acknowledged write (with the default `everysec` the last second can be lost). Default false.
   */
  appendonly?: boolean;
  extraArgs?: string[];
}

export interface RedisServer {
  port: number;
  url: string;
  /** PID of redis-server itself. */
  readonly pid: number;
  /** SIGTERM and wait for exit; removes the data directory. Idempotent. */
  stop(): Promise<void>;
  /** SIGKILL and wait for exit (data directory kept, for restart()). */
  kill9(): Promise<void>;
  /** Starts redis-server again on the same port and directory; resolves when it answers PING. */
  restart(): Promise<void>;
}

/** A free TCP port on 127.0.0.1 (bound and released; good enough for tests). */
export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  server.close();
  await once(server, 'close');
  return port;
}

/** True when a raw `PING` on `port` answers `+PONG` (not `-LOADING`). */
export function pingRedis(port: number, timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ port, host: '127.0.0.1' });
    let data = '';
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.on('error', () => done(false));
    socket.on('connect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk) => {
      data += chunk.toString();
      if (data.includes('\r\n')) done(data.startsWith('+PONG'));
    });
  });
}

/**
 * Spawns a private `redis-server` on a free port with its own data directory (no RDB snapshots),
 * and waits until it answers PING.
 */
export async function startRedis(options: RedisServerOptions = {}): Promise<RedisServer> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'cyclone-redis-'));
  const args = [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--save',
    '',
    '--appendonly',
    options.appendonly ? 'yes' : 'no',
    ...(options.appendonly ? ['--appendfsync', 'always'] : []),
    '--dir',
    dir,
    '--logfile',
    '',
    '--loglevel',
    'warning',
    ...(options.extraArgs ?? []),
  ];
  let child: ChildProcess | undefined;
  let stopped = false;

  const launch = async (): Promise<void> => {
    const proc = spawn('redis-server', args, { stdio: ['ignore', 'ignore', 'inherit'] });
    child = proc;
    const exited = once(proc, 'exit');
    await Promise.race([
      waitFor(() => pingRedis(port), 10_000, `redis-server on port ${port}`),
      exited.then(() => {
        throw new Error(`redis-server on port ${port} exited at start`);
      }),
    ]);
  };
  const terminate = async (signal: NodeJS.Signals): Promise<void> => {
    const proc = child;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = once(proc, 'exit');
    proc.kill(signal);
    await exited;
  };

  await launch();
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    get pid() {
      return child?.pid ?? -1;
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await terminate('SIGTERM');
      rmSync(dir, { recursive: true, force: true });
    },
    kill9: () => terminate('SIGKILL'),
    async restart() {
      await terminate('SIGTERM');
      await launch();
    },
  };
}
