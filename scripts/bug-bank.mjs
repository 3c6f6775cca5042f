#!/usr/bin/env node
/**
 * The bug bank (npm run bugbank; outside CI): realistic one-line bugs from scripts/bug-bank.json, each
 * applied alone to a PRIVATE copy of the compiled tree (never to ./src or ./dist), then the entry's test
 * files run one by one (niced) until one fails. A bug is caught when a listed file fails with it and
 * passes without it (the clean run is made only for files that failed, and cached for the run).
 *
 *   npm run bugbank                       # every entry (build first: tsc)
 *   npm run bugbank -- --only id1,id2     # some entries (ids or regexes)
 *   npm run bugbank -- --check            # only check that each `find` occurs exactly once
 * Options: --dir /tmp/bugbank (the private copy), --timeout 900 (seconds per test file),
 * --report reports/bug-bank.md (also writes reports/bug-bank.json with the raw results; with --only
 * the results are merged into the existing JSON, so a rerun of some entries updates the table).
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : dflt;
};
const DIR = path.resolve(opt('dir', process.env.BUGBANK_DIR ?? '/tmp/bugbank'));
const TIMEOUT_S = Number(opt('timeout', '900'));
const REPORT = path.resolve(ROOT, opt('report', 'reports/bug-bank.md'));
const RAW = REPORT.replace(/\.md$/, '.json');
const onlyArg = opt('only');
const checkOnly = args.includes('--check');

const bank = JSON.parse(fs.readFileSync(path.join(ROOT, 'scripts/bug-bank.json'), 'utf8'));
const only = onlyArg ? onlyArg.split(',').map((s) => new RegExp(`^(?:${s})$`)) : undefined;
const bugs = bank.bugs.filter((b) => !only || only.some((r) => r.test(b.id)));
if (bugs.length === 0) throw new Error(`no entry matches --only ${onlyArg}`);

const jsOf = (ts) => ts.replace(/\.ts$/, '.js');
const count = (hay, needle) => hay.split(needle).length - 1;

// 1. The private copy: dist/ copied once (mutated files restored after each bug), the rest linked.
if (!fs.existsSync(path.join(ROOT, 'dist/src/index.js'))) throw new Error('dist/ is not built: run tsc -p tsconfig.json first');
if (path.resolve(DIR) === ROOT || ROOT.startsWith(DIR + path.sep)) throw new Error(`--dir ${DIR} must not contain the project`);
fs.rmSync(DIR, { recursive: true, force: true });
fs.mkdirSync(path.join(DIR, 'test'), { recursive: true });
fs.cpSync(path.join(ROOT, 'dist'), path.join(DIR, 'dist'), { recursive: true });
fs.copyFileSync(path.join(ROOT, 'package.json'), path.join(DIR, 'package.json'));
fs.mkdirSync(path.join(DIR, 'test-output'), { recursive: true });
// Everything else the tests read (assets/ for the bundled tokenizer, fixtures, sources) is linked, read only.
const SKIP = new Set(['dist', 'package.json', 'test', 'test-output', '.git', '.stryker-tmp', 'reports']);
for (const name of fs.readdirSync(ROOT)) if (!SKIP.has(name)) fs.symlinkSync(path.join(ROOT, name), path.join(DIR, name));
for (const name of fs.readdirSync(path.join(ROOT, 'test'))) fs.symlinkSync(path.join(ROOT, 'test', name), path.join(DIR, 'test', name));

// 2. Validate every entry against the compiled file (`find` exactly once).
const entries = bugs.map((b) => {
  const target = path.join(DIR, 'dist', jsOf(b.file));
  if (!fs.existsSync(target)) return { ...b, invalid: `dist/${jsOf(b.file)} does not exist` };
  const n = count(fs.readFileSync(target, 'utf8'), b.find);
  if (n !== 1) return { ...b, invalid: `find occurs ${n} times in dist/${jsOf(b.file)}` };
  const missing = b.tests.filter((t) => !fs.existsSync(path.join(DIR, 'dist', jsOf(t))));
  if (missing.length) return { ...b, invalid: `test file(s) not built: ${missing.join(', ')}` };
  return { ...b, target };
});
for (const e of entries) if (e.invalid) console.log(`INVALID ${e.id}: ${e.invalid}`);
if (checkOnly) {
  console.log(`${entries.filter((e) => !e.invalid).length} of ${entries.length} entries valid`);
  process.exit(entries.some((e) => e.invalid) ? 1 : 0);
}

/** One test file, niced, one test at a time; resolves to { ok, seconds, tail }. */
function runTest(testTs, env) {
  const file = path.join('dist', jsOf(testTs));
  const t0 = Date.now();
  return new Promise((resolve) => {
    const child = spawn('nice', ['-n', '19', process.execPath, '--test', '--test-concurrency=1', file], {
      cwd: DIR, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'], detached: true,
    });
    let out = '';
    const keep = (d) => { out = (out + d).slice(-4000); };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    let timedOut = false;
    const timer = setTimeout(() => { timedOut = true; try { process.kill(-child.pid, 'SIGKILL'); } catch { /* gone */ } }, TIMEOUT_S * 1000);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ ok: code === 0 && !timedOut, timedOut, seconds: (Date.now() - t0) / 1000, tail: out });
    });
  });
}

const firstFailure = (tail) => (tail.match(/^not ok .*$|^\s*(?:error|AssertionError)[^\n]*$/m)?.[0] ?? '').trim().slice(0, 160);

// 3. Each bug alone: apply, run its tests in order until one fails, restore.
const clean = new Map(); // `${test} ${env}` -> Promise<result> of the unmutated run
const results = [];
for (const e of entries) {
  if (e.invalid) { results.push({ id: e.id, area: e.area, file: e.file, status: 'invalid', detail: e.invalid }); continue; }
  const original = fs.readFileSync(e.target, 'utf8');
  const env = e.env ?? {};
  const tried = [];
  let status = 'MISSED', by, detail = '';
  try {
    fs.writeFileSync(e.target, original.replace(e.find, () => e.replace));
    for (const t of e.tests) {
      const r = await runTest(t, env);
      tried.push({ test: t, ok: r.ok, seconds: Math.round(r.seconds) });
      if (r.ok) continue;
      // Failed with the bug: does it pass without it? (restore, check, re-apply)
      fs.writeFileSync(e.target, original);
      const key = `${t} ${JSON.stringify(env)}`;
      if (!clean.has(key)) clean.set(key, runTest(t, env));
      const c = await clean.get(key);
      fs.writeFileSync(e.target, original.replace(e.find, () => e.replace));
      if (!c.ok) { detail += `${t} fails without the bug too (${firstFailure(c.tail)}); `; continue; }
      status = r.timedOut ? 'caught (timeout)' : 'caught';
      by = t;
      detail += firstFailure(r.tail);
      break;
    }
  } finally {
    fs.writeFileSync(e.target, original);
  }
  const row = { id: e.id, area: e.area, file: e.file, status, by, detail, tried, why: e.why };
  results.push(row);
  console.log(`${status.padEnd(16)} ${e.id.padEnd(40)} ${by ?? ''} ${tried.map((x) => `${path.basename(x.test)}:${x.ok ? 'pass' : 'FAIL'}/${x.seconds}s`).join(' ')}`);
  writeReport(); // after each entry, so an interrupted run keeps what it measured
}
const { caught, valid, rate } = writeReport();
console.log(`\n${fs.readFileSync(REPORT, 'utf8')}`);
console.log(`\n${caught} of ${valid} caught (${rate.toFixed(1)}%); report: ${path.relative(ROOT, REPORT)}`);

// 4. Merge with earlier results (--only reruns) and write the report.
function writeReport() {
  let all = results;
  if (only && fs.existsSync(RAW)) {
    const prev = JSON.parse(fs.readFileSync(RAW, 'utf8')).results ?? [];
    const ids = new Set(results.map((r) => r.id));
    const order = bank.bugs.map((b) => b.id);
    all = [...prev.filter((r) => !ids.has(r.id) && order.includes(r.id)), ...results].sort((a, b) => order.indexOf(a.id) - order.indexOf(b.id));
  }
  const valid = all.filter((r) => r.status !== 'invalid');
  const caught = valid.filter((r) => r.status.startsWith('caught')).length;
  const rate = valid.length ? (100 * caught) / valid.length : 0;
  fs.mkdirSync(path.dirname(REPORT), { recursive: true });
  fs.writeFileSync(RAW, JSON.stringify({ date: new Date().toISOString(), caught, valid: valid.length, rate, results: all }, null, 1));
  const sets = [...new Set(bank.bugs.map((b) => b.set ?? 'main'))].map((set) => {
    const v = valid.filter((r) => (bank.bugs.find((b) => b.id === r.id)?.set ?? 'main') === set);
    const c = v.filter((r) => r.status.startsWith('caught')).length;
    return `set ${set}: ${c} of ${v.length} caught`;
  });
  const md = [
    '# Bug bank (scripts/bug-bank.json, `npm run bugbank`)', '',
    `${new Date().toISOString()}: **${caught} of ${valid.length} caught (${rate.toFixed(1)}%)**` +
      (all.length > valid.length ? `, ${all.length - valid.length} invalid entries` : '') +
      (all.length < bank.bugs.length ? ` (${bank.bugs.length - all.length} entries not run yet)` : '') + ` (${sets.join('; ')})`, '',
    '| id | area | file | result | caught by | tests tried (s) |', '|---|---|---|---|---|---|',
    ...all.map((r) => `| ${r.id} | ${r.area} | ${r.file} | ${r.status === 'MISSED' ? '**MISSED**' : r.status} | ${r.by ?? (r.status === 'invalid' ? r.detail : '')} | ${(r.tried ?? []).map((x) => `${path.basename(x.test, '.test.ts')} ${x.ok ? 'pass' : 'FAIL'} ${x.seconds}`).join(', ')} |`),
    '',
  ];
  fs.writeFileSync(REPORT, md.join('\n'));
  return { caught, valid: valid.length, rate };
}
