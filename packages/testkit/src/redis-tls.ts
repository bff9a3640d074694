import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './redis.js';
import { waitFor } from './wait.js';

/** A private CA and a server certificate it signed, for 127.0.0.1 and localhost (PEM files). */
export interface RedisTlsFiles {
  dir: string;
  caFile: string;
  certFile: string;
  keyFile: string;
  /** Removes the directory. */
  remove(): void;
}

function openssl(args: string[]): void {
  execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'], timeout: 20_000 });
}

/**
 * Generates, with `openssl`, a CA (P-256, one day) and a server certificate signed by it with
 * subjectAltName DNS:localhost, IP:127.0.0.1, in a new temporary directory.
 */
export function makeTlsFiles(): RedisTlsFiles {
  const dir = mkdtempSync(join(tmpdir(), 'cyclone-redis-tls-'));
  const f = (name: string) => join(dir, name);
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl(['req', '-x509', ...ec, '-keyout', f('ca.key'), '-out', f('ca.crt'), '-days', '1', '-subj', '/CN=cyclone-sse test CA']);
  openssl(['req', ...ec, '-keyout', f('server.key'), '-out', f('server.csr'), '-subj', '/CN=localhost']);
  writeFileSync(
    f('server.ext'),
    'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\n',
  );
  openssl([
    'x509',
    '-req',
    '-in',
    f('server.csr'),
    '-CA',
    f('ca.crt'),
    '-CAkey',
    f('ca.key'),
    '-CAcreateserial',
    '-out',
    f('server.crt'),
    '-days',
    '1',
    '-extfile',
    f('server.ext'),
  ]);
  return {
    dir,
    caFile: f('ca.crt'),
    certFile: f('server.crt'),
    keyFile: f('server.key'),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** True when a `PING` over TLS (trusting `caFile`) on `port` answers `+PONG`. */
export function pingRedisTls(port: number, caFile: string, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ port, host: '127.0.0.1', ca: readFileSync(caFile) });
    let data = '';
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.on('error', () => done(false));
    socket.on('secureConnect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk: Buffer) => {
      data += chunk.toString();
      if (data.includes('\r\n')) done(data.startsWith('+PONG'));
    });
  });
}

export interface RedisTlsServer {
  /** The TLS port (there is no plain port: `--port 0`). */
  port: number;
  /** `rediss://127.0.0.1:<port>`. */
  url: string;
  pid: number;
  tls: RedisTlsFiles;
  /** SIGTERM (SIGKILL after 5 s), wait for exit, remove the directories. Idempotent. */
  stop(): Promise<void>;
}

/**
 * A private `redis-server` that speaks only TLS (`--tls-port`, `--port 0`), with a certificate
 * from a fresh private CA (`tls.caFile`); clients are not asked for certificates.
 */
export async function startRedisTls(): Promise<RedisTlsServer> {
  const tls = makeTlsFiles();
  const port = await freePort();
  const args = [
    '--port',
    '0',
    '--tls-port',
    String(port),
    '--tls-cert-file',
    tls.certFile,
    '--tls-key-file',
    tls.keyFile,
    '--tls-ca-cert-file',
    tls.caFile,
    '--tls-auth-clients',
    'no',
    '--bind',
    '127.0.0.1',
    '--save',
    '',
    '--appendonly',
    'no',
    '--dir',
    tls.dir,
    '--logfile',
    '',
    '--loglevel',
    'warning',
  ];
  const child: ChildProcess = spawn('redis-server', args, { stdio: ['ignore', 'ignore', 'inherit'] });
  const exited = once(child, 'exit');
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
    }
    tls.remove();
  };
  try {
    await Promise.race([
      waitFor(() => pingRedisTls(port, tls.caFile), 10_000, `TLS redis-server on port ${port}`),
      exited.then(() => {
        throw new Error(`TLS redis-server on port ${port} exited at start (built without TLS?)`);
      }),
    ]);
  } catch (err) {
    await stop();
    throw err;
  }
  return { port, url: `rediss://127.0.0.1:${port}`, pid: child.pid!, tls, stop };
}
