import { once } from 'node:events';
import { createConnection, createServer, type Socket } from 'node:net';

export interface TcpSwitch {
  /** The loopback port clients connect to. */
  port: number;
  /** Sends new connections to `port` from now on and closes every open one (as a failover does). */
  switchTo(port: number): void;
  close(): Promise<void>;
}

/**
 * A loopback TCP forwarder whose target can be switched: it plays the address a client was told
 * for "the primary", so a test can move that address from one real redis-server to another at an
 * exact moment (a deterministic failover, without Sentinel's timing).
 */
export async function startTcpSwitch(targetPort: number): Promise<TcpSwitch> {
  let target = targetPort;
  const open = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = createConnection({ host: '127.0.0.1', port: target });
    open.add(client);
    open.add(upstream);
    const drop = (): void => {
      client.destroy();
      upstream.destroy();
      open.delete(client);
      open.delete(upstream);
    };
    client.on('error', drop);
    upstream.on('error', drop);
    client.on('close', drop);
    upstream.on('close', drop);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  return {
    port,
    switchTo(next: number) {
      target = next;
      for (const s of open) s.destroy();
      open.clear();
    },
    async close() {
      for (const s of open) s.destroy();
      open.clear();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
