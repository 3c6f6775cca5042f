/**
 * `visprompt benchmark` on the tiny model: the grid, the dataset layouts, the statistics, a run
 * interrupted with Ctrl-C (CLI) and continued (library) without redoing finished units, the
 * undecodable reference listed, one unit equal to a direct `vary` call, the metric tables, and the
 * HTML report opened in headless Chromium (Debian's, driven by playwright-core).
 */
import test, { after, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium, type Browser } from 'playwright-core';
import { FIXTURES, modelDir } from './helpers.js';
import { InputError } from '../src/errors.js';
import { expandGrid, readGridFile } from '../src/benchmark/grid.js';
import { loadBenchmarkDataset } from '../src/benchmark/dataset.js';
import { meanCI95, studentTQuantile } from '../src/benchmark/stats.js';
import { runBenchmark, type BenchmarkOptions } from '../src/benchmark/run.js';
import { openCheckpoint } from '../src/components/checkpoint.js';
import { createMethod } from '../src/methods/index.js';
import { vary } from '../src/pipelines/vary.js';
import { TorchGenerator } from '../src/noise/torch-generator.js';
import { readImageRGB } from '../src/io/image.js';

const CLI = path.resolve(FIXTURES, '../../dist/src/cli/main.js');
const CHROMIUM = '/usr/bin/chromium';
const OUT_SHOTS = path.resolve(FIXTURES, '../../test-output');
const TINY = modelDir('tiny-sd15');
const NETS = { clip: modelDir('tiny-clip'), dino: modelDir('tiny-dino-vit'), lpips: modelDir('lpips-alex-random') };

let tmp: string, data: string;
before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vp-benchmark-'));
  data = path.join(tmp, 'data');
  fs.mkdirSync(data);
  fs.copyFileSync(path.join(FIXTURES, 'goldens/tiny-sd15/inversion_input.png'), path.join(data, 'cat.png'));
  fs.copyFileSync(path.join(FIXTURES, 'goldens/metrics/reference.png'), path.join(data, 'thing.png'));
  fs.writeFileSync(path.join(data, 'broken.png'), 'this is not a PNG');
  fs.writeFileSync(path.join(data, 'captions.jsonl'), [
    { image: 'cat.png', caption: 'a photograph of a cat' },
    { image: 'broken.png', caption: 'a damaged file' },
    { image: 'thing.png', caption: 'a red thing on a table' },
  ].map((x) => JSON.stringify(x)).join('\n'));
});
after(() => { fs.rmSync(tmp, { recursive: true, force: true }); });

test('benchmark statistics: Student t quantiles and the 95% interval of a mean', () => {
  // scipy.stats.t.ppf(0.975, df)
  for (const [df, q] of [[1, 12.706204736174698], [2, 4.302652729749464], [10, 2.2281388519862744], [30, 2.0422724563012373], [1000, 1.9623390808264078]] as const) {
    assert.ok(Math.abs(studentTQuantile(0.975, df) - q) < 1e-8 * q, `t(0.975, ${df}) = ${studentTQuantile(0.975, df)} vs ${q}`);
  }
  const r = meanCI95([1, 2, 3]);
  assert.equal(r.mean, 2);
  assert.ok(Math.abs(r.ci95![1] - (2 + 4.302652729749464 / Math.sqrt(3))) < 1e-9);
  assert.equal(meanCI95([5]).ci95, null, 'one reference: no interval');
});

test('benchmark grid: sweeps apply to the methods that read them, scoped sets, each-mode, YAML files, errors', () => {
  const ids = (g: Parameters<typeof expandGrid>[0]): string[] => expandGrid(g).map((c) => c.id);
  assert.deepEqual(ids({ methods: ['indetail-ip', 'kv-concat'], sweep: { lambdaP: ['0.5', '1', '2'] } }),
    ['indetail-ip_lambdaP=0.5', 'indetail-ip_lambdaP=1', 'indetail-ip_lambdaP=2', 'kv-concat']);
  assert.deepEqual(ids({ methods: ['indetail-ip', 'kv-concat'], set: { 'kv-concat.guidance': 5 }, sweep: { 'lambda-p': [1, 2], stratifiedSteps: [0, 10] }, sweepMode: 'each' }),
    ['indetail-ip_lambdaP=1', 'indetail-ip_lambdaP=2', 'indetail-ip_stratifiedSteps=0', 'indetail-ip_stratifiedSteps=10', 'kv-concat_guidance=5']);
  assert.equal(expandGrid({ methods: ['indetail-ip'], sweep: { lambdaP: [1], stratifiedSteps: [0, 10] } }).length, 2, 'product mode');
  const yaml = path.join(tmp, 'grid.yaml');
  fs.writeFileSync(yaml, 'methods: [indetail-ip]\nsweep:\n  lambdaP: [0.5, 2]\nconfigs:\n  - { method: indetail-ip, guidanceMode: conflicting, label: "w/o ConFG" }\n');
  const g = expandGrid(readGridFile(yaml));
  assert.deepEqual(g.map((c) => c.label), ['indetail-ip_lambdaP=0.5', 'indetail-ip_lambdaP=2', 'w/o ConFG']);
  assert.deepEqual(g[2]!.params, { guidanceMode: 'conflicting' });
  assert.throws(() => expandGrid({ sweep: { lambdaQ: [1] } }), (e: Error) => e instanceof InputError && /unknown parameter "lambdaQ"/.test(e.message));
  assert.throws(() => expandGrid({ methods: ['kv-concat'], sweep: { lambdaP: [1, 2] } }), (e: Error) => e instanceof InputError && /none of the methods kv-concat uses it/.test(e.message));
  assert.throws(() => expandGrid({ set: { 'kv-concat.lambdaP': 2 } }), (e: Error) => e instanceof InputError && /kv-concat does not use lambdaP/.test(e.message));
  assert.throws(() => expandGrid({ sweep: { steps: ['ten'] } }), (e: Error) => e instanceof InputError && /steps=ten: expected an integer/.test(e.message));
});

test('benchmark datasets: JSONL, COCO captions_val2017.json with val2017/, and a folder without captions', () => {
  const coco = path.join(tmp, 'coco');
  fs.mkdirSync(path.join(coco, 'annotations'), { recursive: true });
  fs.mkdirSync(path.join(coco, 'val2017'));
  fs.copyFileSync(path.join(data, 'cat.png'), path.join(coco, 'val2017', '000000000139.png'));
  fs.writeFileSync(path.join(coco, 'annotations', 'captions_val2017.json'), JSON.stringify({
    images: [{ id: 139, file_name: '000000000139.png' }, { id: 285, file_name: '000000000285.png' }],
    annotations: [{ image_id: 139, id: 1, caption: ' A cat. ' }, { image_id: 139, id: 2, caption: 'second caption' }, { image_id: 285, id: 3, caption: 'a bear' }],
  }));
  const d = loadBenchmarkDataset(coco);
  assert.deepEqual(d.entries.map((e) => [e.id, path.relative(coco, e.image), e.caption]), [['000000000139', 'val2017/000000000139.png', 'A cat.'], ['000000000285', 'val2017/000000000285.png', 'a bear']]);
  assert.equal(loadBenchmarkDataset(data, 2).entries.length, 2);
  const bare = path.join(tmp, 'bare');
  fs.mkdirSync(bare);
  fs.copyFileSync(path.join(data, 'cat.png'), path.join(bare, 'cat.png'));
  assert.throws(() => loadBenchmarkDataset(bare), (e: Error) => e instanceof InputError && /no captions/.test(e.message));
  // The CLI says it in one line.
  const r = spawnSync(process.execPath, [CLI, 'benchmark', '--model', TINY, '--data', bare, '--out', path.join(tmp, 'o-bare'), '--metrics', 'none'], { encoding: 'utf8' });
  assert.equal(r.status, 1);
  assert.match(r.stderr.trim(), /^error: --data .*bare: no captions: expected a \.jsonl/);
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
});

test('benchmark bad input: missing metric networks, LPIPS on tiny images, a rerun with other settings', async () => {
  const base: BenchmarkOptions = { model: TINY, data, out: path.join(tmp, 'o-bad'), configs: expandGrid({ methods: ['indetail-ip'] }), settings: { steps: 2, width: 64, height: 64, numImages: 1 }, limit: 1 };
  await assert.rejects(runBenchmark({ ...base, metrics: ['fid'] }), (e: Error) => e instanceof InputError && e.message === '--metrics fid: give its network with --fid-model');
  await assert.rejects(runBenchmark({ ...base, networks: { dino: path.join(tmp, 'nope') } }), (e: Error) => e instanceof InputError && /^--dino-model .*nope: no such file or folder$/.test(e.message));
  await assert.rejects(runBenchmark({ ...base, networks: { lpips: NETS.lpips }, settings: { ...base.settings, width: 32, height: 32 } }), (e: Error) => e instanceof InputError && /LPIPS \(AlexNet\) needs images of at least 63x63/.test(e.message));
  await runBenchmark({ ...base, metrics: [] });
  await assert.rejects(runBenchmark({ ...base, metrics: [], settings: { ...base.settings, steps: 3 } }), (e: Error) => e instanceof InputError && /^steps 3: .* was started with 2/.test(e.message));
  // another precision into the same folder would mix fp32 and int8 images
  await assert.rejects(runBenchmark({ ...base, metrics: [], openModel: (p) => openCheckpoint(p, { precision: 'int8' }) }),
    (e: Error) => e instanceof InputError && /^--precision int8: .* was started with --precision fp32/.test(e.message));
});

test('benchmark: Ctrl-C mid-run keeps finished units, the rerun continues, scores, and writes tables and an HTML report Chromium can read', { timeout: 420_000 }, async (t) => {
  const out = path.join(tmp, 'run');
  const grid = ['--methods', 'indetail-ip', '--sweep', 'lambdaP=0.5,2'];
  const flags = ['--steps', '3', '--num-images', '2', '--width', '64', '--height', '64'];
  // 1. The CLI, interrupted (SIGINT) once the first unit is on disk.
  const child = spawn(process.execPath, [CLI, 'benchmark', '--model', TINY, '--data', data, '--out', out, ...grid, ...flags, '--metrics', 'none', '--quiet'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (b: Buffer) => { stderr += b.toString(); });
  const records = (): string[] => (fs.existsSync(path.join(out, 'runs')) ? fs.readdirSync(path.join(out, 'runs'), { recursive: true }).map(String).filter((f) => f.endsWith('.json')) : []);
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  for (let i = 0; i < 3000 && records().length === 0; i++) await new Promise((r) => setTimeout(r, 50));
  child.kill('SIGINT');
  assert.equal(await exited, 130, stderr);
  assert.match(stderr, /interrupted: finished units are kept/);
  const first = records();
  assert.ok(first.length >= 1 && first.length < 4, `interrupted after ${first.length} of 4 units`);
  const pngs = fs.readdirSync(path.join(out, 'images'), { recursive: true }).map(String).filter((f) => f.endsWith('.png'));
  const mtimes = new Map(pngs.map((f) => [f, fs.statSync(path.join(out, 'images', f)).mtimeMs]));
  assert.equal(pngs.length, first.length * 2, 'only whole units are on disk');

  // 2. The same run again (library): finished units are not redone.
  const t0 = performance.now();
  const r = await runBenchmark({
    model: TINY, data, out, configs: expandGrid({ methods: ['indetail-ip'], sweep: { lambdaP: ['0.5', '2'] } }),
    settings: { steps: 3, numImages: 2, width: 64, height: 64 }, networks: NETS,
  });
  const seconds = (performance.now() - t0) / 1000;
  assert.equal(r.resumed, first.length);
  assert.equal(r.generated, 4 - first.length);
  for (const [f, m] of mtimes) assert.equal(fs.statSync(path.join(out, 'images', f)).mtimeMs, m, `${f} was not rewritten`);
  assert.equal(records().filter((f) => !f.endsWith('.scores.json')).length, 4);
  // The undecodable reference: skipped and listed, never silently.
  assert.deepEqual(r.skipped.map((s) => path.basename(s.file)), ['broken.png']);
  assert.match(r.skipped[0]!.reason, /not an image or damaged/);

  // 3. A unit is what `vary` makes with the same settings (seed = 82 + the reference's index).
  const direct = await vary(openCheckpoint(TINY), {
    reference: await readImageRGB(path.join(out, 'references', 'thing.png')), method: createMethod('indetail-ip', 3, { lambdaP: 2, permutationSeed: 84 }),
    prompt: 'a red thing on a table, best quality, extremely detailed.', negativePrompt: 'bad anatomy, bad hands, cropped, worst quality',
    steps: 3, guidance: 7.5, numImages: 2, noise: new TorchGenerator(84),
  });
  for (const k of [0, 1]) {
    const png = await readImageRGB(path.join(out, 'images', 'indetail-ip_lambdaP=2', `thing-${k}.png`));
    assert.deepEqual(Buffer.from(png.data), Buffer.from(direct.images[k]!.data), `image ${k} equals vary's`);
  }

  // 4. Tables: one row per configuration, means with their 95% intervals.
  for (const c of r.configs) {
    assert.equal(c.references, 2);
    assert.equal(c.images, 4);
    for (const k of ['clip_i', 'clip_t', 'dino', 'dino_structure', 'lpips'] as const) {
      const m = c.metrics[k]!;
      assert.ok(Number.isFinite(m.mean) && m.ci95 && m.ci95[0] <= m.mean && m.mean <= m.ci95[1], `${c.config.id} ${k}`);
    }
  }
  const csv = fs.readFileSync(r.files.csv, 'utf8').trim().split('\n');
  assert.equal(csv.length, 3);
  assert.match(csv[0]!, /^config,label,method,lambdaP,steps,guidance,references,images,clip_i_mean,clip_i_ci95_low,clip_i_ci95_high,/);
  assert.match(csv[1]!, /^indetail-ip_lambdaP=0\.5,indetail-ip_lambdaP=0\.5,indetail-ip,0\.5,3,7\.5,2,4,0\.\d+/);
  const md = fs.readFileSync(r.files.markdown, 'utf8');
  assert.match(md, /\| indetail-ip_lambdaP=2 \| 2 \| 4 \| -?\d\.\d{4} ± \d\.\d{4} \|/);
  assert.match(md, /broken\.png: .*not an image or damaged/);
  assert.ok(r.files.plots.some((f) => f.endsWith('sweep-lambdaP.svg')) && r.files.plots.some((f) => f.endsWith('sweep-lambdaP.png')));
  assert.match(fs.readFileSync(path.join(out, 'plots', 'sweep-lambdaP.svg'), 'utf8'), /^<svg[^>]*>.*lambdaP/s);

  // 5. A second rerun does nothing new: every unit and every score is reused.
  const again = await runBenchmark({ model: TINY, data, out, configs: expandGrid({ methods: ['indetail-ip'], sweep: { lambdaP: ['0.5', '2'] } }), settings: { steps: 3, numImages: 2, width: 64, height: 64 }, networks: NETS });
  assert.equal(again.generated, 0);
  assert.deepEqual(again.configs.map((c) => c.metrics.clip_i!.mean), r.configs.map((c) => c.metrics.clip_i!.mean));
  // The CLI's --report-only --json: the folder's own settings and grid, nothing generated, the same scores.
  const ro = spawnSync(process.execPath, [CLI, 'benchmark', '--report-only', '--data', data, '--out', out, '--clip-model', NETS.clip, '--dino-model', NETS.dino, '--lpips-model', NETS.lpips, '--json'], { encoding: 'utf8' });
  assert.equal(ro.status, 0, ro.stderr);
  const summary = JSON.parse(ro.stdout.trim().split('\n').pop()!) as { generated: number; resumed: number; skipped: { file: string }[]; configs: { id: string; metrics: { clip_i: { mean: number } } }[] };
  assert.equal(summary.generated, 0);
  assert.equal(summary.resumed, 4);
  assert.deepEqual(summary.configs.map((c) => [c.id, c.metrics.clip_i.mean]), r.configs.map((c) => [c.config.id, c.metrics.clip_i!.mean]));
  assert.deepEqual(summary.skipped.map((x) => path.basename(x.file)), ['broken.png']);
  console.log(`benchmark: ${first.length} units before Ctrl-C; rerun generated ${r.generated} and scored 4 units in ${seconds.toFixed(1)} s`);

  // 6. The report in a real browser: the metric table, every image decoded, the skipped file, the plot.
  if (!fs.existsSync(CHROMIUM)) { t.skip(`${CHROMIUM} is not installed (apt-get install -y chromium): the report is unchecked in a browser`); return; }
  let browser: Browser | undefined;
  try {
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--allow-file-access-from-files'] });
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(pathToFileURL(r.files.html).href);
    assert.equal(await page.locator('#metrics tbody tr').count(), 2);
    assert.deepEqual(await page.locator('#metrics thead th').allTextContents(), ['configuration', 'method', 'parameters', 'references', 'images', 'CLIP-I ↑', 'CLIP-T ↑', 'DINO ↑', 'DINO structure (DINO-G ↑ / DINO-C ↓)', 'LPIPS', 's / reference']);
    assert.match(await page.textContent('#metrics tr[data-config="indetail-ip_lambdaP=0.5"] td[data-metric="clip_i"]') ?? '', /^-?\d\.\d{4} ± \d\.\d{4}$/);
    // 2 references (as the model saw them) + 2 configurations x 2 references x 2 images, all decoded at 64 px
    // (the gallery loads lazily: bring it into view)
    await page.locator('#gallery').scrollIntoViewIfNeeded();
    await page.setViewportSize({ width: 1280, height: 2400 });
    await page.waitForFunction(`[...document.querySelectorAll('#gallery img')].every((i) => i.complete)`);
    const sizes = await page.evaluate<number[]>(`[...document.querySelectorAll('#gallery img')].map((i) => i.naturalWidth)`);
    assert.deepEqual(sizes, Array(10).fill(64));
    assert.equal(await page.locator('#gallery tbody tr').count(), 2);
    assert.match(await page.textContent('#skipped') ?? '', /broken\.png: .*not an image or damaged/);
    assert.ok(await page.locator('#plots svg').count() >= 2, 'the plots are inline SVG');
    fs.mkdirSync(OUT_SHOTS, { recursive: true });
    await page.screenshot({ path: path.join(OUT_SHOTS, 'benchmark-report.png'), fullPage: true });
    assert.deepEqual(errors, []);
  } finally {
    await browser?.close();
  }
});
