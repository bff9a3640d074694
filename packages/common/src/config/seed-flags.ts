import type { Component } from './options.js';

/*
 * Compatibility with the seed (`twistd cyclone-sse` and its cyclone-sse.conf): which of its flags
 * every binary accepts, which are dropped with a warning, and how its --broker / --redis-host /
 * --amqp-* flags map onto the options of this hub. load.ts calls these around the yargs parse.
 */

/**
 * Every flag of the seed (`twistd cyclone-sse`, its cyclone-sse.conf): each binary accepts all of
 * them, so one options file serves every process, and uses those that apply to it.
 */
export const SEED_FLAGS = [
  'port',
  'listen',
  'broker',
  'http-secret',
  'redis-host',
  'redis-port',
  'amqp-host',
  'amqp-port',
  'amqp-vhost',
  'amqp-username',
  'amqp-password',
  'amqp-exchange-name',
  'amqp-exchange-type',
  'use-ssl',
  'ssl-port',
  'ssl-listen',
  'ssl-cert',
  'ssl-key',
  'export',
  'export-host',
  'export-port',
  'export-interval',
  'export-path',
] as const;

/** Seed flags with no equivalent: accepted (with their value) and ignored, with a warning. */
export const OBSOLETE_FLAGS: Readonly<Record<string, string>> = {
  app: 'custom cyclone Applications have no equivalent; routes and auth are options (--sse-paths, --subscriber-auth, --http-secret), custom logic belongs in your backend or proxy (docs/migrating.md)',
  'amqp-spec': 'no AMQP spec file is needed (the AMQP 0-9-1 client has it built in)',
  'amqp-channel': 'the publisher opens its own AMQP channels (--amqp-prefetch tunes consumption)',
};
const OBSOLETE_SHORT: Readonly<Record<string, string>> = { r: 'app' };

/**
 * Drops the obsolete seed flags (and their values) from the arguments, with a warning each;
 * everything after `--` is left alone.
 */
export function dropObsoleteFlags(args: string[], warnings: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const m = /^(--?)([^=]+)(=.*)?$/.exec(a);
    if (a === '--') {
      out.push(...args.slice(i));
      break;
    }
    if (!m) {
      out.push(a);
      continue;
    }
    const name = m[1] === '--' ? m[2]! : OBSOLETE_SHORT[m[2]!];
    if (name !== undefined && OBSOLETE_FLAGS[name] !== undefined) {
      warnings.push(`--${name} is obsolete and ignored: ${OBSOLETE_FLAGS[name]}`);
      if (m[3] === undefined && i + 1 < args.length && !args[i + 1]!.startsWith('-')) i++; // its value
      continue;
    }
    out.push(a);
  }
  return out;
}

/**
 * The seed's --broker / --redis-host / --redis-port map into --redis-url, its --amqp-* into
 * --amqp-url and --amqp-exchange (publisher).
 */
export function applySeedMapping(
  out: Record<string, unknown>,
  component: Component,
  errors: string[],
  given: (name: string) => boolean,
): void {
  const host = out.redisHost as string | undefined;
  const port = out.redisPort as number | undefined;
  // An explicit --broker=http on the all-in-one is the in-memory broker, as in the seed, even when
  // --redis-host/--redis-port are listed too (the stock cyclone-sse.conf lists every flag).
  const memory = component === 'all-in-one' && out.broker === 'http' && given('broker');
  const wantsRedis = out.broker === 'redis' || (!memory && (host !== undefined || port !== undefined));
  // With --redis-sentinels the primary comes from Sentinel: no URL is made up from host and port.
  const sentinels = (out.redisSentinels as string[] | undefined)?.length ?? 0;
  const clusterNodes = (out.redisClusterNodes as string[] | undefined)?.length ?? 0;
  if (!out.redisUrl && sentinels === 0 && clusterNodes === 0 && wantsRedis) {
    out.redisUrl = `redis://${host ?? '127.0.0.1'}:${port ?? 6379}`;
  }
  const amqp =
    out.broker === 'amqp' || ['amqpHost', 'amqpPort', 'amqpVhost', 'amqpUsername', 'amqpPassword'].some((k) => out[k] !== undefined);
  if (component === 'publisher' && out.broker === 'amqp' && given('broker')) {
    // The seed's AMQP defaults: a direct exchange named sse-cyclone-server.
    if (!given('amqp-exchange') && !given('amqp-exchange-name')) out.amqpExchange = 'sse-cyclone-server';
    if (!given('amqp-exchange-type')) out.amqpExchangeType = 'direct';
  }
  if (component === 'publisher' && !out.amqpUrl && amqp) {
    const user = encodeURIComponent((out.amqpUsername as string | undefined) ?? 'guest');
    const pass = encodeURIComponent((out.amqpPassword as string | undefined) ?? 'guest');
    const vhost = encodeURIComponent((out.amqpVhost as string | undefined) ?? '/');
    out.amqpUrl = `amqp://${user}:${pass}@${(out.amqpHost as string | undefined) ?? '127.0.0.1'}:${(out.amqpPort as number | undefined) ?? 5672}/${vhost}`;
  }
  if (component === 'publisher' && out.amqpExchangeName !== undefined) out.amqpExchange = out.amqpExchangeName;
  if (out.broker === 'amqp' && component === 'all-in-one') {
    errors.push('--broker amqp: run cyclone-sse-publisher with --amqp-url for AMQP input (see docs/migrating.md)');
  }
}
