/**
 * Visual Concept Fusion generation (src/pipelines/fuse.ts) on a stand-in checkpoint, no model runs: the aligner
 * applied to the reference's image tokens (LayerNorm -> fc1 -> ReLU -> fc2 written out in float64), the fused
 * conditioning each UNet call gets (concat [T; Yh] / [T(""); 0], average (T + mean Yh) / 2), the prompts, the
 * defaults (50 DDIM steps, guidance 7.5, one image, the UNet's sample size), and the final latents against
 * textToImage run here with the hand-fused embeddings; the Prompt-Noise Optimization refusals. Milliseconds (the
 * pipelines mutation slice's fast file for fuse.ts; fuse.test / pno.test run PNO itself on the tiny models).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Checkpoint } from '../src/components/checkpoint.js';
import { PromptEmbeddings } from '../src/components/prompt-conditioner.js';
import { FileFormatError, InputError } from '../src/errors.js';
import type { RGBImage } from '../src/io/image.js';
import { readAllFloat32, writeSafetensors } from '../src/io/safetensors.js';
import type { Value } from '../src/graph/ir.js';
import * as op from '../src/graph/ops.js';
import { TorchGenerator } from '../src/noise/torch-generator.js';
import { alignedImageTokens, fuseGenerate, type FuseOptions } from '../src/pipelines/fuse.js';
import { textToImage } from '../src/pipelines/text-to-image.js';
import type { Tensor } from '../src/tensor.js';

// Euler is the model's own scheduler: fuse must ask for DDIM by name.
const EULER = { _class_name: 'EulerDiscreteScheduler', num_train_timesteps: 1000, beta_start: 0.00085, beta_end: 0.012, beta_schedule: 'scaled_linear', steps_offset: 1 };
const DV = 4, DT = 2, L = 2;
// Each prompt's token embeddings [L, DT].
const TEXT = new Map<string | null, number[]>([[null, [0, 0, 0, 0]], ['', [0.1, -0.1, 0.2, 0]], ['a cat', [1, 2, -1, 0.5]], ['blurry', [-2, 1, 0.3, 0.7]]]);

interface Call { t: number; rows: number; context: number[][] }

function ck(calls: Call[], o: { texts?: (string | null)[][]; encoded?: RGBImage[]; clipSample?: boolean } = {}): Checkpoint {
  const unet = {
    conditional: true, inChannels: 1, sampleSize: 2, embedsGuidance: false, config: { addition: null, crossAttentionDim: DT },
    guidanceCond: () => undefined,
    async run(a: { sample: Tensor; timestep: number; encoderHiddenStates: Tensor }) {
      const b = a.sample.shape[0]!, n = a.sample.data.length / b, m = a.encoderHiddenStates.data.length / b;
      const ctx = Array.from({ length: b }, (_, r) => Array.from(a.encoderHiddenStates.data.subarray(r * m, (r + 1) * m)));
      calls.push({ t: a.timestep, rows: b, context: ctx });
      // eps_r = 0.1 x + 0.01 sum_j (j + 1) ctx_r[j]: every token value of the row matters
      const e = ctx.map((row) => row.reduce((s, v, j) => s + 0.01 * (j + 1) * v, 0));
      return { noisePred: { shape: a.sample.shape, data: Float32Array.from(a.sample.data, (x, j) => 0.1 * x + e[Math.floor(j / n)]!) }, extra: {} };
    },
  };
  const vae = { scaleFactor: 8, config: { scalingFactor: 0.18215 }, async decode(t: Tensor) { return { shape: [1, 3, t.shape[2]! * 8, t.shape[3]! * 8], data: new Float32Array(3 * 64 * t.shape[2]! * t.shape[3]!).fill(t.data[0]! > 0 ? 0.5 : -0.5) }; } };
  const conditioner = {
    async encode(texts: (string | null)[]) {
      o.texts?.push(texts);
      return new PromptEmbeddings({ shape: [texts.length, L, DT], data: Float32Array.from(texts.flatMap((s) => TEXT.get(s)!)) }, undefined, ['cut'], null);
    },
  };
  const imageEncoder = {
    id: 'stand-in', config: { hiddenSize: DV },
    // three tokens of DV values from the image's first 12 bytes
    async encode(images: RGBImage[]) { o.encoded?.push(...images); return { lastHiddenState: { shape: [1, 3, DV], data: Float32Array.from(images[0]!.data.subarray(0, 12), (v) => v / 64 - 2) } }; },
  };
  return {
    path: 'stand-in', unet: () => unet, vae: () => vae, autoencoder: () => vae, conditioner: () => conditioner, imageEncoder: () => imageEncoder,
    release: async () => {}, schedulerConfig: () => ({ raw: { ...EULER, clip_sample: o.clipSample ?? false }, file: 'scheduler_config.json' }),
  } as unknown as Checkpoint;
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vp-fuse-loop-'));
interface Aligner { file: string; w1: number[][]; b1: number[]; w2: number[][]; b2: number[]; nw: number[]; nb: number[] }
function aligner(hidden: number, dt = DT, seed = 1): Aligner {
  const v = (i: number) => Math.fround(Math.sin(seed * 7 + i * 1.3) * 0.8);
  let k = 0;
  const mat = (r: number, c: number) => Array.from({ length: r }, () => Array.from({ length: c }, () => v(k++)));
  const vec = (n: number, base = 0) => Array.from({ length: n }, () => base + v(k++));
  const a = { nw: vec(DV, 1).map(Math.fround), nb: vec(DV), w1: mat(hidden, DV), b1: vec(hidden), w2: mat(dt, hidden), b2: vec(dt) };
  const file = path.join(tmp, `aligner-${hidden}-${dt}-${seed}.safetensors`);
  const t = (shape: number[], d: number[]) => ({ shape, data: Float32Array.from(d) });
  writeSafetensors(file, {
    'norm.weight': t([DV], a.nw), 'norm.bias': t([DV], a.nb), 'fc1.weight': t([hidden, DV], a.w1.flat()), 'fc1.bias': t([hidden], a.b1),
    'fc2.weight': t([dt, hidden], a.w2.flat()), 'fc2.bias': t([dt], a.b2),
  });
  return { file, ...a };
}

/** The aligner by hand (float64): per token LayerNorm(eps 1e-5, biased variance) -> fc1 -> ReLU -> fc2. */
function alignByHand(a: Aligner, tokens: number[][]): number[][] {
  return tokens.map((y) => {
    const m = y.reduce((s, v) => s + v, 0) / y.length;
    const vr = y.reduce((s, v) => s + (v - m) ** 2, 0) / y.length;
    const n = y.map((v, i) => ((v - m) / Math.sqrt(vr + 1e-5)) * a.nw[i]! + a.nb[i]!);
    const h = a.w1.map((row, j) => Math.max(0, row.reduce((s, w, i) => s + w * n[i]!, a.b1[j]!)));
    return a.w2.map((row, j) => row.reduce((s, w, i) => s + w * h[i]!, a.b2[j]!));
  });
}

const REF: RGBImage = { width: 4, height: 4, data: Uint8Array.from({ length: 48 }, (_, i) => (i * 53 + 17) % 256) } as RGBImage;
const tokensOf = (im: RGBImage) => Array.from({ length: 3 }, (_, r) => Array.from(im.data.subarray(r * DV, (r + 1) * DV), (v) => Math.fround(v / 64 - 2)));

function near(got: ArrayLike<number>, want: ArrayLike<number>, tol: number, what: string): void {
  assert.equal(got.length, want.length, `${what}: length`);
  for (let i = 0; i < want.length; i++) assert.ok(Math.abs(got[i]! - want[i]!) <= tol, `${what}[${i}]: ${got[i]} vs ${want[i]}`);
}

test('alignedImageTokens: the aligner file applied to the reference\'s image tokens (by hand); a second aligner of another width; misfit refused', async () => {
  const encoded: RGBImage[] = [];
  for (const [hidden, seed] of [[3, 1], [5, 2], [3, 3]] as const) {
    const a = aligner(hidden, DT, seed);
    const yh = await alignedImageTokens(ck([], { encoded }), a.file, REF);
    assert.deepEqual(yh.shape, [1, 3, DT]);
    near(yh.data, alignByHand(a, tokensOf(REF)).flat(), 2e-5, `aligned tokens (hidden ${hidden}, seed ${seed})`);
  }
  assert.equal(encoded.length, 3);
  assert.equal(encoded[0], REF);
  // an aligner for 3-dim text embeddings does not fit this UNet's 2-dim cross-attention
  await assert.rejects(alignedImageTokens(ck([]), aligner(3, 3).file, REF), (e: unknown) => e instanceof FileFormatError
    && e.message.includes('aligner maps 4-dim image tokens to 3-dim text embeddings, but this model has 4-dim image tokens and 2-dim text embeddings'));
});

const lat = (k: number, h = 2, w = 2): Tensor => ({ shape: [k, 1, h, w], data: Float32Array.from({ length: k * h * w }, (_, j) => Math.cos(1 + 2 * j)) });

test('fuseGenerate without PNO: concat / average conditioning of every call, prompts, options, final latents as textToImage with the hand-fused embeddings', async () => {
  const a = aligner(3);
  const yh = alignByHand(a, tokensOf(REF));
  const T = (s: string | null) => TEXT.get(s)!;
  for (const fusion of [undefined, 'concat', 'average'] as const) {
    const calls: Call[] = [], texts: (string | null)[][] = [];
    const o: FuseOptions = { aligner: a.file, reference: REF, prompt: 'a cat', negativePrompt: 'blurry', steps: 3, guidance: 4, numImages: 2, latents: lat(2, 2, 3), width: 24, height: 16, ...(fusion ? { fusion } : {}) };
    const r = await fuseGenerate(ck(calls, { texts }), o);
    assert.deepEqual(texts, [['a cat', 'blurry']]);
    // c and u as the fusion defines them (concat: [T; Yh] and [T_u; 0]; average: (T + mean Yh) / 2 and T_u)
    const c = fusion === 'average'
      ? T('a cat').map((v, i) => (v + (yh[0]![i % DT]! + yh[1]![i % DT]! + yh[2]![i % DT]!) / 3) / 2)
      : [...T('a cat'), ...yh.flat()];
    const u = fusion === 'average' ? T('blurry') : [...T('blurry'), ...new Array(3 * DT).fill(0)];
    assert.equal(calls.length, 3);
    for (const call of calls) {
      assert.equal(call.rows, 4);
      near(call.context.flat(), [...u, ...u, ...c, ...c], 2e-5, `${fusion} conditioning at t ${call.t}`);
    }
    const emb = (d: number[]) => ({ shape: [1, d.length / DT, DT], data: Float32Array.from(d) });
    const want = await textToImage(ck([]), { scheduler: 'ddim', prompt: 'a cat', steps: 3, guidance: 4, numImages: 2, latents: lat(2, 2, 3), width: 24, height: 16,
      embeddings: { cond: new PromptEmbeddings(emb(c), undefined, [], null), uncond: new PromptEmbeddings(emb(u), undefined, [], null) } });
    assert.deepEqual(calls.map((x) => x.t), [667, 334, 1], 'DDIM timesteps (the model names Euler)');
    near(r.latents.data, want.latents.data, 1e-5, `${fusion} final latents`);
    assert.deepEqual(r.latents.shape, [2, 1, 2, 3]);
    assert.equal(r.images.length, 2);
    assert.deepEqual([r.images[0]!.width, r.images[0]!.height], [24, 16]);
    assert.deepEqual(r.truncatedPrompts, ['cut']);
    assert.deepEqual(r.pnoLosses, []);
  }
});

test('fuseGenerate defaults: 50 DDIM steps, guidance 7.5, one image at the UNet\'s sample size from the seed, negative prompt null, progress', async () => {
  const a = aligner(3);
  const calls: Call[] = [], texts: (string | null)[][] = [], stages = new Set<string>();
  const r = await fuseGenerate(ck(calls, { texts }), { aligner: a.file, reference: REF, prompt: 'a cat', noise: new TorchGenerator(11), pnoSteps: 0, onProgress: (e) => stages.add(e.stage) });
  assert.deepEqual(texts, [['a cat', null]]);
  assert.equal(calls.length, 50);
  assert.equal(calls[0]!.rows, 2);
  const yh = alignByHand(a, tokensOf(REF));
  const c = [...TEXT.get('a cat')!, ...yh.flat()], u = [...TEXT.get(null)!, ...new Array(3 * DT).fill(0)];
  const emb = (d: number[]) => ({ shape: [1, d.length / DT, DT], data: Float32Array.from(d) });
  const want = await textToImage(ck([]), { scheduler: 'ddim', prompt: 'a cat', steps: 50, guidance: 7.5, latents: { shape: [1, 1, 2, 2], data: new TorchGenerator(11).randn([1, 1, 2, 2]) },
    embeddings: { cond: new PromptEmbeddings(emb(c), undefined, [], null), uncond: new PromptEmbeddings(emb(u), undefined, [], null) } });
  assert.deepEqual(r.latents.shape, [1, 1, 2, 2]);
  near(r.latents.data, want.latents.data, 1e-5, 'default final latents');
  assert.deepEqual([r.images.length, r.images[0]!.width, r.images[0]!.height], [1, 16, 16]);
  assert.ok(stages.has('denoise') && stages.has('decode'), [...stages].join(' '));
  // the signal reaches the sampling
  const ac = new AbortController();
  const c2: Call[] = [];
  await assert.rejects(fuseGenerate(ck(c2), { aligner: a.file, reference: REF, prompt: 'a cat', noise: new TorchGenerator(1), steps: 4, signal: ac.signal, onProgress: (e) => { if (e.stage === 'denoise' && e.step === 1) ac.abort(); } }),
    (e: unknown) => e instanceof Error && e.name === 'AbortError');
  assert.equal(c2.length, 2, 'stops at the next step boundary');
});

test('fuseGenerate warns when the aligner was trained on another clip skip (its clip_skip metadata), not when they match or the file predates it', async () => {
  const a = aligner(3);
  const skip1 = path.join(tmp, 'aligner-skip1.safetensors');
  writeSafetensors(skip1, readAllFloat32(a.file), { clip_skip: '1' });
  const warnings = async (file: string, clipSkip?: number): Promise<string[]> => {
    const seen: string[] = [];
    await fuseGenerate(ck([]), { aligner: file, reference: REF, prompt: 'a cat', steps: 1, latents: lat(1), ...(clipSkip === undefined ? {} : { clipSkip }), onWarning: (m) => seen.push(m) });
    return seen;
  };
  assert.deepEqual(await warnings(skip1), [`${skip1} was trained on text states with clip skip 1, this run uses 0 (train-aligner --clip-skip 0, or fuse --clip-skip 1)`]);
  assert.deepEqual(await warnings(skip1, 1), []);
  assert.deepEqual(await warnings(a.file, 2), []);
});

test('fuseGenerate: --pno-steps and guidance refusals before any sampling; a scheduler that clips samples is refused by PNO', async () => {
  const a = aligner(3);
  for (const pnoSteps of [-1, 1.5, Number.NaN]) {
    const texts: (string | null)[][] = [];
    await assert.rejects(fuseGenerate(ck([], { texts }), { aligner: a.file, reference: REF, prompt: 'a cat', noise: new TorchGenerator(1), pnoSteps }),
      (e: unknown) => e instanceof InputError && e.message === `--pno-steps must be an integer >= 0, got ${pnoSteps}`);
    assert.equal(texts.length, 0, 'refused before encoding');
  }
  for (const guidance of [1, 0.5]) {
    const calls: Call[] = [];
    await assert.rejects(fuseGenerate(ck(calls), { aligner: a.file, reference: REF, prompt: 'a cat', noise: new TorchGenerator(1), pnoSteps: 1, guidance, steps: 2 }),
      (e: unknown) => e instanceof InputError && e.message === 'Prompt-Noise Optimization runs with classifier-free guidance (--guidance > 1)');
    assert.equal(calls.length, 0);
  }
  // PNO on: the reference features go through the given tower, then PNO refuses a scheduler that clips samples
  let built = 0;
  const tower = { id: 'stand-in-tower', imageSize: 2, mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25], features: (px: Value) => { built++; assert.deepEqual(px.shape, [1, 3, 2, 2]); return op.reduceMean(px, [2, 3], false); } };
  const calls: Call[] = [];
  await assert.rejects(fuseGenerate(ck(calls, { clipSample: true }), { aligner: a.file, reference: REF, prompt: 'a cat', noise: new TorchGenerator(1), pnoSteps: 2, guidance: 1.5, steps: 2, tower }),
    (e: unknown) => e instanceof InputError && e.message === '--pno-steps: Prompt-Noise Optimization differentiates through DDIM steps without sample clipping; scheduler_config.json has clip_sample true (expected false)');
  assert.equal(built, 1);
  assert.equal(calls.length, 0);
});
