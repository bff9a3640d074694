/**
 * Medians over runs, ratios to the naive baseline of the same run, and the markdown tables of
 * `npm run bench`.
 */

export const PHASES = ['fanout', 'channels', 'burst', 'burst-separate'];

export function median(values) {
  const v = values.filter((x) => typeof x === 'number' && Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

/** Servers whose edge is fed by a separate publisher through Redis: their publisher + Redis CPU is reported too. */
const CHAINED = new Set(['edge-redis', 'edge-cluster', 'floor-chain']);

const sum = (values) => values.reduce((a, b) => a + (Number.isFinite(b) ? b : 0), 0);

/**
 * results: [{ run, server, n, result }] (result = the load generator's JSON).
 * Returns rows keyed by `${n}|${server}` with medians, and per-run ratios to naive (medians).
 */
export function summarize(results) {
  const groups = new Map();
  for (const r of results) {
    if (!r.result || r.result.error) continue;
    const key = `${r.n}|${r.server}`;
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push(r);
  }
  const naiveOf = (run, n) =>
    results.find((x) => x.run === run && x.n === n && x.server === 'naive' && x.result && !x.result.error)?.result;
  const rows = [];
  for (const [key, list] of groups) {
    const [n, server] = key.split('|');
    const row = { n: Number(n), server, runs: list.length, phases: {} };
    const ratio = (get) =>
      median(
        list.map((x) => {
          const base = naiveOf(x.run, x.n);
          return base ? get(x.result) / get(base) : NaN;
        }),
      );
    row.memPerConn = median(list.map((x) => x.result.memPerConn));
    row.memRatio = ratio((r) => r.memPerConn);
    row.connectMs = median(list.map((x) => x.result.connectMs));
    row.failed = sum(list.map((x) => x.result.failedSubscribers + x.result.closedDuringRun + x.result.publishErrors));
    for (const ph of PHASES) {
      if (!list.some((x) => x.result.phases[ph])) continue;
      const get = (f) => list.map((x) => x.result.phases[ph]?.[f]);
      row.phases[ph] = {
        p50: median(get('p50')),
        p99: median(get('p99')),
        max: median(get('max')),
        rate: median(get('rate')),
        cpuUs: median(get('cpuUs')),
        auxCpuUs: median(get('auxCpuUs')),
        writesPerDelivery: median(get('writesPerDelivery')),
        missing: sum(get('missing')),
        duplicated: sum(get('duplicated')),
        reordered: sum(get('reordered')),
        unexpected: sum(get('unexpected')),
        p99Ratio: ratio((r) => r.phases[ph].p99),
        cpuRatio: ratio((r) => r.phases[ph].cpuUs),
      };
    }
    rows.push(row);
  }
  const order = ['naive', 'edge-redis', 'edge-cluster', 'all-in-one', 'floor-chain'];
  rows.sort((a, b) => a.n - b.n || order.indexOf(a.server) - order.indexOf(b.server));
  return rows;
}

const f = (x, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : '–');
const fr = (x) => (Number.isFinite(x) ? `${x.toFixed(2)}×` : '–');
const fk = (x) =>
  Number.isFinite(x) ? (x >= 1e6 ? `${(x / 1e6).toFixed(2)}M` : x >= 1e3 ? `${(x / 1e3).toFixed(0)}k` : x.toFixed(0)) : '–';

function table(header, lines) {
  return [`| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`, ...lines.map((l) => `| ${l.join(' | ')} |`)].join('\n');
}

/** One table: a row per (N, server, phase); memory on the first row of each (N, server). */
export function resultTable(rows) {
  const lines = [];
  for (const r of rows) {
    let first = true;
    for (const ph of PHASES) {
      const p = r.phases[ph];
      if (!p) continue;
      const naive = r.server === 'naive';
      lines.push([
        String(r.n),
        r.server,
        ph,
        f(p.p50),
        f(p.p99),
        f(p.max),
        naive ? '1' : fr(p.p99Ratio),
        fk(p.rate),
        `${p.missing}/${p.duplicated}/${p.reordered}${p.unexpected ? ` (+${p.unexpected} unexpected)` : ''}`,
        f(p.cpuUs, 2),
        naive ? '1' : fr(p.cpuRatio),
        naive ? '1' : f(p.writesPerDelivery, 2),
        CHAINED.has(r.server) ? f(p.auxCpuUs, 1) : '',
        first ? f(r.memPerConn / 1024, 2) : '',
        first ? (naive ? '1' : fr(r.memRatio)) : '',
      ]);
      first = false;
    }
  }
  return table(
    [
      'N',
      'server',
      'phase',
      'p50 ms',
      'p99 ms',
      'max ms',
      'p99 ×naive',
      'deliveries/s',
      'missing/dup/reord',
      'CPU µs/delivery',
      'CPU ×naive',
      'writes/delivery',
      'publisher+redis µs/delivery',
      'KB/conn',
      'memory ×naive',
    ],
    lines,
  );
}

/**
 * The targets at the largest N, for each cyclone server, as markdown list lines. For floor-chain
 * (not a cyclone server) only the whole path: the least the architecture can cost.
 */
export function targetLines(rows) {
  const nMax = Math.max(...rows.map((r) => r.n));
  const none = { cpuRatio: NaN, p99Ratio: NaN, missing: 0, duplicated: 0, reordered: 0, unexpected: 0 };
  const out = [];
  for (const r0 of rows.filter((x) => x.n === nMax && x.server !== 'naive')) {
    const r = { ...r0, phases: Object.fromEntries(PHASES.map((ph) => [ph, r0.phases[ph] ?? none])) };
    const bad = PHASES.reduce(
      (a, ph) => a + r.phases[ph].missing + r.phases[ph].duplicated + r.phases[ph].reordered + r.phases[ph].unexpected,
      0,
    );
    const wholePath = () => {
      // The whole path of a message (issue 15): edge + publisher + Redis per delivery, channels phase.
      const naive = rows.find((x) => x.n === nMax && x.server === 'naive')?.phases.channels?.cpuUs;
      const path = (r.phases.channels.cpuUs ?? NaN) + (r.phases.channels.auxCpuUs ?? NaN);
      return ['channels whole path (edge + publisher + Redis) CPU', path / (naive ?? NaN), 0.7];
    };
    if (r.server === 'floor-chain') {
      const [name, v, goal] = wholePath();
      out.push(
        `- N = ${nMax}, floor-chain (the floor of the architecture, not a target): ${name} ${fr(v)} (the goal is ≤ ${goal.toFixed(2)}×); missing+dup+reord ${bad}`,
      );
      continue;
    }
    const checks = [
      ['burst CPU', r.phases.burst.cpuRatio, 0.4],
      ['burst-separate CPU', r.phases['burst-separate'].cpuRatio, 0.15],
      ['fanout CPU', r.phases.fanout.cpuRatio, 0.7],
      ['memory', r.memRatio, 0.25],
      ['fanout p99', r.phases.fanout.p99Ratio, 0.8],
    ];
    if (r.server === 'edge-redis' || r.server === 'edge-cluster') checks.push(wholePath());
    const parts = checks.map(([name, v, goal]) => `${name} ${fr(v)} (≤ ${goal.toFixed(2)}×: ${v <= goal ? 'met' : '**missed**'})`);
    parts.push(`missing+dup+reord ${bad} (${bad === 0 ? 'met' : '**missed**'})`);
    out.push(`- N = ${nMax}, ${r.server}: ${parts.join('; ')}`);
  }
  return out.join('\n');
}
