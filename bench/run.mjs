#!/usr/bin/env node
/**
 * `npm run bench`: the same scenario against the naive Node baseline, the cyclone-sse edge on
 * Redis (with the publisher) and the all-in-one, each started fresh and pinned to core 0, with
 * the load generator pinned to core 1. Prints the tables and appends them to docs/benchmarks.md.
 *
 *   npm run bench                      N = 1000, 5000, 10000; 3 runs; all three servers
 *   npm run bench -- --quick           N = 1000, 1 run (a fast check; not appended)
 *   npm run bench -- --n 10000 --runs 3 --servers naive,all-in-one
 *   npm run bench -- --servers naive,edge-redis,floor-chain   with the floor of the architecture
 *                                      (bench/floor-edge.mjs + bench/floor-publisher.mjs on Redis)
 *   options: --no-append  --no-wait (don't wait for compilers to finish)  --wait-max <s>
 *            --cpu-prof <dir> (node --cpu-prof for the subscriber-holding process)
 *            --strace <dir> (strace -c -f of the subscriber-holding process over the scenario)
 *            --phases fanout,burst (only these; for profiling)
 *            --json <file> (raw per-run results)  --append (append even with --quick)
 *            --no-cluster (skip bench/redis-cluster.mjs)  --cluster-only (only it)
 *            --cold (no steady-state warm-up: measure fresh processes, as runs before 2026-11-30 did)
 *
 * Then bench/redis-cluster.mjs (the hub on a Redis Cluster against one redis-server: Redis CPU
 * per publish, spread over shards, cluster-bus traffic, edge CPU), with --quick passed on; it
 * appends its own section when this run appends.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { foreignLoad, groupTicksNs, machineTicks } from './proc-stats.mjs';
import { BINS, CLIENT_CORE, SERVER_CORE, spawnPinned, startServer } from './servers.mjs';
import { resultTable, summarize, targetLines } from './report.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const DOC = join(ROOT, 'docs', 'benchmarks.md');

function parseArgs(argv) {
  const o = {
    ns: [1000, 5000, 10000],
    runs: 3,
    servers: ['naive', 'edge-redis', 'edge-cluster', 'all-in-one'],
    append: true,
    wait: true,
    waitMax: 900,
    cpuProf: undefined,
    strace: undefined,
    phases: undefined,
    json: undefined,
    quick: false,
    cluster: true,
    clusterOnly: false,
  };
  let explicitAppend = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => argv[++i];
    if (a === '--quick') o.quick = true;
    else if (a === '--n') o.ns = next().split(',').map(Number);
    else if (a === '--runs') o.runs = Number(next());
    else if (a === '--servers') o.servers = next().split(',');
    else if (a === '--no-append') o.append = false;
    else if (a === '--append') explicitAppend = true;
    else if (a === '--no-wait') o.wait = false;
    else if (a === '--wait-max') o.waitMax = Number(next());
    else if (a === '--cpu-prof') o.cpuProf = resolve(next());
    else if (a === '--json') o.json = resolve(next());
    else if (a === '--strace') o.strace = resolve(next());
    else if (a === '--phases') o.phases = next().split(',');
    else if (a === '--cold') o.cold = true;
    else if (a === '--no-cluster') o.cluster = false;
    else if (a === '--cluster-only') o.clusterOnly = true;
    else throw new Error(`unknown option ${a} (see the header of bench/run.mjs)`);
  }
  if (o.quick) {
    if (!argv.includes('--n')) o.ns = [1000];
    if (!argv.includes('--runs')) o.runs = 1;
    o.append = explicitAppend;
  }
  if (explicitAppend) o.append = true;
  if (!o.servers.includes('naive')) o.servers.unshift('naive'); // the baseline is always in the run
  return o;
}

const log = (msg) => process.stderr.write(`[bench] ${msg}\n`);

/** Compilers or load tests of other tools running on this machine (they distort the numbers). */
function busyProcesses() {
  const r = spawnSync('pgrep', ['-fa', 'go build|go install|/compile|k6 run'], { encoding: 'utf8' });
  return r.stdout
    .split('\n')
    .filter((l) => l.trim() && !l.includes('pgrep'))
    .map((l) => l.slice(0, 120));
}

/**
 * Waits (up to maxSeconds) until no compiler or k6 runs and the rest of the machine uses less
 * than `maxLoad` cores (sampled over 5 s).
 */
async function waitUntilQuiet(maxSeconds, sampleMs = 5000, maxLoad = 0.3) {
  const deadline = Date.now() + maxSeconds * 1000;
  let waitedMs = 0;
  let told = false;
  for (;;) {
    const busy = busyProcesses();
    const load = await foreignLoad(sampleMs);
    if ((busy.length === 0 && load < maxLoad) || Date.now() > deadline) {
      return { waitedS: Math.round(waitedMs / 1000), busy, load };
    }
    if (!told)
      log(
        `waiting (up to ${Math.round((deadline - Date.now()) / 1000)} s) for the machine to calm down: other processes use ${load.toFixed(2)} cores${busy.length ? `; running:\n  ${busy.join('\n  ')}` : ''}`,
      );
    told = true;
    await sleep(5000);
    waitedMs += 5000 + sampleMs;
  }
}

function machine() {
  const model = /model name\s*:\s*(.*)/.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? cpus()[0]?.model ?? '?';
  let nofile = '?';
  try {
    nofile = execFileSync('sh', ['-c', 'ulimit -n'], { encoding: 'utf8' }).trim();
  } catch {
    /* ignore */
  }
  return { nproc: cpus().length, model, node: process.version, kernel: readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim(), nofile };
}

function build() {
  const r = spawnSync('npx', ['tsc', '-b'], { cwd: ROOT, encoding: 'utf8' });
  if (r.status !== 0) {
    if (!existsSync(BINS.edge) || !existsSync(BINS['all-in-one']) || !existsSync(BINS.publisher)) {
      throw new Error(`build failed and no dist to fall back on:\n${r.stdout}${r.stderr}`);
    }
    log(`warning: tsc -b failed, benchmarking the existing dist:\n${(r.stdout + r.stderr).slice(0, 2000)}`);
    return false;
  }
  return true;
}

/** One server, one N: start fresh, run the load generator, stop. */
async function scenario(server, n, opts) {
  const flags = opts.cpuProf
    ? ['--cpu-prof', '--cpu-prof-dir', opts.cpuProf, '--cpu-prof-name', `${server}-n${n}-${Date.now()}.cpuprofile`]
    : [];
  const s = await startServer(server, flags);
  const m0 = machineTicks();
  const t0 = Date.now();
  const ours0 = groupTicksNs([...s.serverPids, ...s.auxPids]);
  const cfg = {
    port: s.port,
    pubPort: s.pubPort,
    metricsPort: s.metricsPort,
    n,
    concurrency: 64,
    serverPids: s.serverPids,
    auxPids: s.auxPids,
    stallMs: 3000,
    phases: opts.phases,
    cold: opts.cold ?? false,
    connectTimeoutMs: 120_000,
  };
  let tracer;
  if (opts.strace) {
    // On the server's core (it is blocked in ptrace stops anyway); counts only, no per-call log.
    tracer = spawnPinned(
      SERVER_CORE,
      'strace',
      ['-c', '-f', '-o', join(opts.strace, `${server}-n${n}-${Date.now()}.txt`), '-p', String(s.serverPids[0])],
      { stdio: 'ignore' },
    );
    await sleep(500);
  }
  const lg = spawnPinned(CLIENT_CORE, process.execPath, [join(ROOT, 'bench', 'loadgen.mjs'), JSON.stringify(cfg)], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  let out = '';
  const line = await new Promise((resolveLine) => {
    const timer = setTimeout(() => resolveLine(JSON.stringify({ error: 'load generator timed out after 240 s' })), 240_000);
    lg.stdout.on('data', (d) => {
      out += d.toString();
      const nl = out.indexOf('\n');
      if (nl >= 0) {
        clearTimeout(timer);
        resolveLine(out.slice(0, nl));
      }
    });
    lg.on('exit', (code) => resolveLine(out || JSON.stringify({ error: `load generator exited with ${code}` })));
  });
  const ours = groupTicksNs([...s.serverPids, ...s.auxPids, lg.pid]) - ours0;
  const wallNs = (Date.now() - t0) * 1e6;
  const foreign = Math.max(0, ((machineTicks().busy - m0.busy) * 1e7 - ours) / wallNs);
  if (tracer) {
    tracer.kill('SIGINT');
    await new Promise((r) => tracer.on('exit', r));
  }
  await s.stop(); // server first: its side of the 10 000 sockets takes TIME_WAIT, not our ports
  lg.stdin.end();
  const t = setTimeout(() => lg.kill('SIGKILL'), 10_000);
  if (lg.exitCode === null) await new Promise((r) => lg.on('exit', r));
  clearTimeout(t);
  let result;
  try {
    result = JSON.parse(line);
    result.foreignCores = foreign;
  } catch {
    result = { error: `unparsable load generator output: ${line.slice(0, 200)}` };
  }
  return result;
}

function brief(server, n, r) {
  if (r.error) return `${server} N=${n}: ERROR ${r.error}`;
  const p = r.phases;
  return (
    `${server.padEnd(10)} N=${String(n).padEnd(5)} other load ${r.foreignCores?.toFixed(2)} cores  connect ${(r.connectMs / 1000).toFixed(1)}s  mem ${(r.memPerConn / 1024).toFixed(1)} KB/conn  ` +
    Object.keys(p)
      .map((ph) => `${ph} p99 ${p[ph].p99.toFixed(1)}ms ${p[ph].cpuUs.toFixed(2)}µs/del miss ${p[ph].missing}`)
      .join('  ')
  );
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const started = Date.now();
  const facts = machine();
  log(
    `machine: ${facts.nproc} × ${facts.model}, node ${facts.node}; servers on core ${SERVER_CORE}, load generator on core ${CLIENT_CORE}`,
  );
  const built = build();
  if (opts.clusterOnly) return clusterBench(opts);
  if (opts.cpuProf) mkdirSync(opts.cpuProf, { recursive: true });
  if (opts.strace) mkdirSync(opts.strace, { recursive: true });
  if (opts.phases || opts.strace || opts.cpuProf) opts.append = false; // diagnostic runs are not records
  const quiet = opts.wait ? await waitUntilQuiet(opts.waitMax) : { waitedS: 0, busy: busyProcesses() };
  const load0 = loadavg()[0];
  const busySeen = new Set(quiet.busy);

  const results = [];
  let waitBudgetS = opts.waitMax - quiet.waitedS;
  let waitedS = quiet.waitedS;
  for (let run = 1; run <= opts.runs; run++) {
    for (const n of opts.ns) {
      // Rotate the order each run so no server always goes first (or right after another).
      const order = opts.servers.map((_, i) => opts.servers[(i + run - 1) % opts.servers.length]);
      for (const server of order) {
        if (opts.wait && waitBudgetS > 0) {
          // Short per-scenario wait for a calmer moment (bounded by what is left of --wait-max).
          const w = await waitUntilQuiet(Math.min(60, waitBudgetS), 2000);
          waitBudgetS -= w.waitedS;
          waitedS += w.waitedS;
          for (const b of w.busy) busySeen.add(b);
        }
        for (const b of busyProcesses()) busySeen.add(b);
        let result;
        try {
          result = await scenario(server, n, opts);
        } catch (err) {
          result = { error: String(err.message ?? err).slice(0, 500) };
        }
        log(`run ${run}/${opts.runs} ${brief(server, n, result)}`);
        results.push({ run, server, n, result });
        await sleep(500);
      }
    }
  }
  const load1 = loadavg()[0];
  const elapsedS = Math.round((Date.now() - started) / 1000);
  if (opts.json) writeFileSync(opts.json, JSON.stringify({ facts, results }, null, 1));

  const rows = summarize(results);
  const errors = results.filter((r) => r.result.error).map((r) => `run ${r.run} ${r.server} N=${r.n}: ${r.result.error.split('\n')[0]}`);
  const date = new Date().toISOString().slice(0, 10);
  const args = process.argv.slice(2).join(' ');
  const foreignMax = Math.max(0, ...results.map((r) => r.result.foreignCores ?? 0));
  const foreignMed = results.map((r) => r.result.foreignCores ?? 0).sort((a, b) => a - b)[results.length >> 1] ?? 0;
  const loadNote = ` Other processes used ${foreignMed.toFixed(2)} cores during a scenario (median; max ${foreignMax.toFixed(2)})${waitedS ? `; the run waited ${waitedS} s in all for calmer moments (other processes below 0.3 cores over 5 s, or the time was up)` : ''}.`;
  const busyNote =
    busySeen.size > 0 || foreignMax > 0.5
      ? `**Machine busy**: other work was running during the run (${busySeen.size ? `${busySeen.size} compiler/load-test processes seen, e.g. \`${[...busySeen][0].slice(0, 80)}\`` : "other sessions' tests and browsers"}); numbers are noisier than usual.${loadNote}`
      : `No \`go build\`/compile/k6 processes seen during the run.${loadNote}`;
  const text = [
    `## ${date} — \`npm run bench${args ? ` -- ${args}` : ''}\``,
    '',
    `${facts.nproc} × ${facts.model}, Linux ${facts.kernel}, Node ${facts.node}, nofile ${facts.nofile}. Servers pinned to core ${SERVER_CORE}, load generator (and, for edge-redis${opts.servers.includes('floor-chain') ? ' and floor-chain' : ''}, publisher + redis-server) to core ${CLIENT_CORE}. ` +
      `${opts.runs} run(s) of N = ${opts.ns.join(', ')}; medians over runs, ratios are medians of the per-run ratio to the naive server of the same run; missing/dup/reord are totals over runs. ` +
      (opts.cold
        ? 'Cold: fresh processes, 5 warm-up messages. '
        : 'Steady state: 5 + 3000 unreported warm-up messages (round-robin over the channels at 1000/s) before the phases. ') +
      `Load average ${load0.toFixed(2)} → ${load1.toFixed(2)}; ${elapsedS} s in all.${built ? '' : ' (tsc -b failed: existing dist measured.)'}`,
    '',
    busyNote,
    '',
    resultTable(rows),
    '',
    `CPU: the process holding the subscribers (edge-redis${opts.servers.includes('floor-chain') ? ', floor-chain' : ''}: the edge alone; publisher + redis-server in their own column). ` +
      'writes/delivery: from `cyclone_sse_edge_writes_total` (naive: one `res.write` per delivery; floor-chain: one per delivery by construction). Memory: (RSS with N connected − RSS idle) ÷ N.',
    '',
    `Targets (medians of the per-run ratios to naive):`,
    '',
    targetLines(rows),
    ...(errors.length ? ['', `Errors: ${errors.join('; ')}`] : []),
    '',
  ].join('\n');
  process.stdout.write(`\n${text}\n`);
  if (opts.append) {
    if (!existsSync(DOC)) throw new Error(`${DOC} is missing`);
    appendFileSync(DOC, `\n${text}`);
    log(`appended to ${DOC}`);
  }
  if (opts.cluster && !opts.phases && !opts.strace && !opts.cpuProf) clusterBench(opts);
}

/** bench/redis-cluster.mjs in its own process (it starts its own Redis Cluster and edges). */
function clusterBench(opts) {
  const args = [join(ROOT, 'bench', 'redis-cluster.mjs')];
  if (opts.quick) args.push('--quick');
  if (opts.append) args.push('--append');
  const r = spawnSync(process.execPath, args, { cwd: ROOT, stdio: 'inherit' });
  if (r.status !== 0) throw new Error(`bench/redis-cluster.mjs failed (${r.status ?? r.signal})`);
}

main().catch((err) => {
  log(String(err.stack ?? err));
  process.exit(1);
});
