/**
 * style-aligned = official StyleAligned on SDXL (google/style-aligned HEAD 2faf0af, style_aligned_transfer_sdxl.ipynb:
 * sa_handler + inversion.py) on tiny-sdxl, golden goldens/tiny-sdxl/style_aligned.*: prompts [source, P1, P2, P3],
 * 8 DDIM steps (steps_offset 0), guidance 10, inversion guidance 2, score shift log 2, scale 1, offset 2,
 * torch.Generator('cpu').manual_seed(10). The golden's row 0 is the reference pinned to the inversion chain; rows
 * 1..3 are what `vary` returns.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { openCheckpoint } from '../src/components/checkpoint.js';
import { readImageRGB } from '../src/io/image.js';
import { SafetensorsFile } from '../src/io/safetensors.js';
import { Graph, type Value } from '../src/graph/ir.js';
import * as op from '../src/graph/ops.js';
import { runOnce } from '../src/graph/session.js';
import { createMethod, type ReferenceMethod } from '../src/methods/index.js';
import { CONCAT, referenceAttentionHooks, sharedGroupNorm, weightFeeds } from '../src/methods/reference-attention.js';
import { plainAttention } from '../src/models/attention.js';
import { TorchGenerator } from '../src/noise/torch-generator.js';
import { invert, type Inversion } from '../src/pipelines/invert.js';
import { schedulerConfigOf, vary, type VaryOptions } from '../src/pipelines/vary.js';
import { rows, maxAbsDiff, type Tensor } from '../src/tensor.js';
import { golden, goldenPath, modelDir } from './helpers.js';

const M = 'tiny-sdxl';
const meta = JSON.parse(fs.readFileSync(goldenPath(M, 'style_aligned.json'), 'utf8')) as {
  settings: {
    src_prompt: string; prompts: string[]; num_inference_steps: number; guidance_scale: number; inversion_guidance_scale: number;
    shared_score_shift: number; shared_score_scale: number; seed: number; offset: number; image_size_hw: [number, number];
  };
};
const s = meta.settings;
const g = golden(M, 'style_aligned');
const steps = s.num_inference_steps, K = s.prompts.length - 1;

function method(): ReferenceMethod {
  return createMethod('style-aligned', steps, { scoreShift: s.shared_score_shift, scoreScale: s.shared_score_scale });
}

/** The golden's inversion chain (official order: most noisy first) as vary's Inversion (z_0 first). */
function goldenInversion(): Inversion {
  const zts = g['inversion.zts']!;
  return { chain: Array.from({ length: steps + 1 }, (_, i) => rows(zts, steps - i)), timesteps: [], noisePreds: [], hSpace: new Map(), promptEmbeds: undefined, conditioning: undefined };
}

async function run(extra: Partial<VaryOptions>): Promise<{ latents: Tensor; guided: Tensor[]; images: Awaited<ReturnType<typeof vary>>['images']; inversion: Inversion }> {
  const ck = openCheckpoint(modelDir(M));
  const guided: Tensor[] = [];
  const r = await vary(ck, {
    reference: await readImageRGB(goldenPath(M, 'style_aligned_input.png')), width: s.image_size_hw[1], height: s.image_size_hw[0],
    method: method(), prompt: s.prompts[1]!, prompts: s.prompts.slice(1), inversionPrompt: s.src_prompt, steps, guidance: s.guidance_scale,
    inversionGuidance: s.inversion_guidance_scale, noise: new TorchGenerator(s.seed), onWarning: () => {},
    // Rows [ref_uncond, gen_uncond x K, ref_cond, gen_cond x K]: the guided prediction of every row, reference first (as the golden).
    onUNetOutput: (_i, layout, np) => {
      const n = layout.length / 2, inner = np.data.length / layout.length;
      const out = new Float32Array(n * inner);
      for (let r = 0; r < n; r++) for (let j = 0; j < inner; j++) {
        const u = np.data[r * inner + j]!, c = np.data[(n + r) * inner + j]!;
        out[r * inner + j] = u + s.guidance_scale * (c - u);
      }
      guided.push({ shape: [n, ...np.shape.slice(1)], data: out });
    },
    ...extra,
  });
  return { latents: r.latents, guided, images: r.images, inversion: r.inversion };
}

test('style-aligned sampling from the official inversion chain = official StyleAligned: every step\'s noise prediction, final latents', async () => {
  const r = await run({ inversion: goldenInversion() });
  let predErr = 0;
  for (let i = 0; i < steps; i++) predErr = Math.max(predErr, maxAbsDiff(rows(r.guided[i]!, 1, K + 1), rows(g[`step_${i}.noise_pred`]!, 1, K + 1)));
  const latErr = maxAbsDiff(r.latents, rows(g.final_latents!, 1, K + 1));
  console.log(`style-aligned from the golden chain: guided noise_pred max abs err ${predErr.toExponential(2)} (values up to ~${Math.max(...g['step_0.noise_pred']!.data.map(Math.abs)).toFixed(1)}), final latents ${latErr.toExponential(2)}`);
  assert.ok(predErr <= 1e-4, `noise_pred ${predErr}`);
  assert.ok(latErr <= 1e-3, `final latents ${latErr}`);
});

test('style-aligned end to end (guided inversion with zero uncond and 1024 time ids, steps_offset 0) = official rows; images within 1 level', async () => {
  // No inversionGuidance: the notebook's 2 is the method's default.
  assert.equal(s.inversion_guidance_scale, 2);
  const r = await run({ inversionGuidance: undefined });
  const zts = g['inversion.zts']!;
  let chainErr = 0;
  for (let i = 0; i <= steps; i++) chainErr = Math.max(chainErr, maxAbsDiff(r.inversion.chain[i]!, rows(zts, steps - i)));
  assert.deepEqual(r.inversion.timesteps, [0, 125, 250, 375, 500, 625, 750, 875], 'official DDIMScheduler: steps_offset 0');
  const latErr = maxAbsDiff(r.latents, rows(g.final_latents!, 1, K + 1));
  const f = SafetensorsFile.open(goldenPath(M, 'style_aligned.safetensors'));
  const want = f.readInts('images_uint8');
  f.close();
  const per = want.data.length / (K + 1);
  let level = 0;
  r.images.forEach((im, k) => { for (let j = 0; j < per; j++) level = Math.max(level, Math.abs(im.data[j]! - want.data[(k + 1) * per + j]!)); });
  console.log(`style-aligned end to end: inversion chain max abs err ${chainErr.toExponential(2)}, final latents ${latErr.toExponential(2)}, images ${level} levels`);
  // The tiny random SDXL UNet amplifies float32 rounding ~90x (see the SDXL inversion test): the contract's 1e-3.
  assert.ok(chainErr <= 1e-3, `inversion chain ${chainErr}`);
  assert.ok(latErr <= 1e-3, `final latents ${latErr}`);
  assert.ok(level <= 1, `images differ by ${level} levels`);
});

test('each official StyleAligned setting matters: without it the rows leave the golden by far more than the tolerance', async () => {
  const base = method();
  const cases: [string, ReferenceMethod][] = [
    ['GroupNorm statistics not shared', { ...base, sharedGroupNorm: false }],
    ['reference row at the step\'s own timestep (no offset pinning)', { ...base, run: { ...base.run, referenceStep: undefined } }],
    ['noise drawn for the generated rows only', { ...base, run: { ...base.run, noiseForReference: false } }],
  ];
  for (const [what, m] of cases) {
    const r = await run({ inversion: goldenInversion(), method: m, onUNetOutput: undefined });
    const d = maxAbsDiff(r.latents, rows(g.final_latents!, 1, K + 1));
    console.log(`${what}: final latents differ by ${d.toExponential(2)}`);
    assert.ok(d > 1e-2, `${what}: only ${d}`);
  }
  // The inversion's hard-coded (1024, 1024, 0, 0, 1024, 1024) time ids and zero unconditional embeddings.
  const ck = openCheckpoint(modelDir(M));
  const z0 = rows(g['inversion.zts']!, steps);
  const inv = (o: object) => invert(ck, z0, { prompt: s.src_prompt, steps, guidance: s.inversion_guidance_scale, schedulerConfig: schedulerConfigOf(ck, base.run!), ...o });
  const official = await inv({ micro: base.run!.inversionMicro, negativePrompt: null });
  const imageSize = await inv({ negativePrompt: null });
  const emptyUncond = await inv({ micro: base.run!.inversionMicro, negativePrompt: '' });
  const zT = rows(g['inversion.zts']!, 0);
  const e = (i: Inversion) => maxAbsDiff(i.chain[steps]!, zT);
  console.log(`z_T: official settings ${e(official).toExponential(2)}, time ids of the image size ${e(imageSize).toExponential(2)}, "" encoded as uncond ${e(emptyUncond).toExponential(2)}`);
  assert.ok(e(official) <= 1e-3);
  assert.ok(e(imageSize) > 1e-2 && e(emptyUncond) > 1e-2);
});

test('style-aligned bad input: one-line errors', () => {
  assert.throws(() => createMethod('style-aligned', 8, { inversionOffset: 8 }), /--inversion-offset must be an integer in \[0, 7\]/);
  assert.throws(() => createMethod('style-aligned', 8, { scoreScale: Number.NaN }), /--score-scale must be a finite number/);
  assert.throws(() => createMethod('style-aligned', 8, { scoreShift: Number.POSITIVE_INFINITY }), /--score-shift must be a finite number/);
});

/** Seeded values in [-2, 2) (deterministic, no golden needed). */
function values(n: number, seed: number): number[] {
  const gen = new TorchGenerator(seed);
  return Array.from(gen.randn([n]), (v) => Math.max(-2, Math.min(2, v)));
}

test('SharedAttentionProcessor by hand: AdaIN\'d q/k (unbiased var + 1e-5 per head channel over tokens), keys [own; scale x ref], shift on the ref logits', async () => {
  // Row 0 = reference (plain attention: the official [k; k] with the shift on the second copy is the same softmax), row 1 attends to it.
  const N = 3, heads = 2, d = 2, C = heads * d, scale = d ** -0.5, scoreScale = 0.5, shift = Math.log(2);
  const q = values(2 * N * C, 1), k = values(2 * N * C, 2), v = values(2 * N * C, 3);
  const at = (x: number[], r: number, t: number, c: number): number => x[(r * N + t) * C + c]!;
  // Official, in float64: adain(feat) over tokens per channel, toward row 0.
  const adain = (x: number[], t: number, c: number): number => {
    const col = (r: number) => Array.from({ length: N }, (_, j) => at(x, r, j, c));
    const stats = (a: number[]) => { const m = a.reduce((p, y) => p + y, 0) / N; return [m, Math.sqrt(a.reduce((p, y) => p + (y - m) ** 2, 0) / (N - 1) + 1e-5)] as const; };
    const [m1, s1] = stats(col(1)), [m0, s0] = stats(col(0));
    return ((at(x, 1, t, c) - m1) / s1) * s0 + m0;
  };
  const want: number[] = [];
  for (let t = 0; t < N; t++) {
    for (let h = 0; h < heads; h++) {
      const cs = Array.from({ length: d }, (_, j) => h * d + j);
      const qa = cs.map((c) => adain(q, t, c));
      const logits = [
        ...Array.from({ length: N }, (_, j) => cs.reduce((p, c, i) => p + qa[i]! * adain(k, j, c), 0) * scale),
        ...Array.from({ length: N }, (_, j) => cs.reduce((p, c, i) => p + qa[i]! * scoreScale * at(k, 0, j, c), 0) * scale + shift),
      ];
      const mx = Math.max(...logits), e = logits.map((l) => Math.exp(l - mx)), z = e.reduce((p, y) => p + y, 0);
      for (const c of cs) want.push(e.reduce((p, w, j) => p + (w / z) * (j < N ? at(v, 1, j, c) : at(v, 0, j - N, c)), 0));
    }
  }
  const g = new Graph();
  const [qi, ki, vi] = ['q', 'k', 'v'].map((n) => g.input(n, [2, N, C])) as [Value, Value, Value];
  const hooks = referenceAttentionHooks(g, { referenceOf: [null, 0], layer: () => true, queryKeyAdain: true, scoreShift: shift, scoreScale });
  const plain = (a: Value, b: Value, c: Value): Value => plainAttention(a, b, c, heads, scale);
  g.output('y', hooks.attention!({ path: 'x.attn1', kind: 'attn1', q: qi, k: ki, v: vi, heads, scale, plain })!);
  const t3 = (x: number[]) => ({ shape: [2, N, C], data: Float32Array.from(x) });
  const y = (await runOnce(g, { q: t3(q), k: t3(k), v: t3(v), ...weightFeeds([CONCAT]) })).y!;
  const got = Array.from(y.data.subarray(N * C));
  const err = Math.max(...got.map((x, i) => Math.abs(x - want[i]!)));
  assert.ok(err < 2e-6, `shared attention row: ${err}\n got ${got}\nwant ${want}`);
});

test('shared GroupNorm by hand: the row\'s group statistics over [own; reference] along H (biased variance), its reference\'s alone', async () => {
  const B = 2, Cc = 4, H = 2, W = 3, G = 2, eps = 1e-5;
  const x = values(B * Cc * H * W, 4).map((v, i) => v + (i < Cc * H * W ? 0 : 1.5)); // row 1 shifted: shared stats differ from its own
  const g = new Graph();
  const xi = g.input('x', [B, Cc, H, W]);
  // The layer without affine: (x - mean) / sqrt(var + eps) per (row, group).
  const norm = (v: Value): Value => {
    const gr = op.reshape(v, [v.dim(0), G, -1]);
    const c = op.sub(gr, op.reduceMean(gr, [-1]));
    return op.reshape(op.div(c, op.sqrt(op.add(op.reduceMean(op.mul(c, c), [-1]), eps))), v.shape);
  };
  g.output('y', sharedGroupNorm([null, 0])({ path: 'conv_norm_out', x: xi, norm })!);
  const y = (await runOnce(g, { x: { shape: [B, Cc, H, W], data: Float32Array.from(x) } })).y!;
  const per = (Cc / G) * H * W;
  let err = 0;
  for (let r = 0; r < B; r++) for (let gi = 0; gi < G; gi++) {
    const own = x.slice(r * Cc * H * W + gi * per, r * Cc * H * W + (gi + 1) * per), ref = x.slice(gi * per, (gi + 1) * per);
    const pool = r === 0 ? own : [...own, ...ref];
    const m = pool.reduce((p, v) => p + v, 0) / pool.length, sd = Math.sqrt(pool.reduce((p, v) => p + (v - m) ** 2, 0) / pool.length + eps);
    own.forEach((v, j) => { err = Math.max(err, Math.abs(y.data[r * Cc * H * W + gi * per + j]! - (v - m) / sd)); });
  }
  assert.ok(err < 2e-6, `shared GroupNorm: ${err}`);
});
