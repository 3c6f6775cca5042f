/**
 * The VCF aligner's training loop (src/pipelines/train-aligner.ts) on a stand-in checkpoint whose text and image
 * encoders are known functions of the caption / image (no model runs): the embedding cache (its name, rows in
 * chunks of 16, metadata, reuse), the seeded default init, the --fraction selection and the per-epoch batch
 * permutations (Fisher-Yates on the seeded generator, written out here), Adam steps on the aligner objective, the
 * saved file (weights, optimizer state, metadata), --save-every, --init, --resume, and the one-line errors. The
 * expected losses come from the objective evaluated here on batches picked by hand. About a second.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Checkpoint } from '../src/components/checkpoint.js';
import { FileFormatError, InputError } from '../src/errors.js';
import { readImageRGB, writePNG, type RGBImage } from '../src/io/image.js';
import { readAllFloat32, SafetensorsFile, writeSafetensors } from '../src/io/safetensors.js';
import { alignerLossAndGrads } from '../src/methods/vcf/objective.js';
import type { AlignerParams } from '../src/methods/vcf/aligner.js';
import { NativeGaussian } from '../src/noise/gaussian.js';
import { trainAligner, type TrainAlignerOptions } from '../src/pipelines/train-aligner.js';
import { Adam } from '../src/training/optimizers.js';
import type { Tensor } from '../src/tensor.js';

const DV = 4, DT = 2, LEN = 3, TOKENS = 5; // a 4 x 4 image in patches of 2: 2 x 2 + the class token

const code = (s: string) => [...s].reduce((a, ch) => a + ch.charCodeAt(0), 0) % 97;
const textTokens = (s: string) => Array.from({ length: LEN * DT }, (_, j) => Math.fround(Math.sin(code(s) * 0.37 + j)));
const pooled = (s: string) => Array.from({ length: DT }, (_, j) => Math.fround(Math.cos(code(s) * 0.11 + j)));
const mask = (s: string) => Array.from({ length: LEN }, (_, l) => (l < s.split(' ').length ? 1 : 0));
const imageTokens = (im: RGBImage) => Array.from({ length: TOKENS * DV }, (_, j) => Math.fround(im.data[j % im.data.length]! / 255 + 0.01 * j));

interface Enc { images: number; texts: number; clipSkips?: number[] }
function ck(enc: Enc, o: { nan?: boolean } = {}): Checkpoint {
  const textEncoder = {
    config: { hiddenSize: DT },
    tokenizer: { modelMaxLength: LEN, encode: (s: string) => ({ attention_mask: mask(s) }) },
    async encode(captions: string[], opts: { clipSkip?: number } = {}) {
      enc.texts += captions.length;
      enc.clipSkips?.push(opts.clipSkip ?? 0);
      return {
        lastHiddenState: { shape: [captions.length, LEN, DT], data: Float32Array.from(captions.flatMap(textTokens)) },
        poolerOutput: { shape: [captions.length, DT], data: Float32Array.from(captions.flatMap(pooled)) },
        truncated: captions.filter((c) => c.split(' ').length > LEN),
      };
    },
  };
  const imageEncoder = {
    config: { hiddenSize: DV, imageSize: 4, patchSize: 2 },
    async encode(images: RGBImage[]) { enc.images += images.length; return { lastHiddenState: { shape: [images.length, TOKENS, DV], data: Float32Array.from(images.flatMap((im) => imageTokens(im).map((v) => (o.nan ? Number.NaN : v)))) } }; },
  };
  return { path: 'stand-in-model', textEncoder: () => textEncoder, imageEncoder: () => imageEncoder } as unknown as Checkpoint;
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vp-ta-loop-'));
const CAPTIONS = Array.from({ length: 18 }, (_, i) => (i % 5 === 0 ? `a long caption number ${i}` : `square ${i}`));
/** n pairs of 2 x 2 images (+ one missing image); returns the JSONL file. */
async function dataset(name: string, n: number, from = 0): Promise<string> {
  const dir = path.join(tmp, name);
  fs.mkdirSync(dir);
  const lines: string[] = [];
  for (let i = from; i < from + n; i++) {
    await writePNG(path.join(dir, `${i}.png`), { width: 2, height: 2, data: Uint8Array.from({ length: 12 }, (_, j) => (i * 41 + j * 23) % 256) } as RGBImage);
    lines.push(JSON.stringify({ image: `${i}.png`, caption: CAPTIONS[i]! }));
    if (i === 2) lines.push(JSON.stringify({ image: 'missing.png', caption: 'gone' }));
  }
  const file = path.join(dir, 'pairs.jsonl');
  fs.writeFileSync(file, lines.join('\n') + '\n');
  return file;
}

/** Fisher-Yates from the top with j = floor(u32 / 2^32 * (i + 1)). */
function perm(n: number, rng: NativeGaussian): number[] {
  const p = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) { const j = Math.floor((rng.nextUint32() / 2 ** 32) * (i + 1)); [p[i], p[j]] = [p[j]!, p[i]!]; }
  return p;
}

/** PyTorch's default init by hand: LayerNorm ones / zeros, Linear U(-1/sqrt(fan_in), 1/sqrt(fan_in)) in the order fc1.w, fc1.b, fc2.w, fc2.b. */
function init(hidden: number, seed: number): AlignerParams {
  const rng = new NativeGaussian(seed);
  const u = (shape: number[], fanIn: number): Tensor => ({ shape, data: Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => (2 * (rng.nextUint32() / 2 ** 32) - 1) / Math.sqrt(fanIn)) });
  const w1 = u([hidden, DV], DV), b1 = u([hidden], DV), w2 = u([DT, hidden], hidden), b2 = u([DT], hidden);
  return { 'norm.weight': { shape: [DV], data: new Float32Array(DV).fill(1) }, 'norm.bias': { shape: [DV], data: new Float32Array(DV) }, 'fc1.weight': w1, 'fc1.bias': b1, 'fc2.weight': w2, 'fc2.bias': b2 };
}

interface Pair { image: RGBImage; caption: string }
async function pairsOf(file: string, n: number): Promise<Pair[]> {
  const dir = path.dirname(file);
  return Promise.all(Array.from({ length: n }, async (_, i) => ({ image: await readImageRGB(path.join(dir, `${i}.png`)), caption: CAPTIONS[i]! })));
}

/** The loop by hand: returns the losses and the final parameters. */
async function expected(pairs: Pair[], o: { steps: number; batch: number; lr: number; seed: number; hidden?: number; shuffle?: boolean; lambdaRec?: number; params?: AlignerParams; from?: number; adam?: Adam }) {
  const params = o.params ?? init(o.hidden ?? DT, o.seed);
  const adam = o.adam ?? new Adam({ lr: o.lr });
  const perEpoch = Math.floor(pairs.length / o.batch);
  const losses: number[] = [];
  for (let step = o.from ?? 0; step < o.steps; step++) {
    const epoch = Math.floor(step / perEpoch), k = step % perEpoch;
    const order = o.shuffle === false ? pairs.map((_, i) => i) : perm(pairs.length, new NativeGaussian(o.seed * 1000003 + epoch));
    const idx = order.slice(k * o.batch, (k + 1) * o.batch);
    const b = idx.map((i) => pairs[i]!);
    const r = await alignerLossAndGrads({ dv: DV, hidden: params['fc1.weight'].shape[0]!, dt: DT }, params, {
      imageTokens: { shape: [o.batch, TOKENS, DV], data: Float32Array.from(b.flatMap((p) => imageTokens(p.image))) },
      textTokens: { shape: [o.batch, LEN, DT], data: Float32Array.from(b.flatMap((p) => textTokens(p.caption))) },
      pooledText: { shape: [o.batch, DT], data: Float32Array.from(b.flatMap((p) => pooled(p.caption))) },
      attentionMask: { shape: [o.batch, LEN], data: Float32Array.from(b.flatMap((p) => mask(p.caption))) },
    }, { lambdaRec: o.lambdaRec });
    adam.step(params, r.grads);
    losses.push(r.loss);
  }
  return { losses, params, adam };
}

const stepOf = (file: string): string | undefined => { const f = SafetensorsFile.open(file); try { return f.metadata.step; } finally { f.close(); } };
const PARAMS = ['norm.weight', 'norm.bias', 'fc1.weight', 'fc1.bias', 'fc2.weight', 'fc2.bias'];
function sameParams(file: string, want: AlignerParams, what: string, tol = 0): void {
  const got = readAllFloat32(file);
  for (const n of PARAMS) {
    const w = want[n as keyof AlignerParams];
    assert.deepEqual(got[n]!.shape, w.shape, `${what} ${n} shape`);
    if (tol === 0) assert.deepEqual(Array.from(got[n]!.data), Array.from(w.data), `${what} ${n}`);
    else w.data.forEach((v, i) => assert.ok(Math.abs(got[n]!.data[i]! - v) <= tol, `${what} ${n}[${i}]: ${got[n]!.data[i]} vs ${v}`));
  }
}

test('train-aligner: embedding cache, default init, shuffled batches over epochs, Adam, saved file and metadata; cache reuse', async () => {
  const data = await dataset('main', 18);
  const pairs = await pairsOf(data, 18);
  const out = path.join(tmp, 'main.safetensors');
  const enc = { images: 0, texts: 0 }, warnings: string[] = [], events: string[] = [], seen: [number, number][] = [];
  const r = await trainAligner(ck(enc), { data, out, epochs: 2, batchSize: 8, lr: 0.01, seed: 3, onWarning: (m) => warnings.push(m), onProgress: (e) => events.push(`${e.stage} ${e.step}/${e.total}${e.detail ? ` ${e.detail}` : ''}`), onLoss: (s, l) => seen.push([s, l.loss]) });
  // the cache: named by the model, the data file, its mtime and the pairs
  const hash = crypto.createHash('sha256').update(JSON.stringify(['stand-in-model', data, fs.statSync(data).mtimeMs, pairs.map((_, i) => [path.join(path.dirname(data), `${i}.png`), CAPTIONS[i]])])).digest('hex').slice(0, 16);
  assert.equal(r.cacheFile, `${out}.embeddings-${hash}.safetensors`);
  assert.ok(!fs.existsSync(`${r.cacheFile}.partial`));
  const cache = readAllFloat32(r.cacheFile);
  assert.deepEqual(Array.from(cache['image_tokens']!.data), pairs.flatMap((p) => imageTokens(p.image)));
  assert.deepEqual(Array.from(cache['text_tokens']!.data), pairs.flatMap((p) => textTokens(p.caption)));
  assert.deepEqual(Array.from(cache['pooled_text']!.data), pairs.flatMap((p) => pooled(p.caption)));
  assert.deepEqual(Array.from(cache['attention_mask']!.data), pairs.flatMap((p) => mask(p.caption)));
  assert.deepEqual(cache['image_tokens']!.shape, [18, TOKENS, DV]);
  assert.deepEqual(cache['attention_mask']!.shape, [18, LEN]);
  const cf = SafetensorsFile.open(r.cacheFile);
  assert.deepEqual({ ...cf.metadata }, { model: 'stand-in-model', data, pairs: '18' });
  cf.close();
  assert.deepEqual(enc, { images: 18, texts: 18 });
  // 4 long captions (i = 0, 5, 10, 15) truncated; one pair's image missing
  assert.deepEqual(warnings, ['1 pair(s) skipped: image file missing', '4 caption(s) longer than 77 tokens were truncated']);
  assert.deepEqual([r.pairs, r.missingImages, r.truncatedCaptions, r.steps], [18, 1, 4, 4]);
  // 2 epochs x floor(18 / 8) batches
  const want = await expected(pairs, { steps: 4, batch: 8, lr: 0.01, seed: 3 });
  assert.deepEqual(r.losses, want.losses);
  assert.deepEqual(seen, want.losses.map((l, i) => [i + 1, l]));
  sameParams(out, want.params, 'trained');
  const saved = readAllFloat32(out);
  for (const [n, t] of Object.entries(want.adam.stateTensors())) assert.deepEqual(Array.from(saved[n]!.data), Array.from(t.data), `optimizer state ${n}`);
  const f = SafetensorsFile.open(out);
  assert.deepEqual({ ...f.metadata }, { format: 'visprompt-vcf-aligner', model: 'stand-in-model', image_dim: '4', hidden_dim: '2', text_dim: '2', step: '4', lr: '0.01', batch_size: '8', data, clip_skip: '0' });
  f.close();
  assert.deepEqual(events, ['embed 0/18', 'embed 16/18', 'embed 18/18', 'train 0/4', `train 1/4 loss ${want.losses[0]!.toFixed(4)}`, `train 2/4 loss ${want.losses[1]!.toFixed(4)}`,
    `train 3/4 loss ${want.losses[2]!.toFixed(4)}`, `train 4/4 loss ${want.losses[3]!.toFixed(4)}`]);

  // a second run on the same data reuses the cache: nothing encoded, nothing truncated reported
  const enc2 = { images: 0, texts: 0 }, w2: string[] = [];
  const r2 = await trainAligner(ck(enc2), { data, out: path.join(tmp, 'main.safetensors'), steps: 1, batchSize: 8, lr: 0.01, seed: 3, onWarning: (m) => w2.push(m) });
  assert.deepEqual(enc2, { images: 0, texts: 0 });
  assert.deepEqual(w2, ['1 pair(s) skipped: image file missing']);
  assert.equal(r2.truncatedCaptions, 0);
  assert.deepEqual(r2.losses, want.losses.slice(0, 1));
  // another clip skip is another cache: the captions are encoded again, with it
  const enc3: Enc = { images: 0, texts: 0, clipSkips: [] };
  const r3 = await trainAligner(ck(enc3), { data, out: path.join(tmp, 'main.safetensors'), steps: 1, batchSize: 8, lr: 0.01, seed: 3, clipSkip: 1 });
  assert.notEqual(r3.cacheFile, r.cacheFile);
  assert.deepEqual(enc3, { images: 18, texts: 18, clipSkips: [1, 1] });
  const f3 = SafetensorsFile.open(path.join(tmp, 'main.safetensors'));
  assert.equal(f3.metadata.clip_skip, '1');
  f3.close();
});

test('train-aligner: --fraction, --no-shuffle, --hidden, --lambda-rec, batch larger than the data, defaults', async () => {
  const data = await dataset('opts', 7);
  const pairs = await pairsOf(data, 7);
  // fraction 0.5 of 7: the first ceil(3.5) = 4 of a permutation seeded seed + 1
  const pick = perm(7, new NativeGaussian(5 + 1)).slice(0, 4).map((i) => pairs[i]!);
  const out = path.join(tmp, 'frac.safetensors');
  const r = await trainAligner(ck({ images: 0, texts: 0 }), { data, out, fraction: 0.5, steps: 3, batchSize: 2, lr: 0.02, seed: 5, hidden: 3, lambdaRec: 0.25 });
  assert.equal(r.pairs, 4);
  const want = await expected(pick, { steps: 3, batch: 2, lr: 0.02, seed: 5, hidden: 3, lambdaRec: 0.25 });
  assert.deepEqual(r.losses, want.losses);
  sameParams(out, want.params, 'fraction');
  // no shuffle: batches in file order; batch size capped at the pairs (one batch an epoch); defaults lr 1e-4, seed 0, one epoch
  const o2 = path.join(tmp, 'noshuffle.safetensors');
  const r2 = await trainAligner(ck({ images: 0, texts: 0 }), { data, out: o2, shuffle: false, batchSize: 3, steps: 5, lr: 0.05, seed: 2 });
  assert.deepEqual(r2.losses, (await expected(pairs, { steps: 5, batch: 3, lr: 0.05, seed: 2, shuffle: false })).losses);
  const o3 = path.join(tmp, 'defaults.safetensors');
  const r3 = await trainAligner(ck({ images: 0, texts: 0 }), { data, out: o3, batchSize: 100 });
  assert.equal(r3.steps, 1);
  const w3 = await expected(pairs, { steps: 1, batch: 7, lr: 1e-4, seed: 0 });
  assert.deepEqual(r3.losses, w3.losses);
  sameParams(o3, w3.params, 'defaults');
  const f = SafetensorsFile.open(o3);
  assert.deepEqual([f.metadata.lr, f.metadata.batch_size, f.metadata.step, f.metadata.hidden_dim], ['0.0001', '7', '1', '2']);
  f.close();
  // default batch size 64 (capped at 7): one step
  assert.equal((await trainAligner(ck({ images: 0, texts: 0 }), { data, out: path.join(tmp, 'd2.safetensors') })).steps, 1);
  // two clean pairs (no missing image, short captions): no warnings; batch size 1 is allowed
  const clean = await dataset('clean', 2, 6), w4: string[] = [];
  const r4 = await trainAligner(ck({ images: 0, texts: 0 }), { data: clean, out: path.join(tmp, 'clean.safetensors'), batchSize: 1, steps: 2, lr: 0.01, onWarning: (m) => w4.push(m) });
  assert.deepEqual([r4.pairs, r4.steps, r4.truncatedCaptions, r4.missingImages], [2, 2, 0, 0]);
  assert.deepEqual(w4, []);
});

test('train-aligner: --save-every, --init, --resume (continues exactly), and the one-line errors', async () => {
  const data = await dataset('resume', 6);
  const pairs = await pairsOf(data, 6);
  // save every 3 steps: the file holds step 3 while steps 4 and 5 run
  const out = path.join(tmp, 'every.safetensors');
  const steps: string[] = [];
  await trainAligner(ck({ images: 0, texts: 0 }), { data, out, steps: 5, batchSize: 3, lr: 0.01, seed: 4, saveEvery: 3, onLoss: (s) => steps.push(`${s}:${fs.existsSync(out) ? stepOf(out) : '-'}`) });
  assert.deepEqual(steps, ['1:-', '2:-', '3:-', '4:3', '5:3']);
  // resume from step 2 of a 5-step run equals 5 straight steps
  const a = path.join(tmp, 'straight.safetensors'), b = path.join(tmp, 'resumed.safetensors');
  await trainAligner(ck({ images: 0, texts: 0 }), { data, out: a, steps: 5, batchSize: 2, lr: 0.01, seed: 6 });
  await trainAligner(ck({ images: 0, texts: 0 }), { data, out: b, steps: 2, batchSize: 2, lr: 0.01, seed: 6 });
  const events: string[] = [];
  const r = await trainAligner(ck({ images: 0, texts: 0 }), { data, out: b, steps: 5, batchSize: 2, lr: 0.01, seed: 6, resume: true, onProgress: (e) => { if (e.stage === 'train') events.push(`${e.step}/${e.total}`); } });
  assert.equal(r.steps, 3);
  assert.deepEqual(events, ['0/3', '1/3', '2/3', '3/3']);
  const full = await expected(pairs, { steps: 5, batch: 2, lr: 0.01, seed: 6 });
  r.losses.forEach((l, i) => assert.ok(Math.abs(l - full.losses[2 + i]!) < 1e-6, `resumed loss ${i}`));
  // (the optimizer state goes through the float32 file: the last digit may differ)
  sameParams(b, full.params, 'resumed', 1e-7);
  sameParams(a, full.params, 'straight');
  // --resume without a file: a fresh run; --init: start from a file's weights (copied, the file untouched)
  const fresh = path.join(tmp, 'fresh.safetensors');
  const rf = await trainAligner(ck({ images: 0, texts: 0 }), { data, out: fresh, steps: 1, batchSize: 2, lr: 0.01, seed: 6, resume: true });
  assert.deepEqual(rf.losses, full.losses.slice(0, 1));
  const initFile = path.join(tmp, 'init.safetensors');
  const start = init(5, 9);
  writeSafetensors(initFile, start);
  const before = fs.readFileSync(initFile);
  const o2 = path.join(tmp, 'from-init.safetensors');
  const ri = await trainAligner(ck({ images: 0, texts: 0 }), { data, out: o2, init: initFile, steps: 2, batchSize: 2, lr: 0.01, seed: 6 });
  const wi = await expected(pairs, { steps: 2, batch: 2, lr: 0.01, seed: 6, params: init(5, 9) });
  assert.deepEqual(ri.losses, wi.losses);
  sameParams(o2, wi.params, 'from --init');
  assert.deepEqual(fs.readFileSync(initFile), before);
  // --resume on a weights-only file: refused
  await assert.rejects(trainAligner(ck({ images: 0, texts: 0 }), { data, out: initFile, steps: 2, batchSize: 2, resume: true }),
    (e: unknown) => e instanceof InputError && e.message === `${initFile} has no training state to resume (no "step" metadata); use --init to start from its weights`);
  // an aligner for other widths: refused on --init and --resume
  const other = path.join(tmp, 'other.safetensors');
  writeSafetensors(other, { 'norm.weight': { shape: [3], data: new Float32Array(3) }, 'norm.bias': { shape: [3], data: new Float32Array(3) }, 'fc1.weight': { shape: [2, 3], data: new Float32Array(6) }, 'fc1.bias': { shape: [2], data: new Float32Array(2) }, 'fc2.weight': { shape: [2, 2], data: new Float32Array(4) }, 'fc2.bias': { shape: [2], data: new Float32Array(2) } }, { step: '1' });
  for (const o of [{ init: other }, { out: other, resume: true }]) {
    await assert.rejects(trainAligner(ck({ images: 0, texts: 0 }), { data, out: path.join(tmp, 'x.safetensors'), steps: 1, batchSize: 2, ...o }),
      (e: unknown) => e instanceof FileFormatError && e.message.includes('aligner maps 3-dim image tokens to 2-dim text embeddings, but this model has 4-dim image tokens and 2-dim text embeddings'));
  }
  const bad = (o: Partial<TrainAlignerOptions>, msg: string, d = data) => assert.rejects(trainAligner(ck({ images: 0, texts: 0 }, { nan: o.lr === 7 }), { data: d, out: path.join(tmp, 'bad.safetensors'), steps: 1, batchSize: 2, ...o }), (e: unknown) => e instanceof InputError && e.message === msg);
  await bad({ fraction: 0 }, '--fraction must be in (0, 1], got 0');
  await bad({ fraction: 1.01 }, '--fraction must be in (0, 1], got 1.01');
  await bad({ fraction: Number.NaN }, '--fraction must be in (0, 1], got NaN');
  await bad({ batchSize: 0 }, '--batch-size must be an integer >= 1, got 0');
  await bad({ batchSize: 2.5 }, '--batch-size must be an integer >= 1, got 2.5');
  const one = await dataset('one', 1);
  await bad({}, 'the data has 1 usable pair(s); InfoNCE needs at least 2 per batch', one);
  await bad({ fraction: 0.1 }, 'the data has 1 usable pair(s); InfoNCE needs at least 2 per batch', data);
  // NaN image tokens (a fresh data set: no cache yet): the loss is NaN at step 1
  const nanData = await dataset('nan', 3);
  await bad({ lr: 7 }, 'the loss became NaN at step 1; lower --lr', nanData);
});

/** How many descriptors of this process are open on `file` (Linux: the links in /proc/self/fd). */
function openFds(file: string): number {
  const real = fs.realpathSync(file);
  return fs.readdirSync('/proc/self/fd').filter((fd) => { try { return fs.readlinkSync(`/proc/self/fd/${fd}`) === real; } catch { return false; } }).length;
}

test('train-aligner: 16 pairs (one whole chunk) embed in one chunk, no empty extra one; the cache file is closed after a run and after a failed one', { skip: !fs.existsSync('/proc/self/fd') && 'needs /proc/self/fd' }, async () => {
  const data = await dataset('chunk16', 16);
  const out = path.join(tmp, 'chunk16.safetensors');
  const enc = { images: 0, texts: 0 }, events: string[] = [];
  const r = await trainAligner(ck(enc), { data, out, steps: 1, batchSize: 4, lr: 0.01, onProgress: (e) => { if (e.stage === 'embed') events.push(`${e.step}/${e.total}`); } });
  assert.equal(r.pairs, 16);
  assert.deepEqual(events, ['0/16', '16/16']);
  assert.deepEqual(enc, { images: 16, texts: 16 });
  assert.deepEqual(readAllFloat32(r.cacheFile)['pooled_text']!.shape, [16, DT]);
  assert.equal(openFds(r.cacheFile), 0, 'the cache file is closed');
  // a run that fails inside the training loop (NaN loss at step 1) closes it too
  const nanData = await dataset('nan16', 3), nanOut = path.join(tmp, 'nan16.safetensors');
  await assert.rejects(trainAligner(ck({ images: 0, texts: 0 }, { nan: true }), { data: nanData, out: nanOut, steps: 1, batchSize: 2 }),
    (e: unknown) => e instanceof InputError && e.message === 'the loss became NaN at step 1; lower --lr');
  const nanCache = fs.readdirSync(tmp).filter((n) => n.startsWith('nan16.safetensors.embeddings-') && n.endsWith('.safetensors'));
  assert.equal(nanCache.length, 1);
  assert.equal(openFds(path.join(tmp, nanCache[0]!)), 0, 'the cache file is closed after the error');
});
