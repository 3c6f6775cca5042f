/**
 * CLI wiring of `visprompt benchmark` (the table is test/benchmark-wiring-table.ts): each row's CLI run
 * writes the same folder (images, metrics, report rows) as runBenchmark with the same options, and a
 * different one from the default run (or the same, for `same` rows). Each row's CLI process runs while
 * the library call runs in this process (two cores). Tiny model, 1 step, K = 1 (K = 2 on 3 references
 * for the set metrics), 64x64.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { runBenchmark } from '../src/benchmark/run.js';
import { readImageRGB } from '../src/io/image.js';
import { BENCH_BASE, BENCH_CACHE, BENCH_ROWS, libOptions, setupBenchmarkWiring, WORK, type BenchRow } from './benchmark-wiring-table.js';

const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../src/cli/main.js');
setupBenchmarkWiring();
after(() => fs.rmSync(WORK, { recursive: true, force: true }));

interface Result {
  /** What the flags may move: images (decoded pixels), per-configuration metrics, gallery rows. */
  readonly moved: unknown;
  /** moved + the run-wide settings (the CLI and the library must agree on these too). */
  readonly all: unknown;
}

async function folderResult(out: string): Promise<Result> {
  const pngs = fs.readdirSync(out, { recursive: true }).map(String).filter((f) => f.endsWith('.png') && /^(images|references)[\\/]/.test(f)).sort();
  const images: Record<string, string> = {};
  for (const f of pngs) {
    const im = await readImageRGB(path.join(out, f));
    images[f.split(path.sep).join('/')] = `${im.width}x${im.height} ${createHash('sha256').update(im.data).digest('hex').slice(0, 20)}`;
  }
  const r = JSON.parse(fs.readFileSync(path.join(out, 'results.json'), 'utf8')) as { settings: unknown; configs: Record<string, unknown>[] };
  const configs = r.configs.map(({ seconds_per_reference: _, ...c }) => c);
  const gallery = (fs.readFileSync(path.join(out, 'report.html'), 'utf8').match(/<tr data-reference=/g) ?? []).length;
  const moved = { images, configs, gallery };
  return { moved, all: { ...moved, settings: r.settings } };
}

/** Numbers by relative difference (absolute below 1), anything else must be equal. */
function diff(a: unknown, b: unknown): number {
  if (typeof a === 'number' && typeof b === 'number') return Math.abs(a - b) / Math.max(1, Math.abs(b));
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length ? Math.max(0, ...a.map((x, i) => diff(x, b[i]))) : Infinity;
  if (a && b && typeof a === 'object' && typeof b === 'object') {
    const ka = Object.keys(a).sort(), kb = Object.keys(b).sort();
    if (ka.join() !== kb.join()) return Infinity;
    return Math.max(0, ...ka.map((k) => diff((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k])));
  }
  return a === b ? 0 : Infinity;
}

function cli(flags: string[], out: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, 'benchmark', '--quiet', '--json', ...BENCH_BASE, '--out', out, ...flags], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '', stderr = '';
    child.stdout.on('data', (b: Buffer) => { stdout += b.toString(); });
    child.stderr.on('data', (b: Buffer) => { stderr += b.toString(); });
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

let runs = 0;
const dirs = (): string => fs.mkdtempSync(path.join(WORK, 'run-'));
/** CLI results by flags: a row's run serves as another row's comparison run. */
const byFlags = new Map<string, Promise<Result>>();
function cliResult(flags: string[], out = path.join(dirs(), 'out')): Promise<Result> {
  const key = flags.join('\u0000');
  if (!byFlags.has(key)) {
    byFlags.set(key, (async () => {
      runs++;
      const r = await cli(flags, out);
      assert.equal(r.code, 0, `benchmark ${flags.join(' ')}:\n${r.stderr}`);
      lastStdout = r.stdout;
      return folderResult(out);
    })());
  }
  return byFlags.get(key)!;
}
let lastStdout = '';

const label = (r: BenchRow): string => r.flags.map((f) => (f.includes('/') ? path.basename(f) : f)).join(' ');

test('every flag of `visprompt benchmark` reaches runBenchmark: CLI folder = library folder, and differs from the default', { timeout: 900_000 }, async (t) => {
  const only = process.env.VP_WIRING_ONLY ? new RegExp(process.env.VP_WIRING_ONLY) : undefined;
  const t0 = performance.now();
  let n = 0;
  for (const row of BENCH_ROWS) {
    const name = label(row);
    if (only && !only.test(name)) continue;
    await t.test(name, async () => {
      if (row.error) {
        const r = await cli(row.flags, path.join(dirs(), 'out'));
        assert.notEqual(r.code, 0, `${name}: accepted`);
        assert.match(r.stderr, row.error);
        assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
        return;
      }
      const cliOut = path.join(dirs(), 'out'), libOut = path.join(dirs(), 'out');
      const lib = typeof row.lib === 'function' ? row.lib() : row.lib;
      if (row.prepare === 'base-run') {
        await runBenchmark(libOptions(cliOut));
        await runBenchmark(libOptions(libOut));
      }
      // The CLI process runs while the library call runs here.
      const cliDone = row.prepare ? (async () => { runs++; const r = await cli(row.flags, cliOut); assert.equal(r.code, 0, r.stderr); lastStdout = r.stdout; return folderResult(cliOut); })() : cliResult(row.flags, cliOut);
      const libDone = lib ? runBenchmark(libOptions(libOut, lib)).then(() => folderResult(libOut)) : undefined;
      const [c, l] = await Promise.all([cliDone, libDone]);
      if (row.check === 'nothing-generated') {
        const summary = JSON.parse(lastStdout.trim().split('\n').pop()!) as { generated: number; resumed: number };
        assert.deepEqual([summary.generated, summary.resumed], [0, 1], lastStdout);
      }
      if (row.check === 'cache-written') assert.ok(fs.existsSync(BENCH_CACHE) && fs.readdirSync(BENCH_CACHE).length > 0, `${BENCH_CACHE} was not written`);
      if (l) {
        const d = diff(c.all, l.all);
        assert.ok(d <= 1e-6, `${name}: CLI and library differ (${d}):\n${JSON.stringify(c.all)}\n${JSON.stringify(l.all)}`);
      }
      const base = await cliResult(row.vs ?? []);
      const moved = diff(c.moved, base.moved);
      if (row.same) assert.ok(moved <= 1e-6, `${name}: should equal the default run, moved ${moved}`);
      else assert.ok(moved > 1e-4, `${name}: the result did not change (${moved}): the flag is not passed on`);
      n++;
    });
  }
  console.log(`benchmark-wiring: ${n} rows, ${runs} CLI runs, ${((performance.now() - t0) / 1000).toFixed(1)} s`);
});
