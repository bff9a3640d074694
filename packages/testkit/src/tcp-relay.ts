import { once } from 'node:events';
import { connect, createServer, type Socket } from 'node:net';

export interface TcpRelay {
  port: number;
  /** Connections accepted so far (each one relayed to the target). */
  readonly connections: number;
  /**
   * From now on, connections are accepted but not relayed (the client is answered nothing) until
   * `release`; the ones already relayed go on. A server that is silent to newcomers only.
   */
  hold(): void;
  /** Relays the held connections (the bytes their clients sent meanwhile first) and every new one. */
  release(): void;
  /** Stops listening and destroys every relayed connection. */
  close(): Promise<void>;
}

/**
 * A TCP relay on a free loopback port to `127.0.0.1:<targetPort>` that counts the connections it
 * accepted: a way to see a client's connection attempts (e.g. its retries after a failed TLS
 * handshake, which the server never counts), or to hold new connections unanswered.
 */
export async function startTcpRelay(targetPort: number): Promise<TcpRelay> {
  let connections = 0;
  let holding = false;
  let held: Socket[] = [];
  const sockets = new Set<Socket>();
  const relay = (client: Socket): void => {
    if (client.destroyed) return;
    const upstream = connect(targetPort, '127.0.0.1');
    sockets.add(upstream);
    upstream.on('close', () => sockets.delete(upstream));
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    client.pipe(upstream).pipe(client);
  };
  const server = createServer((client) => {
    connections++;
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    if (!holding) return relay(client);
    client.on('error', () => client.destroy());
    held.push(client);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as { port: number }).port,
    get connections() {
      return connections;
    },
    hold() {
      holding = true;
    },
    release() {
      holding = false;
      const waiting = held;
      held = [];
      for (const client of waiting) relay(client);
    },
    async close() {
      for (const s of sockets) s.destroy();
      server.close();
      await once(server, 'close');
    },
  };
}
