// `visprompt eval` metrics against the goldens of generate_eval.py (goldens/metrics): CLIP-I / CLIP-T on
// tiny-clip, DINO + the Splice structure distance on tiny-dino-vit (transformers layout and the official
// DINO layout), LPIPS AlexNet (random heads from alex.pth), FID's resize and Frechet distance.
import test from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FIXTURES, modelDir } from './helpers.js';
import { readAllFloat32, writeSafetensors } from '../src/io/safetensors.js';
import { readImageRGB } from '../src/io/image.js';
import { evalClip, evalDino, evalFid, evalLpips } from '../src/eval/evaluate.js';
import { DinoViT, keysSelfSimilarity, structureDistance } from '../src/eval/dino-vit.js';
import { fidResize, FIDInception } from '../src/eval/fid-inception.js';
import { featureStats, frechetDistance, traceSqrtProduct } from '../src/eval/frechet.js';
import { LPIPS } from '../src/eval/lpips.js';
import { kernelInceptionDistance } from '../src/eval/kid.js';
import { FileFormatError, InputError } from '../src/errors.js';

const M = path.join(FIXTURES, 'goldens', 'metrics');
const json = <T>(f: string): T => JSON.parse(fs.readFileSync(path.join(M, f), 'utf8')) as T;
const trimmed = readAllFloat32(path.join(M, 'eval-trimmed.safetensors'));
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vp-eval-'));
const rel = (a: number, b: number): number => Math.abs(a - b) / Math.max(Math.abs(b), 1e-12);

test('eval clip: CLIP-I and CLIP-T raw cosines match transformers (tiny-clip), features cached by file hash', async () => {
  const cases = json<{ contract_cases: { image: string; reference: string; text: string; clip_i: number; clip_t: number }[] }>('clip.json').contract_cases;
  let worst = 0;
  for (const c of cases) {
    const r = await evalClip(modelDir('tiny-clip'), [path.join(M, path.basename(c.image))], path.join(M, path.basename(c.reference)), c.text, { cacheDir: tmp });
    worst = Math.max(worst, Math.abs(r.means.clip_i - c.clip_i), Math.abs(r.means.clip_t - c.clip_t));
  }
  assert.ok(worst < 1e-5, `CLIP max abs err ${worst}`);
  assert.ok(fs.readdirSync(tmp).some((d) => d.startsWith('clip-')), 'image features were cached');
  // From the cache, the same values.
  const again = await evalClip(modelDir('tiny-clip'), [path.join(M, 'generated_0.png')], path.join(M, 'reference.png'), cases[0]!.text, { cacheDir: tmp });
  assert.ok(Math.abs(again.means.clip_i - cases[0]!.clip_i) < 1e-5);
});

test('eval dino: CLS cosine and Splice keys self-similarity distance on the DINO eval crop (transformers ViTModel)', async () => {
  const cases = json<{ contract_cases: { image: string; dino: number; dino_structure: number }[] }>('dino.json').contract_cases;
  for (const c of cases) {
    const r = await evalDino(modelDir('tiny-dino-vit'), [path.join(M, path.basename(c.image))], path.join(M, 'reference.png'), { cacheDir: undefined });
    assert.ok(Math.abs(r.means.dino - c.dino) < 1e-5, `dino ${r.means.dino} vs ${c.dino}`);
    assert.ok(rel(r.means.dino_structure, c.dino_structure) < 1e-4, `structure ${r.means.dino_structure} vs ${c.dino_structure}`);
  }
  // Per-image features against Splice's keys and DINO's CLS token.
  const model = DinoViT.open(modelDir('tiny-dino-vit'));
  const ims = await Promise.all(['reference', 'generated_0', 'generated_1'].map((n) => readImageRGB(path.join(M, `${n}.png`))));
  const f = await model.features(ims);
  const keys = trimmed['dino.keys_last_layer']!, cls = trimmed['dino.cls_features']!, dist = trimmed['dino.structure_distance']!;
  let kErr = 0, cErr = 0;
  f.forEach((x, i) => {
    x.keys.forEach((v, j) => { kErr = Math.max(kErr, Math.abs(v - keys.data[i * x.keys.length + j]!)); });
    x.cls.forEach((v, j) => { cErr = Math.max(cErr, Math.abs(v - cls.data[i * x.cls.length + j]!)); });
  });
  assert.ok(kErr < 1e-4 && cErr < 1e-4, `keys ${kErr}, cls ${cErr}`);
  const t = model.tokens, d = model.config.hiddenSize;
  assert.ok(rel(structureDistance(keysSelfSimilarity(f[1]!.keys, t, d), keysSelfSimilarity(f[0]!.keys, t, d)), dist.data[1]!) < 1e-4);
});

test('eval dino: an official DINO VisionTransformer state dict (fused attn.qkv) gives the same features', async () => {
  const src = readAllFloat32(path.join(modelDir('tiny-dino-vit'), 'model.safetensors'));
  const out: Record<string, { shape: readonly number[]; data: Float32Array }> = {
    cls_token: src['embeddings.cls_token']!, pos_embed: src['embeddings.position_embeddings']!,
    'patch_embed.proj.weight': src['embeddings.patch_embeddings.projection.weight']!, 'patch_embed.proj.bias': src['embeddings.patch_embeddings.projection.bias']!,
    'norm.weight': src['layernorm.weight']!, 'norm.bias': src['layernorm.bias']!,
  };
  for (let i = 0; i < 3; i++) {
    const p = `encoder.layer.${i}.`, q = `blocks.${i}.`;
    const cat = (...ts: { data: Float32Array }[]): Float32Array => { const r = new Float32Array(ts.reduce((s, x) => s + x.data.length, 0)); let o = 0; for (const x of ts) { r.set(x.data, o); o += x.data.length; } return r; };
    const a = (n: string) => src[`${p}attention.attention.${n}`]!;
    out[`${q}attn.qkv.weight`] = { shape: [192, 64], data: cat(a('query.weight'), a('key.weight'), a('value.weight')) };
    out[`${q}attn.qkv.bias`] = { shape: [192], data: cat(a('query.bias'), a('key.bias'), a('value.bias')) };
    for (const [from, to] of [['attention.output.dense', 'attn.proj'], ['layernorm_before', 'norm1'], ['layernorm_after', 'norm2'], ['intermediate.dense', 'mlp.fc1'], ['output.dense', 'mlp.fc2']]) {
      out[`${q}${to}.weight`] = src[`${p}${from}.weight`]!; out[`${q}${to}.bias`] = src[`${p}${from}.bias`]!;
    }
  }
  const file = path.join(tmp, 'dino_official.safetensors');
  writeSafetensors(file, out);
  const model = DinoViT.open(file, 4);
  assert.equal(model.layout, 'dino');
  const [f] = await model.features([await readImageRGB(path.join(M, 'reference.png'))]);
  const cls = trimmed['dino.cls_features']!;
  f!.cls.forEach((v, j) => assert.ok(Math.abs(v - cls.data[j]!) < 1e-4));
  // A ViT of the wrong architecture names the key and the shapes.
  out['blocks.2.attn.qkv.weight'] = { shape: [96, 64], data: new Float32Array(96 * 64) };
  writeSafetensors(file, out);
  assert.throws(() => DinoViT.open(file, 4), (e: Error) => e instanceof FileFormatError && /blocks\.2\.attn\.qkv\.weight/.test(e.message) && /\[96, 64\]/.test(e.message));
});

test('eval lpips: AlexNet v0.1 with the official alex.pth heads matches lpips 0.1.4 per layer and in total', async () => {
  const pairs = json<{ pairs: { in0: string; in1: string; lpips: number; per_layer: number[] }[] }>('lpips.json').pairs;
  const model = LPIPS.open(modelDir('lpips-alex-random'));
  let worst = 0;
  for (const p of pairs) {
    const [a, b] = await Promise.all([readImageRGB(path.join(M, path.basename(p.in1))), readImageRGB(path.join(M, path.basename(p.in0)))]);
    const r = await model.distance(a, b);
    r.layers.forEach((v, i) => { worst = Math.max(worst, Math.abs(v - p.per_layer[i]!)); });
    worst = Math.max(worst, Math.abs(r.lpips - p.lpips));
  }
  assert.ok(worst < 1e-6, `LPIPS max abs err ${worst}`);
  // The heads read weights-only from the pickle give the same number as from the safetensors twin.
  const pthOnly = path.join(tmp, 'lpips-pth');
  fs.mkdirSync(pthOnly, { recursive: true });
  for (const f of ['alexnet_features.safetensors', 'alex.pth']) fs.copyFileSync(path.join(modelDir('lpips-alex-random'), f), path.join(pthOnly, f));
  const r = await evalLpips(pthOnly, [path.join(M, 'lpips_var.png')], path.join(M, 'lpips_ref.png'));
  assert.ok(Math.abs(r.means.lpips - pairs[0]!.lpips) < 1e-6);
  await assert.rejects(evalLpips(pthOnly, [path.join(M, 'reference.png')], path.join(M, 'lpips_ref.png')), InputError);
});

test('eval fid: Frechet distance of feature sets (float64, low-rank trace) matches pytorch-fid; rank-deficient sets warn', async () => {
  const cc = json<{ contract_cases: { features: { fid: number } } }>('fid.json').contract_cases;
  const r = await evalFid({ features: path.join(M, 'fid_features_a.safetensors') }, { features: path.join(M, 'fid_features_b.safetensors') }, undefined, { kid: { subsets: 10, subsetSize: 32, seed: 123 } });
  // KID (torchmetrics 1.4.3, subsets drawn by torch.randperm after manual_seed(123))
  assert.ok(rel(r.kid!.kidMean, 0.057373241038599865) < 1e-9 && rel(r.kid!.kidStd, 0.003779674840685384) < 1e-9, `kid ${JSON.stringify(r.kid)}`);
  assert.ok(rel(r.fid, cc.features.fid) < 1e-6, `fid ${r.fid} vs ${cc.features.fid}`);
  assert.equal(r.warnings.length, 2);
  assert.match(r.warnings[0]!, /rank-deficient/);
  // The full-rank path (sqrt(S1) S2 sqrt(S1)) and the low-rank path agree where both apply.
  const rnd = (n: number, d: number, seed: number): Float32Array[] => { let s = seed; const u = () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648) - 0.5; return Array.from({ length: n }, () => Float32Array.from({ length: d }, u)); };
  const a = featureStats(rnd(12, 5, 1)), b = featureStats(rnd(9, 5, 2));
  const full = traceSqrtProduct(a, b, 'full'), lowRank = traceSqrtProduct(a, b, 'low-rank');
  assert.ok(Math.abs(full - lowRank) < 1e-9 * Math.abs(full), `full ${full} vs low-rank ${lowRank}`);
  const fd = frechetDistance(a, a);
  assert.ok(Math.abs(fd.fid) < 1e-9, `FID of a set with itself ${fd.fid}`);
  assert.throws(() => featureStats([new Float32Array(4)]), InputError);
});

test('eval fid: pytorch-fid input handling (ToTensor, bilinear 299 without antialias, 2x - 1) and wrong networks', async () => {
  const x = fidResize(await readImageRGB(path.join(M, 'fid_images', 'a', '00.png')));
  const want = trimmed['fid.a_0.network_input_rows_0_31']!;
  let err = 0;
  for (let c = 0; c < 3; c++) for (let i = 0; i < 32 * 299; i++) err = Math.max(err, Math.abs(2 * x[c * 299 * 299 + i]! - 1 - want.data[c * 32 * 299 + i]!));
  assert.ok(err < 1e-6, `resize max abs err ${err}`);
  assert.throws(() => FIDInception.open(path.join(modelDir('tiny-dino-vit'), 'model.safetensors')), (e: Error) => e instanceof FileFormatError && /Conv2d_1a_3x3/.test(e.message));
});

test('visprompt eval fid --json prints {"fid": x} as its last line', () => {
  const out = execFileSync(process.execPath, [path.resolve(FIXTURES, '../../dist/src/cli/main.js'), 'eval', 'fid', '--features-a', path.join(M, 'fid_features_a.safetensors'), '--features-b', path.join(M, 'fid_features_b.safetensors'), '--json', '--no-cache', '--kid', '--kid-subsets', '10', '--kid-subset-size', '32'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  const last = JSON.parse(out.trim().split('\n').pop()!) as { fid: number; kid_mean: number };
  assert.ok(rel(last.fid, 679.7413302449413) < 1e-6);
  assert.ok(rel(last.kid_mean, 0.057373241038599865) < 1e-9);
});

test('KID: the kernel table (each pair once) gives the per-subset computation bit for bit, and is chosen when cheaper', () => {
  const rows = (n: number, d: number, seed: number): Float32Array[] => Array.from({ length: n }, (_, i) => new Float32Array(d).map((_, j) => Math.sin(seed + i * 1.7 + j * 0.31)));
  const real = rows(23, 16, 1), fake = rows(19, 16, 2);
  const o = { subsets: 7, subsetSize: 9, seed: 5 };
  const perSubset = kernelInceptionDistance(real, fake, { ...o, kernelTable: false });
  assert.deepEqual(kernelInceptionDistance(real, fake, { ...o, kernelTable: true }), perSubset);
  assert.deepEqual(kernelInceptionDistance(real, fake, o), perSubset);
  assert.ok(Number.isFinite(perSubset.kidMean) && perSubset.kidStd > 0);
});
