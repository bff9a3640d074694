import { spawn, type ChildProcess } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { V8_FLAGS_BY_COMPONENT } from '@cyclone-sse/common';

export interface NodeProcess {
  pid: number;
  port: number;
  metricsPort: number | undefined;
  base: string;
  metricsBase: string;
  output: () => string;
  exited: Promise<number | null>;
  kill(signal?: NodeJS.Signals): void;
  /** SIGTERM and wait for exit (SIGKILL after `graceMs`). */
  stop(graceMs?: number): Promise<number | null>;
}

const require = createRequire(import.meta.url);

/** Absolute path of a workspace binary: 'edge' | 'publisher' | 'all-in-one'. */
export function binPath(which: 'edge' | 'publisher' | 'all-in-one'): string {
  const root = dirname(require.resolve(`@cyclone-sse/${which}/package.json`));
  return join(root, 'dist', 'main.js');
}

/**
 * Spawns a cyclone-sse binary (with its shipped V8 flags, V8_FLAGS_BY_COMPONENT, like its bin shim) with `--port 0 --metrics-port 0` and resolves once it logged its
 * `listening` line (which carries the bound ports).
 */
export async function spawnNode(
  which: 'edge' | 'publisher' | 'all-in-one',
  args: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<NodeProcess> {
  const child: ChildProcess = spawn(
    process.execPath,
    [...V8_FLAGS_BY_COMPONENT[which], binPath(which), '--port', '0', '--metrics-port', '0', ...args],
    {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let out = '';
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const listening = new Promise<{ port: number; metricsPort?: number }>((resolve, reject) => {
    const onData = (d: Buffer) => {
      out += d.toString();
      for (const line of out.split('\n')) {
        if (!line.includes('"event":"listening"')) continue;
        try {
          const j = JSON.parse(line) as { port: number; metricsPort?: number };
          resolve(j);
          return;
        } catch {
          /* partial line */
        }
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    void exited.then((code) => reject(new Error(`${which} exited with ${code} before listening:\n${out}`)));
    setTimeout(() => reject(new Error(`${which} did not listen within 20 s:\n${out}`)), 20_000).unref();
  });
  const { port, metricsPort } = await listening;
  return {
    pid: child.pid!,
    port,
    metricsPort,
    base: `http://127.0.0.1:${port}`,
    metricsBase: `http://127.0.0.1:${metricsPort}`,
    output: () => out,
    exited,
    kill: (signal = 'SIGKILL') => {
      child.kill(signal);
    },
    async stop(graceMs = 10_000) {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), graceMs);
      const code = await exited;
      clearTimeout(t);
      return code;
    },
  };
}
