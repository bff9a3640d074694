import { readFileSync } from 'node:fs';
import yargs from 'yargs';
import { OPTIONS, camelCase, type Component, type Config, type OptionSpec } from './options.js';
import { ENV_PREFIX, envName } from './env-name.js';
import { SEED_FLAGS, applySeedMapping, dropObsoleteFlags } from './seed-flags.js';
import { redisConfigErrors, type RedisConnectionValues } from '../broker/redis-connection.js';

export type ParseOutcome =
  { kind: 'config'; config: Config; warnings: string[] } | { kind: 'help'; text: string } | { kind: 'errors'; errors: string[] };

function specsFor(component: Component): [string, OptionSpec][] {
  return Object.entries(OPTIONS as Record<string, OptionSpec>).filter(([, s]) => s.for.includes(component));
}

const unquote = (v: string) => (v.length >= 2 && (v[0] === '"' || v[0] === "'") && v.endsWith(v[0]) ? v.slice(1, -1) : v);

/**
 * Parses an options file in the seed's cyclone-sse.conf style: one flag per line (`--name=value`,
 * `--name value`, `-p 9000`), blank lines and `#` comment lines ignored, one pair of quotes
 * around a value removed.
 */
export function parseOptionsFile(text: string): string[] {
  const out: string[] = [];
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const m = /^(-{1,2}[^\s=]+)(?:=(.*)|\s+(.*))?$/.exec(line);
    const value = m?.[2] ?? m?.[3];
    if (!m || value === undefined) out.push(line);
    else if (m[1]!.startsWith('--')) out.push(`${m[1]}=${unquote(value.trim())}`);
    else out.push(m[1]!, unquote(value.trim()));
  }
  return out;
}

/**
 * Before yargs: puts the flags of `--config-file` (or CYCLONE_SSE_CONFIG_FILE) first, so the
 * command line wins (the last repeated flag wins); drops obsolete seed flags with a warning.
 */
function expandArgs(argv: string[], env: NodeJS.ProcessEnv): { argv: string[]; warnings: string[]; errors: string[] } {
  const warnings: string[] = [];
  const errors: string[] = [];
  const files: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--config-file' && i + 1 < argv.length) files.push(argv[i + 1]!);
    else if (argv[i]!.startsWith('--config-file=')) files.push(argv[i]!.slice('--config-file='.length));
  }
  const fromEnv = env[envName('config-file')];
  if (files.length === 0 && fromEnv) files.push(fromEnv);
  const fromFiles: string[] = [];
  for (const file of files.filter(Boolean)) {
    try {
      fromFiles.push(...parseOptionsFile(readFileSync(file, 'utf8')).filter((a) => !a.startsWith('--config-file')));
    } catch (err) {
      errors.push(`--config-file: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    }
  }
  return { argv: dropObsoleteFlags([...fromFiles, ...argv], warnings), warnings, errors };
}

/** Whether a flag was given on the (expanded) command line or in the environment. */
function given(argv: string[], env: NodeJS.ProcessEnv, name: string): boolean {
  return argv.some((a) => a === `--${name}` || a.startsWith(`--${name}=`)) || env[envName(name)] !== undefined;
}

/** CYCLONE_SSE_* variables of the build and test tooling (the cache of scripts/*.sh), not options. */
const NOT_OPTIONS = new Set([`${ENV_PREFIX}_CACHE`]);

/**
 * yargs-parser captured the process.env object at import, so the given environment is applied
 * by swapping the CYCLONE_SSE_* entries of that object for the parse, then restoring them.
 */
async function withEnv<T>(env: NodeJS.ProcessEnv, fn: () => Promise<T>): Promise<T> {
  const ours = (e: NodeJS.ProcessEnv) => Object.keys(e).filter((k) => k.startsWith(`${ENV_PREFIX}_`));
  if (env === process.env && !ours(env).some((k) => NOT_OPTIONS.has(k))) return fn();
  const source = env === process.env ? { ...process.env } : env;
  const saved = Object.fromEntries(ours(process.env).map((k) => [k, process.env[k]]));
  for (const k of Object.keys(saved)) delete process.env[k];
  for (const k of ours(source)) if (!NOT_OPTIONS.has(k)) process.env[k] = source[k];
  try {
    return await fn();
  } finally {
    for (const k of ours(process.env)) delete process.env[k];
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
    // The seed's flags this component has no use for: accepted, not listed.
    for (const name of SEED_FLAGS) {
      const spec = (OPTIONS as Record<string, OptionSpec>)[name]!;
      if (!spec.for.includes(component)) y = y.option(name, { type: spec.type, hidden: true });
    }
    return y;
  }
}

/** Parses and validates options for one component without side effects. */
const TRUE = new Set(['1', 'true', 'yes', 'on']);
const FALSE = new Set(['0', 'false', 'no', 'off']);

/** The seed wrote booleans as `--use-ssl=1`; accept 1/0/yes/no/on/off in flags and env. */
function normaliseBooleans(argv: string[], env: NodeJS.ProcessEnv): { argv: string[]; env: NodeJS.ProcessEnv } {
  const booleans = Object.entries(OPTIONS as Record<string, OptionSpec>)
    .filter(([, s]) => s.type === 'boolean')
    .map(([n]) => n);
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const name = booleans.find((b) => a === `--${b}` || a.startsWith(`--${b}=`));
    if (!name) {
      out.push(a);
      continue;
    }
    let value = a.includes('=') ? a.slice(a.indexOf('=') + 1) : undefined;
    if (value === undefined && argv[i + 1] !== undefined && (TRUE.has(argv[i + 1]!.toLowerCase()) || FALSE.has(argv[i + 1]!.toLowerCase())))
      value = argv[++i];
    const v = value?.toLowerCase();
    out.push(v === undefined ? `--${name}` : TRUE.has(v) ? `--${name}=true` : FALSE.has(v) ? `--${name}=false` : a);
  }
  const e = { ...env };
  for (const b of booleans) {
    const k = envName(b);
    const v = e[k]?.toLowerCase();
    if (v !== undefined) e[k] = TRUE.has(v) ? 'true' : FALSE.has(v) ? 'false' : e[k];
  }
  return { argv: out, env: e };
}

export async function parseConfig(component: Component, rawArgv: string[], rawEnv: NodeJS.ProcessEnv = process.env): Promise<ParseOutcome> {
  const expanded = expandArgs(rawArgv, rawEnv);
  const { argv, env } = normaliseBooleans(expanded.argv, rawEnv);
  const errors: string[] = [...expanded.errors];
  const y = build(component, argv, errors);
  if (argv.includes('--help') || argv.includes('-h')) {
    return { kind: 'help', text: await y.getHelp() };
  }
  let parsed: Record<string, unknown>;
  try {
    parsed = await withEnv(env, () => y.parseAsync());
  } catch (err) {
    errors.push((err as Error).message);
    parsed = {};
  }
  if (errors.length > 0) return { kind: 'errors', errors: errors.flatMap((e) => e.split('\n')).filter(Boolean) };

  const out: Record<string, unknown> = {};
  for (const [name, spec] of Object.entries(OPTIONS as Record<string, OptionSpec>)) {
    // Seed flags feed the mapping below even where they are not options of their own.
    let value = spec.for.includes(component) || spec.seed ? parsed[name] : spec.default;
    if (value === undefined) value = spec.default;
    if (spec.type === 'array' && value !== undefined && !Array.isArray(value)) value = [value];
    if (spec.type === 'array' && Array.isArray(value))
      value = value
        .flatMap((v) => String(v).split(','))
        .map((v) => v.trim())
        .filter(Boolean);
    errors.push(...check(name, spec, value));
    out[camelCase(name)] = value;
  }
  applySeedMapping(out, component, errors, (name) => given(argv, env, name));
  if (OPTIONS.export.for.includes(component)) checkExport(out, errors);
  errors.push(...redisConfigErrors(out as unknown as RedisConnectionValues));
  if (errors.length > 0) return { kind: 'errors', errors };
  return { kind: 'config', config: Object.freeze(out) as unknown as Config, warnings: expanded.warnings };
}

function check(name: string, spec: OptionSpec, value: unknown): string[] {
  if (value === undefined) return [];
  if (spec.type === 'number') {
    if (typeof value !== 'number' || !Number.isFinite(value)) return [`--${name}: expected a number, got ${JSON.stringify(value)}`];
    if (spec.min !== undefined && value < spec.min) return [`--${name}: ${value} is below the minimum ${spec.min}`];
    if (spec.max !== undefined && value > spec.max) return [`--${name}: ${value} is above the maximum ${spec.max}`];
  }
  if (spec.choices && (typeof value !== 'string' || !spec.choices.includes(value))) {
    return [`--${name}: ${JSON.stringify(value)} is not one of ${spec.choices.join(', ')}`];
  }
  return [];
}

/** --export: graphite (needs a host and a port) or empty, like the seed's only exporter. */
function checkExport(out: Record<string, unknown>, errors: string[]): void {
  if (out.export === '') return;
  if (out.export !== 'graphite') errors.push(`--export: ${JSON.stringify(out.export)} is not supported (graphite, or empty for none)`);
  else if (!out.exportHost || !out.exportPort)
    errors.push('--export graphite needs --export-host and --export-port (the carbon UDP listener)');
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
  for (const w of outcome.warnings) process.stderr.write(`cyclone-sse: warning: ${w}\n`);
  return outcome.config;
}
