import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createConnection } from 'node:net';
import { promisify } from 'node:util';
import { waitFor } from './wait.js';

const run = promisify(execFile);

/** The shared test RabbitMQ (guest/guest on 127.0.0.1:5672 unless RABBIT_HOST / RABBIT_PORT say otherwise). */
export const RABBIT_HOST = process.env.RABBIT_HOST ?? '127.0.0.1';
export const RABBIT_PORT = Number(process.env.RABBIT_PORT ?? 5672);

/** Runs `rabbitmqctl -q <args>` and returns its stdout. */
export async function rabbitmqctl(...args: string[]): Promise<string> {
  const { stdout } = await run('rabbitmqctl', ['-q', ...args], { timeout: 30_000 });
  return stdout;
}

/** True when something accepts TCP connections on the AMQP port. */
export function pingRabbit(timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: RABBIT_HOST, port: RABBIT_PORT });
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.on('error', () => done(false));
    socket.on('connect', () => done(true));
  });
}

/** Starts the local RabbitMQ (`rabbitmq-server -detached`) unless it already answers. */
export async function ensureRabbit(): Promise<void> {
  if (await pingRabbit()) return;
  await run('rabbitmq-server', ['-detached']);
  await rabbitmqctl('await_startup', '--timeout', '60');
  await waitFor(() => pingRabbit(), 10_000, 'rabbitmq on the AMQP port');
}

export interface RabbitVhost {
  name: string;
  /** amqp:// URL of the vhost as guest. */
  url: string;
  /** Deletes the vhost with everything in it (exchanges, queues, connections). Idempotent. */
  delete(): Promise<void>;
}

/**
 * A fresh vhost with guest permissions: a test gets its own namespace, so it can use the real
 * default names (`sse-cyclone-server`, `cyclone-sse.publish`) and clean up in one step.
 */
export async function createRabbitVhost(prefix = 'cyclone-test'): Promise<RabbitVhost> {
  const name = `${prefix}-${process.pid}-${randomBytes(4).toString('hex')}`;
  await rabbitmqctl('add_vhost', name);
  await rabbitmqctl('set_permissions', '-p', name, 'guest', '.*', '.*', '.*');
  let deleted = false;
  return {
    name,
    url: `amqp://guest:guest@${RABBIT_HOST}:${RABBIT_PORT}/${encodeURIComponent(name)}`,
    async delete() {
      if (deleted) return;
      deleted = true;
      await rabbitmqctl('delete_vhost', name);
    },
  };
}

/**
 * Closes (server side, like an operator or a broker restart would) every connection whose
 * client property `connection_name` is `connectionName`; returns how many it closed.
 */
export async function closeRabbitConnections(connectionName: string, explanation = 'closed by test'): Promise<number> {
  const out = await rabbitmqctl('--no-table-headers', 'list_connections', 'pid', 'client_properties');
  const needle = `{"connection_name","${connectionName}"}`;
  const pids = out
    .split('\n')
    .filter((line) => line.includes(needle))
    .map((line) => line.split('\t')[0]!);
  for (const pid of pids) await rabbitmqctl('close_connection', pid, explanation);
  return pids.length;
}
