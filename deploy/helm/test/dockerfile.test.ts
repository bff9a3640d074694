// Checks the Dockerfile without a Docker engine: its instructions are parsed, the runtime stage's
// COPY and install steps are replayed in a temporary directory (npm ci --omit=dev from the npm
// cache, the uWebSockets.js binary pruning, the built dist folders), and the image's default
// command is started from that tree and must serve an event stream.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { V8_FLAGS_BY_COMPONENT, uwsBuild } from '@cyclone-sse/common';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const text = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');

interface Instruction {
  op: string;
  args: string;
}
interface Stage {
  name: string;
  from: string;
  steps: Instruction[];
}

/** Dockerfile instructions with continuation lines joined and comments dropped. */
function instructions(source: string): Instruction[] {
  const out: Instruction[] = [];
  let cur = '';
  for (const raw of source.split('\n')) {
    const line = raw.trimEnd();
    if (!cur && (line.trim() === '' || line.trim().startsWith('#'))) continue;
    if (cur && line.trim().startsWith('#')) continue;
    if (line.endsWith('\\')) {
      cur += line.slice(0, -1) + ' ';
      continue;
    }
    cur += line;
    const m = /^\s*(\w+)\s+([\s\S]*)$/.exec(cur);
    assert.ok(m, `cannot parse Dockerfile line: ${cur}`);
    const [, op = '', rest = ''] = m;
    out.push({ op: op.toUpperCase(), args: rest.replace(/\s+/g, ' ').trim() });
    cur = '';
  }
  return out;
}

const all = instructions(text);
const args = Object.fromEntries(
  all.filter((i) => i.op === 'ARG' && i.args.includes('=')).map((i) => i.args.split('=', 2) as [string, string]),
);
const stages: Stage[] = [];
for (const i of all) {
  if (i.op === 'FROM') {
    const m = /^(\S+)(?: AS (\S+))?$/i.exec(i.args);
    assert.ok(m, `FROM ${i.args}`);
    const [, image = '', name = String(stages.length)] = m;
    const from = image.replace(/\$\{(\w+)\}/g, (_, k: string) => args[k] ?? '');
    stages.push({ name, from, steps: [] });
  } else if (stages.length > 0) stages.at(-1)!.steps.push(i);
}
const stage = (name: string) => {
  const s = stages.find((x) => x.name === name);
  assert.ok(s, `no stage ${name}`);
  return s;
};
const runtime = stages.at(-1)!;

interface Copy {
  from?: string;
  sources: string[];
  dest: string;
}
function parseCopy(argsText: string): Copy {
  const tokens = argsText.split(' ');
  const flags = tokens.filter((t) => t.startsWith('--'));
  const rest = tokens.filter((t) => !t.startsWith('--'));
  const from = flags.find((f) => f.startsWith('--from='))?.slice('--from='.length);
  return { from, sources: rest.slice(0, -1), dest: rest.at(-1)! };
}

const rootManifest = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
const workspaces: string[] = rootManifest.workspaces;

// ---- static checks ----------------------------------------------------------------------------

test('Dockerfile: two stages on node:24-trixie-slim, build runs npm ci + npm run build', () => {
  assert.equal(stages.length, 2);
  const build = stage('build');
  assert.equal(build.from, 'node:24-trixie-slim');
  assert.equal(runtime.from, 'node:24-trixie-slim');
  const runs = build.steps.filter((s) => s.op === 'RUN').map((s) => s.args);
  assert.ok(
    runs.some((r) => /^npm ci\b/.test(r)),
    'build stage: npm ci',
  );
  assert.ok(
    runs.some((r) => r === 'npm run build'),
    'build stage: npm run build',
  );
  // npm ci before the sources arrive must not run the root prepare script (tsc -b)
  assert.ok(runs.find((r) => /^npm ci\b/.test(r))!.includes('--ignore-scripts'));
});

test('Dockerfile: runtime stage is non-root 10001, tini PID 1, all-in-one CMD, ports 8888 9090', () => {
  const steps = runtime.steps;
  const get = (op: string) => steps.filter((s) => s.op === op).map((s) => s.args);
  const first = (op: string) => get(op)[0] ?? assert.fail(`no ${op} in the runtime stage`);
  assert.ok(
    get('RUN').some((r) => /apt-get install\b.*\btini\b/.test(r)),
    'tini installed with apt',
  );
  assert.deepEqual(JSON.parse(first('ENTRYPOINT')), ['/usr/bin/tini', '--']);
  assert.deepEqual(get('USER'), ['10001:10001']);
  assert.ok(get('RUN').some((r) => /useradd\b.*--uid 10001\b/.test(r)));
  assert.deepEqual(first('EXPOSE').split(' ').sort(), ['8888', '9090']);
  assert.deepEqual(get('WORKDIR'), ['/app']);
  const cmd: string[] = JSON.parse(first('CMD'));
  // the all-in-one's V8 flags on the command line (no NODE_OPTIONS: the flags differ per component)
  const flags = V8_FLAGS_BY_COMPONENT['all-in-one'];
  assert.deepEqual(cmd.slice(0, 2 + flags.length), ['node', ...flags, 'packages/all-in-one/bin/cyclone-sse.js']);
  const allInOneManifest = JSON.parse(readFileSync(join(ROOT, 'packages/all-in-one/package.json'), 'utf8'));
  assert.equal(`packages/all-in-one/${allInOneManifest.bin['cyclone-sse']}`, cmd[1 + flags.length], 'CMD is the cyclone-sse bin');
  assert.ok(!get('ENV').some((e) => /NODE_OPTIONS/.test(e)), 'one NODE_OPTIONS would give every component the same flags');
  const ci = get('RUN').find((r) => /^npm ci\b/.test(r));
  assert.ok(ci, 'runtime stage: npm ci');
  assert.ok(ci.includes('--omit=dev'));
  assert.ok(ci.includes('--ignore-scripts'), 'typescript is absent: the prepare script must not run');
  // USER comes after every RUN that needs root
  const userAt = steps.findIndex((s) => s.op === 'USER');
  assert.ok(steps.slice(userAt).every((s) => s.op !== 'RUN'));
});

test('Dockerfile: every workspace manifest is copied into both stages (npm ci checks the lockfile)', () => {
  for (const s of stages) {
    const copied = s.steps
      .filter((x) => x.op === 'COPY' && !x.args.startsWith('--from'))
      .flatMap((x) => {
        const c = parseCopy(x.args);
        return c.sources.map((src) => (c.dest.endsWith('/') ? join(c.dest, basename(src)) : c.dest));
      });
    for (const f of ['package.json', 'package-lock.json']) assert.ok(copied.includes(f), `${s.name}: ${f}`);
    for (const w of workspaces) assert.ok(copied.includes(`${w}/package.json`), `${s.name}: ${w}/package.json`);
  }
});

/** Workspace directories whose files the shipped binaries (edge, publisher, all-in-one) load: dependencies and '@cyclone-sse/x' references in sources. */
function shippedWorkspaces(): Set<string> {
  const byName = new Map(workspaces.map((w) => [JSON.parse(readFileSync(join(ROOT, w, 'package.json'), 'utf8')).name as string, w]));
  const need = new Set<string>();
  const sources = (dir: string): string[] =>
    readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
      e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [readFileSync(join(dir, e.name), 'utf8')] : [],
    );
  const visit = (dir: string) => {
    if (need.has(dir)) return;
    need.add(dir);
    const m = JSON.parse(readFileSync(join(ROOT, dir, 'package.json'), 'utf8'));
    const names = new Set(Object.keys(m.dependencies ?? {}));
    if (existsSync(join(ROOT, dir, 'src'))) {
      for (const text of sources(join(ROOT, dir, 'src')))
        for (const [, name = ''] of text.matchAll(/'(@cyclone-sse\/[a-z0-9-]+)/g)) names.add(name);
    }
    for (const n of names) {
      const ws = byName.get(n);
      if (ws) visit(ws);
    }
  };
  visit('packages/edge');
  visit('packages/publisher');
  visit('packages/all-in-one');
  return need;
}

test('Dockerfile: runtime installs and copies every workspace the edge, publisher and all-in-one load', () => {
  const need = shippedWorkspaces();
  assert.ok(need.has('packages/common'));
  const fromBuild = runtime.steps.filter((s) => s.op === 'COPY' && s.args.startsWith('--from=build')).map((s) => parseCopy(s.args));
  const ci = runtime.steps.find((s) => s.op === 'RUN' && /^npm ci\b/.test(s.args))!.args;
  for (const dir of need) {
    assert.ok(ci.includes(`-w ${dir}`), `runtime npm ci lacks -w ${dir}`);
    // what the package ships ("files"), else its dist
    const m = JSON.parse(readFileSync(join(ROOT, dir, 'package.json'), 'utf8'));
    for (const f of (m.files as string[] | undefined) ?? ['dist']) {
      assert.ok(
        fromBuild.some((c) => c.sources.includes(`/src/${dir}/${f}`) && c.dest === `${dir}/${f}`),
        `runtime stage lacks COPY --from=build /src/${dir}/${f} ${dir}/${f}`,
      );
    }
  }
});

test('Dockerfile: COPY sources exist and .dockerignore keeps them in the build context', () => {
  const ignore = readFileSync(join(ROOT, '.dockerignore'), 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#') && !l.startsWith('!'));
  const toRegex = (p: string) =>
    new RegExp(
      '^' +
        p
          .replace(/[.+^${}()|[\]]/g, '\\$&')
          .replace(/\*\*\//g, '\0')
          .replace(/\*/g, '[^/]*')
          .replace(/\0/g, '(.*/)?') +
        '(/.*)?$',
    );
  for (const s of stages) {
    for (const step of s.steps.filter((x) => x.op === 'COPY' && !x.args.startsWith('--from'))) {
      for (const src of parseCopy(step.args).sources) {
        assert.ok(existsSync(join(ROOT, src)), `COPY source ${src} missing`);
        const hit = ignore.find((p) => toRegex(p).test(src));
        assert.equal(hit, undefined, `.dockerignore pattern ${hit} excludes COPY source ${src}`);
      }
    }
  }
  for (const p of ['**/node_modules', '**/dist', '.git']) assert.ok(ignore.includes(p), `.dockerignore: ${p}`);
});

// ---- replay the runtime stage -----------------------------------------------------------------

/** RUN segments (split on &&) replayed on this machine; the rest must be known-safe to skip. */
const REPLAY = [/^npm ci\b/, /^keep=/, /^test -f /, /^find "\$PWD\/node_modules" /];
const SKIP = [/^apt-get /, /^rm -rf \/var\/lib\/apt\/lists/, /^npm cache clean\b/, /^groupadd /, /^useradd /];

test('runtime stage replayed in a temp dir serves text/event-stream from the default CMD', { timeout: 110_000 }, async () => {
  for (const w of shippedWorkspaces()) {
    assert.ok(existsSync(join(ROOT, w, 'dist')), `${w}/dist missing: run npm run build first`);
  }
  const app = mkdtempSync(join(tmpdir(), 'cyclone-sse-image-'));
  const env: NodeJS.ProcessEnv = { ...process.env };
  let cmd: string[] = [];
  try {
    const target = (dest: string) => {
      if (dest.startsWith('/')) {
        assert.ok(dest === '/app' || dest.startsWith('/app/'), `COPY outside /app: ${dest}`);
        return join(app, dest.slice('/app'.length));
      }
      return join(app, dest);
    };
    for (const step of runtime.steps) {
      if (step.op === 'COPY') {
        const c = parseCopy(step.args);
        assert.ok(c.from === undefined || c.from === 'build', `COPY --from=${c.from}`);
        for (const src of c.sources) {
          const from = c.from === 'build' ? join(ROOT, src.replace(/^\/src\//, '')) : join(ROOT, src);
          const to = c.dest.endsWith('/') ? join(target(c.dest), basename(src)) : target(c.dest);
          mkdirSync(dirname(to), { recursive: true });
          cpSync(from, to, { recursive: true, dereference: false });
        }
      } else if (step.op === 'RUN') {
        // one shell per RUN (variables carry across its && segments), skipped segments removed
        const segments: string[] = [];
        for (const raw of step.args.split('&&').map((x) => x.trim())) {
          if (SKIP.some((r) => r.test(raw))) continue;
          assert.ok(
            REPLAY.some((r) => r.test(raw)),
            `unknown RUN step, teach dockerfile.test.ts: ${raw}`,
          );
          // quick: use the local npm cache; the registry only for what is missing
          segments.push(/^npm ci\b/.test(raw) ? `${raw} --prefer-offline --loglevel=error` : raw);
        }
        if (segments.length === 0) continue;
        const script = segments.join(' && ');
        const r = spawnSync('bash', ['-ec', script], { cwd: app, env, encoding: 'utf8', timeout: 90_000 });
        assert.equal(r.status, 0, `${script}\n${r.stdout}\n${r.stderr}`);
      } else if (step.op === 'ENV') {
        for (const [, name = '', value = ''] of step.args.matchAll(/(\w+)=(\S+)/g)) env[name] = value;
      } else if (step.op === 'CMD') {
        cmd = JSON.parse(step.args);
      }
    }

    // production tree only: no dev tooling, no test kit, one uWS binary
    const modules = readdirSync(join(app, 'node_modules'));
    for (const dev of ['typescript', 'tsx', 'playwright-core', 'yaml', 'kubernetes-models']) {
      assert.ok(!modules.includes(dev), `${dev} installed in the runtime tree`);
    }
    // exactly one uWebSockets.js binary left: the one the loader picks on this machine
    const uws = (dir: string): string[] =>
      readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
        e.isDirectory() ? uws(join(dir, e.name)) : /^uws_.*\.node$/.test(e.name) ? [join(dir, e.name)] : [],
      );
    const left = [...uws(join(app, 'node_modules')), ...uws(join(app, 'packages'))];
    assert.equal(left.length, 1, left.join('\n'));
    assert.equal(left[0], uwsBuild()?.binary.replace(ROOT, app.endsWith('/') ? app : `${app}/`));
    assert.ok(statSync(join(app, 'node_modules/@cyclone-sse/edge')).isDirectory());

    // the other two binaries at least load their dependencies
    for (const bin of ['packages/edge/bin/cyclone-sse-edge.js', 'packages/publisher/bin/cyclone-sse-publisher.js']) {
      const r = spawnSync(process.execPath, [bin, '--help'], { cwd: app, env, encoding: 'utf8', timeout: 20_000 });
      assert.equal(r.status, 0, `${bin} --help: ${r.stderr}`);
    }

    // the image's default command (all-in-one), on a free port
    assert.equal(cmd[0], 'node');
    const proc = spawn(process.execPath, [...cmd.slice(1), '--port', '0', '--metrics-port', '-1', '--drain-seconds', '1'], {
      cwd: app,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    proc.stderr.on('data', (d) => (stderr += d));
    const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
    try {
      const port = await new Promise<number>((resolve, reject) => {
        let out = '';
        proc.stdout.on('data', (d) => {
          out += d;
          const m = /running on http:\/\/127\.0\.0\.1:(\d+)/.exec(out);
          if (m) resolve(Number(m[1]));
        });
        void exited.then((code) => reject(new Error(`exited ${code}: ${stderr}`)));
        setTimeout(() => reject(new Error(`no listening line: ${out}\n${stderr}`)), 20_000).unref();
      });
      const ac = new AbortController();
      const res = await fetch(`http://127.0.0.1:${port}/?channels=x`, { signal: ac.signal });
      assert.equal(res.status, 200);
      assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/);
      const reader = res.body!.getReader();
      const pub = await fetch(`http://127.0.0.1:${port}/publish`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ channel: 'x', data: 'from the image tree' }),
      });
      assert.equal(pub.status, 200);
      let got = '';
      const deadline = Date.now() + 10_000;
      while (!got.includes('data: from the image tree') && Date.now() < deadline) {
        const { value, done } = await reader.read();
        if (done) break;
        got += Buffer.from(value).toString();
      }
      assert.ok(got.includes('data: from the image tree'), got);
      ac.abort();
      // the browser client and the demo page come from the client workspace in the tree
      if (shippedWorkspaces().has('packages/client')) {
        const js = await fetch(`http://127.0.0.1:${port}/client.js`);
        assert.equal(js.status, 200);
        assert.match(js.headers.get('content-type') ?? '', /javascript/);
        await js.arrayBuffer();
        const demo = await fetch(`http://127.0.0.1:${port}/demo`);
        assert.equal(demo.status, 200);
        await demo.arrayBuffer();
      }
    } finally {
      proc.kill('SIGTERM');
    }
    assert.equal(await exited, 0, `SIGTERM drain should exit 0: ${stderr}`);
  } finally {
    rmSync(app, { recursive: true, force: true });
  }
});
