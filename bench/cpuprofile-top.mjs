#!/usr/bin/env node
/**
 * Self and total time per function of a V8 .cpuprofile (from `npm run bench -- --cpu-prof <dir>`).
 *   node bench/cpuprofile-top.mjs <file.cpuprofile> [limit]
 */
import { readFileSync } from 'node:fs';

const [file, limitArg] = process.argv.slice(2);
const prof = JSON.parse(readFileSync(file, 'utf8'));
const limit = Number(limitArg ?? 25);
const byId = new Map(prof.nodes.map((n) => [n.id, n]));
const parent = new Map();
for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
const self = new Map();
// timeDeltas[i] is the time before sample i; attribute it to sample i's node.
prof.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (prof.timeDeltas[i] ?? 0)));
const label = (n) => {
  const f = n.callFrame;
  const where = f.url ? `${f.url.replace(/^.*\/(packages|bench|node_modules)\//, '$1/')}:${f.lineNumber + 1}` : '';
  return `${f.functionName || '(anonymous)'} ${where}`.trim();
};
const selfBy = new Map();
const totalBy = new Map();
let all = 0;
for (const [id, t] of self) {
  all += t;
  const n = byId.get(id);
  selfBy.set(label(n), (selfBy.get(label(n)) ?? 0) + t);
  const seen = new Set();
  for (let cur = id; cur !== undefined; cur = parent.get(cur)) {
    const l = label(byId.get(cur));
    if (seen.has(l)) continue;
    seen.add(l);
    totalBy.set(l, (totalBy.get(l) ?? 0) + t);
  }
}
const pct = (t) => `${((100 * t) / all).toFixed(1).padStart(5)}%`;
console.log(`total sampled ${(all / 1000).toFixed(0)} ms`);
console.log('-- self --');
for (const [l, t] of [...selfBy].sort((a, b) => b[1] - a[1]).slice(0, limit)) console.log(pct(t), l);
console.log('-- total (inclusive) --');
for (const [l, t] of [...totalBy].sort((a, b) => b[1] - a[1]).slice(0, limit)) console.log(pct(t), l);
