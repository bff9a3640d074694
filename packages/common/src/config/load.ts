import yargs from 'yargs';
import { OPTIONS, camelCase, type Component, type Config, type OptionSpec } from './options.js';

export const ENV_PREFIX = 'CYCLONE_SSE';

export type ParseOutcome =
  | { kind: 'config'; config: Config }
  | { kind: 'help'; text: string }
  | { kind: 'errors'; errors: string[] };

function specsFor(component: Component): [string, OptionSpec][] {
  return Object.entries(OPTIONS as Record<string, OptionSpec>).filter(([, s]) => s.for.includes(component));
}

/**
 * yargs-parser captured the process.env object at import, so the given environment is applied
 * by swapping the CYCLONE_SSE_* entries of that object for the parse, then restoring them.
 */
async function withEnv<T>(env: NodeJS.ProcessEnv, fn: () => Promise<T>): Promise<T> {
  if (env === process.env) return fn();
  const mine = (e: NodeJS.ProcessEnv) => Object.keys(e).filter((k) => k.startsWith(`${ENV_PREFIX}_`));
  const saved = Object.fromEntries(mine(process.env).map((k) => [k, process.env[k]]));
  for (const k of Object.keys(saved)) delete process.env[k];
  for (const k of mine(env)) process.env[k] = env[k];
  try {
    return await fn();
  } finally {
    for (const k of mine(process.env)) delete process.env[k];
    Object.assign(process.env, saved);
  }
}

function build(component: Component, argv: string[], errors: string[]) {
  {
    let y = yargs(argv)
      .scriptName(`cyclone-sse${component === 'all-in-one' ? '' : `-${component}`}`)
      .usage('$0 [options]')
      .env(ENV_PREFIX)
      .config('config', 'JSON file with options (names as flags, e.g. {"port": 9000})')
      .strict()
      .version(false)
      .help('help')
      .alias('help', 'h')
      .wrap(110)
      // A repeated scalar flag: the last one wins (list options take several values after one flag).
      .parserConfiguration({ 'duplicate-arguments-array': false })
      .exitProcess(false)
      .fail((msg, err) => {
        errors.push(msg ?? err?.message ?? 'invalid arguments');
      });
    for (const [name, spec] of specsFor(component)) {
      y = y.option(name, {
        type: spec.type,
        default: spec.default,
        describe: spec.describe,
        group: `${spec.group}:`,
        alias: spec.alias,
      });
    }
    return y;
  }
}

/** Parses and validates options for one component without side effects. */
const TRUE = new Set(['1', 'true', 'yes', 'on']);
const FALSE = new Set(['0', 'false', 'no', 'off']);

/** The seed wrote booleans as `--use-ssl=1`; accept 1/0/yes/no/on/off in flags and env. */
function normaliseBooleans(argv: string[], env: NodeJS.ProcessEnv): { argv: string[]; env: NodeJS.ProcessEnv } {
  const booleans = Object.entries(OPTIONS as Record<string, OptionSpec>).filter(([, s]) => s.type === 'boolean').map(([n]) => n);
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const name = booleans.find((b) => a === `--${b}` || a.startsWith(`--${b}=`));
    if (!name) {
      out.push(a);
      continue;
    }
    let value = a.includes('=') ? a.slice(a.indexOf('=') + 1) : undefined;
    if (value === undefined && argv[i + 1] !== undefined && (TRUE.has(argv[i + 1]!.toLowerCase()) || FALSE.has(argv[i + 1]!.toLowerCase()))) value = argv[++i];
    const v = value?.toLowerCase();
    out.push(v === undefined ? `--${name}` : TRUE.has(v) ? `--${name}=true` : FALSE.has(v) ? `--${name}=false` : a);
  }
  const e = { ...env };
  for (const b of booleans) {
    const k = `${ENV_PREFIX}_${b.replace(/-/g, '_').toUpperCase()}`;
    const v = e[k]?.toLowerCase();
    if (v !== undefined) e[k] = TRUE.has(v) ? 'true' : FALSE.has(v) ? 'false' : e[k];
  }
  return { argv: out, env: e };
}

export async function parseConfig(
  component: Component,
  rawArgv: string[],
  rawEnv: NodeJS.ProcessEnv = process.env,
): Promise<ParseOutcome> {
  const { argv, env } = normaliseBooleans(rawArgv, rawEnv);
  const errors: string[] = [];
  const y = build(component, argv, errors);
  if (argv.includes('--help') || argv.includes('-h')) {
    return { kind: 'help', text: await y.getHelp() };
  }
  let parsed: Record<string, unknown>;
  try {
    parsed = (await withEnv(env, () => y.parseAsync())) as Record<string, unknown>;
  } catch (err) {
    errors.push((err as Error).message);
    parsed = {};
  }
  if (errors.length > 0) return { kind: 'errors', errors: errors.flatMap((e) => e.split('\n')).filter(Boolean) };

  const out: Record<string, unknown> = {};
  for (const [name, spec] of Object.entries(OPTIONS as Record<string, OptionSpec>)) {
    let value = spec.for.includes(component) ? parsed[name] : spec.default;
    if (value === undefined) value = spec.default;
    if (spec.type === 'array' && value !== undefined && !Array.isArray(value)) value = [value];
    if (spec.type === 'array' && Array.isArray(value)) value = value.flatMap((v) => String(v).split(',')).map((v) => v.trim()).filter(Boolean);
    errors.push(...check(name, spec, value));
    out[camelCase(name)] = value;
  }
  applySeedMapping(out, component, errors);
  if (errors.length > 0) return { kind: 'errors', errors };
  return { kind: 'config', config: Object.freeze(out) as unknown as Config };
}

function check(name: string, spec: OptionSpec, value: unknown): string[] {
  if (value === undefined) return [];
  if (spec.type === 'number') {
    if (typeof value !== 'number' || !Number.isFinite(value)) return [`--${name}: expected a number, got ${JSON.stringify(value)}`];
    if (spec.min !== undefined && value < spec.min) return [`--${name}: ${value} is below the minimum ${spec.min}`];
    if (spec.max !== undefined && value > spec.max) return [`--${name}: ${value} is above the maximum ${spec.max}`];
  }
  if (spec.choices && !spec.choices.includes(String(value))) {
    return [`--${name}: ${JSON.stringify(value)} is not one of ${spec.choices.join(', ')}`];
  }
  return [];
}

/** The seed's --broker / --redis-host / --redis-port map into --redis-url. */
function applySeedMapping(out: Record<string, unknown>, component: Component, errors: string[]): void {
  const host = out.redisHost as string | undefined;
  const port = out.redisPort as number | undefined;
  const wantsRedis = out.broker === 'redis' || host !== undefined || port !== undefined;
  if (!out.redisUrl && wantsRedis) {
    out.redisUrl = `redis://${host ?? '127.0.0.1'}:${port ?? 6379}`;
  }
  const amqp = ['amqpHost', 'amqpPort', 'amqpVhost', 'amqpUsername', 'amqpPassword'].some((k) => out[k] !== undefined);
  if (!out.amqpUrl && amqp) {
    const user = encodeURIComponent((out.amqpUsername as string | undefined) ?? 'guest');
    const pass = encodeURIComponent((out.amqpPassword as string | undefined) ?? 'guest');
    const vhost = encodeURIComponent((out.amqpVhost as string | undefined) ?? '/');
    out.amqpUrl = `amqp://${user}:${pass}@${(out.amqpHost as string | undefined) ?? '127.0.0.1'}:${(out.amqpPort as number | undefined) ?? 5672}/${vhost}`;
  }
  if (out.amqpExchangeName !== undefined) out.amqpExchange = out.amqpExchangeName;
  if (out.broker === 'amqp' && component === 'all-in-one') {
    errors.push('--broker amqp: run cyclone-sse-publisher with --amqp-url for AMQP input (see docs/migrating.md)');
  }
}

/**
 * Parses process arguments for a binary: prints help and exits 0, or prints one line per
 * problem and exits 2, before anything listens.
 */
export async function loadConfig(component: Component, argv = process.argv.slice(2)): Promise<Config> {
  const outcome = await parseConfig(component, argv);
  if (outcome.kind === 'help') {
    process.stdout.write(outcome.text + '\n');
    process.exit(0);
  }
  if (outcome.kind === 'errors') {
    for (const e of outcome.errors) process.stderr.write(`cyclone-sse: invalid configuration: ${e}\n`);
    process.exit(2);
  }
  return outcome.config;
}
