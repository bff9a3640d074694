import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './redis.js';
import { waitFor } from './wait.js';

export interface NginxOptions {
  /** Edge ports (SSE and everything but /publish). */
  edges: number[];
  /** Publisher ports (/publish); defaults to the edges. */
  publishers?: number[];
  port?: number;
}

/**
 * The reference nginx configuration for cyclone-sse (docs/nginx.md explains each line):
 * HTTP/1.1 to the upstreams (uWS answers nothing to HTTP/1.0), no buffering, a read timeout
 * above the heartbeat, and a dead edge skipped instead of answered with 502 (which would stop a
 * native EventSource for good).
 */
export function renderNginxConfig(opts: { dir: string; port: number; edges: number[]; publishers: number[] }): string {
  const servers = (ports: number[]) => ports.map((p) => `    server 127.0.0.1:${p} max_fails=1 fail_timeout=2s;`).join('\n');
  return `worker_processes 1;
error_log ${opts.dir}/error.log warn;
pid ${opts.dir}/nginx.pid;
events { worker_connections 8192; }
http {
  access_log off;
  client_body_temp_path ${opts.dir}/tmp/body;
  proxy_temp_path ${opts.dir}/tmp/proxy;
  fastcgi_temp_path ${opts.dir}/tmp/fastcgi;
  uwsgi_temp_path ${opts.dir}/tmp/uwsgi;
  scgi_temp_path ${opts.dir}/tmp/scgi;

  upstream cyclone_edges {
${servers(opts.edges)}
    keepalive 64;
    keepalive_timeout 4s;
  }
  upstream cyclone_publishers {
${servers(opts.publishers)}
    keepalive 64;
    keepalive_timeout 4s;
  }

  server {
    listen 127.0.0.1:${opts.port};
    client_max_body_size 2m;

    location = /publish {
      proxy_pass http://cyclone_publishers;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_next_upstream error timeout;
    }

    location / {
      proxy_pass http://cyclone_edges;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_buffering off;
      proxy_cache off;
      proxy_read_timeout 1h;
      proxy_send_timeout 1h;
      proxy_next_upstream error timeout http_502 http_503;
      proxy_connect_timeout 2s;
    }
  }
}
`;
}

export interface Nginx {
  port: number;
  base: string;
  dir: string;
  pid: number;
  stop(): Promise<void>;
}

export const NGINX_BIN = ['/usr/sbin/nginx', '/usr/bin/nginx'].find((p) => existsSync(p)) ?? 'nginx';

/** Starts a private nginx (its own prefix dir, foreground) in front of the given ports. */
export async function startNginx(opts: NginxOptions): Promise<Nginx> {
  const dir = mkdtempSync(join(tmpdir(), 'cyclone-nginx-'));
  mkdirSync(join(dir, 'tmp'), { recursive: true });
  const port = opts.port ?? (await freePort());
  const conf = join(dir, 'nginx.conf');
  writeFileSync(conf, renderNginxConfig({ dir, port, edges: opts.edges, publishers: opts.publishers ?? opts.edges }));
  const child: ChildProcess = spawn(NGINX_BIN, ['-p', dir, '-c', conf, '-g', 'daemon off;'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d) => (stderr += d));
  let exited = false;
  child.on('exit', () => (exited = true));
  await waitFor(
    () => {
      if (exited) throw new Error(`nginx exited: ${stderr}`);
      return new Promise<boolean>((resolve) => {
        const s = connect(port, '127.0.0.1');
        s.once('connect', () => {
          s.destroy();
          resolve(true);
        });
        s.once('error', () => resolve(false));
      });
    },
    10_000,
    'nginx to listen',
  );
  return {
    port,
    base: `http://127.0.0.1:${port}`,
    dir,
    pid: child.pid!,
    async stop() {
      if (!exited) {
        const done = new Promise((r) => child.once('exit', r));
        child.kill('SIGQUIT');
        const t = setTimeout(() => child.kill('SIGKILL'), 3000);
        await done;
        clearTimeout(t);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
