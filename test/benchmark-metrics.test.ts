/**
 * The benchmark's set metrics (FID, KID, Inception Score) and its metric-network checks:
 * - the Inception Score against hand-derived values on small logit sets (no reference run exists);
 * - FID / KID / IS of a benchmark run on a narrow random-weight pytorch-fid Inception built at test time
 *   (test/fid-inception-fixture.ts; the full-width network is 48 MB even with random weights), each equal
 *   to the eval library on the same images, the rank-deficiency warning and note (as pytorch-fid warns),
 *   KID with subsets larger than the sets (a note, no value);
 * - metric networks of the wrong architecture: a one-line error naming the key and the shapes, before
 *   anything is generated.
 */
import test, { after, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FIXTURES, modelDir } from './helpers.js';
import { readComponent } from './model-fixtures.js';
import { writeNarrowInception } from './fid-inception-fixture.js';
import { FileFormatError } from '../src/errors.js';
import { expandGrid } from '../src/benchmark/grid.js';
import { runBenchmark, type BenchmarkOptions } from '../src/benchmark/run.js';
import { inceptionFeatures } from '../src/eval/evaluate.js';
import { FIDInception } from '../src/eval/fid-inception.js';
import { featureStats, frechetDistance } from '../src/eval/frechet.js';
import { inceptionLogits, inceptionScore } from '../src/eval/inception-score.js';
import { kernelInceptionDistance } from '../src/eval/kid.js';
import { readAllFloat32, writeSafetensors } from '../src/io/safetensors.js';

const CLI = path.resolve(FIXTURES, '../../dist/src/cli/main.js');
const TINY = modelDir('tiny-sd15');
const rel = (a: number, b: number): number => Math.abs(a - b) / Math.max(1e-300, Math.abs(b));

let tmp: string, data: string, inception: string;
before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vp-benchmark-metrics-'));
  data = path.join(tmp, 'data');
  fs.mkdirSync(data);
  fs.copyFileSync(path.join(FIXTURES, 'goldens/tiny-sd15/inversion_input.png'), path.join(data, 'cat.png'));
  fs.copyFileSync(path.join(FIXTURES, 'goldens/metrics/reference.png'), path.join(data, 'thing.png'));
  fs.copyFileSync(path.join(FIXTURES, 'goldens/metrics/generated_1.png'), path.join(data, 'other.png'));
  fs.writeFileSync(path.join(data, 'captions.jsonl'), ['cat', 'thing', 'other'].map((n) => JSON.stringify({ image: `${n}.png`, caption: `a ${n}` })).join('\n'));
  inception = path.join(tmp, 'inception.safetensors');
  writeNarrowInception(inception, { width: 4, classes: 5 });
});
after(() => { fs.rmSync(tmp, { recursive: true, force: true }); });

test('Inception Score: hand-derived values (two-class, confident, chunked) and the logits of fc.weight without bias', () => {
  // Two images, two classes, logits [ln 3, 0] and [0, ln 3]: p = (3/4, 1/4) and (1/4, 3/4), marginal (1/2, 1/2),
  // KL = 3/4 ln(3/2) + 1/4 ln(1/2) for both, so IS = 1.5^0.75 * 0.5^0.25.
  const l3 = Math.log(3);
  const two = inceptionScore([[l3, 0], [0, l3]], { splits: 1 });
  assert.ok(rel(two.isMean, 1.5 ** 0.75 * 0.5 ** 0.25) < 1e-14, `IS ${two.isMean}`);
  assert.ok(Number.isNaN(two.isStd), 'one split: no standard deviation (torch.std of one value)');
  // Confident and spread over C classes: IS = C; all in one class: IS = 1.
  const onehot = (c: number, k: number): number[] => Array.from({ length: k }, (_, i) => (i === c ? 1000 : 0));
  assert.ok(rel(inceptionScore([0, 1, 2, 3].map((c) => onehot(c, 4)), { splits: 1 }).isMean, 4) < 1e-14);
  assert.ok(rel(inceptionScore([2, 2, 2].map((c) => onehot(c, 4)), { splits: 1 }).isMean, 1) < 1e-14);
  // torch.chunk: 5 rows in 2 splits = 3 + 2 rows. Unshuffled, chunk 1 = classes {0, 1, 0}: the KL of a one-hot row of
  // class c is -ln m_c, so its mean is the entropy H(2/3, 1/3) of the marginal; chunk 2 = {3, 2}: IS 2.
  const h = -(2 / 3) * Math.log(2 / 3) - (1 / 3) * Math.log(1 / 3);
  const chunked = inceptionScore([0, 1, 0, 3, 2].map((c) => onehot(c, 4)), { splits: 2, shuffle: false });
  const s1 = Math.exp(h), s2 = 2;
  assert.ok(rel(chunked.isMean, (s1 + s2) / 2) < 1e-14, `chunked mean ${chunked.isMean}`);
  assert.ok(rel(chunked.isStd, Math.abs(s1 - s2) / Math.SQRT2) < 1e-12, `unbiased std ${chunked.isStd}`);
  // The shuffle is a permutation of the rows: with one split it cannot change the score.
  assert.ok(rel(inceptionScore([0, 1, 0, 3, 2].map((c) => onehot(c, 4)), { splits: 1, seed: 5 }).isMean, inceptionScore([0, 1, 0, 3, 2].map((c) => onehot(c, 4)), { splits: 1, shuffle: false }).isMean) < 1e-14);
  // logits = features x fc.weight^T (no bias): [1, 2] x [[1, 0], [0, 1], [1, 1]]^T
  assert.deepEqual([...inceptionLogits([Float32Array.of(1, 2)], Float32Array.of(1, 0, 0, 1, 1, 1), 3)[0]!], [1, 2, 3]);
});

test('benchmark FID / KID / IS on a narrow random Inception: equal to the eval library on the same files; rank-deficient FID warns; KID on too few images is a note', async () => {
  const warnings: string[] = [];
  const t0 = performance.now();
  const out = path.join(tmp, 'run');
  const base: BenchmarkOptions = {
    model: TINY, data, out, configs: expandGrid({ methods: ['indetail-ip'] }), settings: { steps: 1, numImages: 2, width: 64, height: 64 },
    networks: { fid: inception }, metrics: ['fid', 'kid', 'is'], kid: { subsets: 4, subsetSize: 2, seed: 5 }, inceptionScore: { splits: 2, seed: 9 }, onWarning: (m) => warnings.push(m),
  };
  const r = await runBenchmark(base);
  const c = r.configs[0]!;
  assert.equal(c.images, 6);
  // The same numbers from the library pieces on the files the run wrote.
  const net = FIDInception.open(inception);
  const real = await inceptionFeatures(net, ['cat', 'thing', 'other'].map((n) => path.join(out, 'references', `${n}.png`)), {}, []);
  const gen = await inceptionFeatures(net, c.units.flatMap((u) => u.files.map((f) => path.join(out, f))), {}, []);
  assert.equal(gen[0]!.length, 24, 'the narrow network has 6 x 4 pool3 features');
  const fid = frechetDistance(featureStats(real), featureStats(gen)).fid;
  assert.ok(c.fid?.fid !== null && c.fid?.fid !== undefined && rel(c.fid.fid, fid) < 1e-9, `FID ${c.fid?.fid} vs ${fid}`);
  assert.ok(fid > 0);
  const kid = kernelInceptionDistance(real, gen, { subsets: 4, subsetSize: 2, seed: 5 });
  assert.ok(rel(c.kid!.mean!, kid.kidMean) < 1e-12 && rel(c.kid!.std!, kid.kidStd) < 1e-12, `KID ${JSON.stringify(c.kid)} vs ${JSON.stringify(kid)}`);
  const fc = readAllFloat32(inception)['fc.weight']!;
  const is = inceptionScore(inceptionLogits(gen, fc.data, 5), { splits: 2, seed: 9 });
  assert.ok(rel(c.inceptionScore!.mean!, is.isMean) < 1e-12 && rel(c.inceptionScore!.std!, is.isStd) < 1e-12, `IS ${JSON.stringify(c.inceptionScore)} vs ${JSON.stringify(is)}`);
  assert.ok(is.isMean >= 1 && is.isMean <= 5, 'IS lies in [1, classes]');
  // 3 real / 6 generated images for 12 feature dimensions: rank-deficient, warned and noted (as pytorch-fid warns).
  assert.ok(warnings.some((w) => /^FID of indetail-ip: rank-deficient: 3 real \/ 6 generated images for 24 feature dimensions/.test(w)), warnings.join('\n'));
  assert.match(c.fid!.note!, /rank-deficient/);
  const csv = fs.readFileSync(r.files.csv, 'utf8').split('\n');
  assert.match(csv[0]!, /,fid,fid_note,kid_mean,kid_std,kid_note,is_mean,is_std,seconds_per_reference$/);
  assert.match(fs.readFileSync(r.files.markdown, 'utf8'), /\| FID ↓ \| KID ↓ \| IS ↑ \|/);
  const html = fs.readFileSync(r.files.html, 'utf8');
  assert.match(html, /<td data-metric="kid"[^>]*>-?\d\.\d+(e-?\d+)? ± /);
  assert.match(html, /<td data-metric="is">\d\.\d+ ± /);

  // Scoring again with torchmetrics' default KID subsets (1000 rows): too few images is a note and no value, not an error.
  warnings.length = 0;
  const again = await runBenchmark({ ...base, generate: false, configs: undefined, kid: {} });
  assert.equal(again.generated, 0);
  assert.equal(again.configs[0]!.kid!.mean, null);
  assert.match(again.configs[0]!.kid!.note!, /KID with subsets of 1000 needs at least 1000 real and 1000 generated images \(3 \/ 6\); lower --kid-subset-size/);
  assert.ok(warnings.some((w) => /KID with subsets of 1000/.test(w)));
  assert.ok(rel(again.configs[0]!.fid!.fid!, fid) < 1e-12, 'cached features give the same FID');
  console.log(`benchmark set metrics: FID ${fid.toFixed(4)}, KID ${kid.kidMean.toExponential(4)} ± ${kid.kidStd.toExponential(2)}, IS ${is.isMean.toPrecision(8)} ± ${is.isStd.toExponential(2)}; ${((performance.now() - t0) / 1000).toFixed(1)} s`);
});

test('benchmark: a metric network of the wrong architecture is a one-line error naming the key and the shapes, before anything is generated', async () => {
  const out = path.join(tmp, 'wrong');
  const base: BenchmarkOptions = { model: TINY, data, out, configs: expandGrid({ methods: ['indetail-ip'] }), settings: { steps: 1, numImages: 1, width: 64, height: 64 }, limit: 1 };
  // An Inception whose Mixed_6b 1x7 convolution is 7x1.
  const bad = path.join(tmp, 'inception-bad.safetensors');
  const w = readAllFloat32(inception);
  const k = w['Mixed_6b.branch7x7_2.conv.weight']!;
  w['Mixed_6b.branch7x7_2.conv.weight'] = { shape: [k.shape[0]!, k.shape[1]!, 7, 1], data: k.data };
  writeSafetensors(bad, w);
  await assert.rejects(runBenchmark({ ...base, networks: { fid: bad }, metrics: ['fid'] }),
    (e: Error) => e instanceof FileFormatError && /Mixed_6b\.branch7x7_2\.conv\.weight/.test(e.message) && /\[4, 4, 7, 1\]/.test(e.message) && /\[\?, 4, 1, 7\]/.test(e.message));
  // The Inception Score needs the classifier head.
  const headless = path.join(tmp, 'inception-no-fc.safetensors');
  const { 'fc.weight': _w, 'fc.bias': _b, ...trunk } = readAllFloat32(inception);
  writeSafetensors(headless, trunk);
  await assert.rejects(runBenchmark({ ...base, networks: { fid: headless }, metrics: ['is'] }), (e: Error) => e instanceof FileFormatError && /fc\.weight/.test(e.message) && /\[1008, 2048\]/.test(e.message));
  // A DINO ViT whose last MLP is narrower than its config says.
  const dino = path.join(tmp, 'dino-bad');
  fs.mkdirSync(dino);
  fs.copyFileSync(path.join(modelDir('tiny-dino-vit'), 'config.json'), path.join(dino, 'config.json'));
  const vit = readComponent(modelDir('tiny-dino-vit'));
  vit['encoder.layer.2.intermediate.dense.weight'] = { shape: [128, 64], data: new Float32Array(128 * 64) };
  writeSafetensors(path.join(dino, 'model.safetensors'), vit);
  await assert.rejects(runBenchmark({ ...base, networks: { dino } }), (e: Error) => e instanceof FileFormatError && /encoder\.layer\.2\.intermediate\.dense\.weight/.test(e.message) && /\[128, 64\]/.test(e.message) && /\[256, 64\]/.test(e.message));
  assert.ok(!fs.existsSync(path.join(out, 'images')), 'nothing was generated');
  // The CLI says it in one line.
  const r = spawnSync(process.execPath, [CLI, 'benchmark', '--model', TINY, '--data', data, '--out', out, '--fid-model', bad, '--steps', '1', '--limit', '1'], { encoding: 'utf8' });
  assert.equal(r.status, 1);
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  assert.match(r.stderr.trim(), /^error: .*Mixed_6b\.branch7x7_2\.conv\.weight.*\[4, 4, 7, 1\]/);
});
