import { once } from 'node:events';
import { connect, createServer, type Socket } from 'node:net';

export interface TcpRelay {
  port: number;
  /** Connections accepted so far (each one relayed to the target). */
  readonly connections: number;
  /** Stops listening and destroys every relayed connection. */
  close(): Promise<void>;
}

/**
 * A TCP relay on a free loopback port to `127.0.0.1:<targetPort>` that counts the connections it
 * accepted: a way to see a client's connection attempts (e.g. its retries after a failed TLS
 * handshake, which the server never counts).
 */
export async function startTcpRelay(targetPort: number): Promise<TcpRelay> {
  let connections = 0;
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    connections++;
    const upstream = connect(targetPort, '127.0.0.1');
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
    }
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    client.pipe(upstream).pipe(client);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as { port: number }).port,
    get connections() {
      return connections;
    },
    async close() {
      for (const s of sockets) s.destroy();
      server.close();
      await once(server, 'close');
    },
  };
}
