/**
 * The text-to-image sampling loop (src/pipelines/text-to-image.ts) with a stand-in checkpoint whose UNet is a
 * known function of each row (eps_r = 0.1 x_r + 0.02 E(text_r)): rows [uncond x K, cond x K] (or [cond x K]),
 * what each row is conditioned on, init-noise scaling and model-input scaling of the chosen scheduler, eta and
 * its noise, per-step variants, the pixel-space path, progress, and the one-line errors; final latents against a
 * loop written here with a scheduler of its own. No model runs (the pipelines mutation slice's fast file for it).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Checkpoint } from '../src/components/checkpoint.js';
import { PromptEmbeddings } from '../src/components/prompt-conditioner.js';
import { InputError } from '../src/errors.js';
import { configureEngine } from '../src/graph/session.js';
import { repeatRows, samplesToImages } from '../src/pipelines/common.js';
import type { ProgressEvent } from '../src/pipelines/progress.js';
import { scaleByInitNoiseSigma, textToImage, type TextToImageOptions } from '../src/pipelines/text-to-image.js';
import { createScheduler } from '../src/schedulers/index.js';
import type { Sampler } from '../src/schedulers/sampler.js';
import { TorchGenerator } from '../src/noise/torch-generator.js';
import type { Tensor } from '../src/tensor.js';

const CONFIG = { _class_name: 'DDIMScheduler', num_train_timesteps: 1000, beta_start: 0.00085, beta_end: 0.012, beta_schedule: 'scaled_linear', clip_sample: false, set_alpha_to_one: false, steps_offset: 1 };
const E = new Map<string | null, number>([[null, -1], ['', 0], ['a', 3], ['neg', 7]]);
const N = 4; // [K, 1, 2, 2]: 16 x 16 images at factor 8
const f = Math.fround;

interface Call { sample: number[][]; timestep: number; context: number[]; key: string; feeds: string[]; timestepCond?: number[] }

function fakeCheckpoint(calls: Call[], o: { conditional?: boolean; embedsGuidance?: boolean; nan?: boolean; decoded?: Tensor[]; vaeNan?: boolean; released?: string[]; encodeOpts?: unknown[] } = {}): Checkpoint {
  const conditional = o.conditional ?? true;
  const unet = {
    conditional, inChannels: conditional ? 1 : 3, sampleSize: conditional ? 2 : 4, embedsGuidance: o.embedsGuidance ?? false, config: { addition: null },
    guidanceCond: (g: number, b: number): Tensor | undefined => (o.embedsGuidance ? { shape: [b, 1], data: new Float32Array(b).fill(g) } : undefined),
    async run(a: { sample: Tensor; timestep: number; encoderHiddenStates?: Tensor; timestepCond?: Tensor; variant?: { key: string }; feeds?: Record<string, Tensor> }) {
      const b = a.sample.shape[0]!, n = a.sample.data.length / b;
      calls.push({
        sample: Array.from({ length: b }, (_, r) => Array.from(a.sample.data.subarray(r * n, (r + 1) * n))), timestep: a.timestep,
        context: a.encoderHiddenStates ? Array.from(a.encoderHiddenStates.data) : [], key: a.variant?.key ?? '', feeds: Object.keys(a.feeds ?? {}).sort(),
        ...(a.timestepCond ? { timestepCond: Array.from(a.timestepCond.data) } : {}),
      });
      const e = (r: number): number => (a.encoderHiddenStates ? a.encoderHiddenStates.data[r]! : 1);
      return { noisePred: { shape: a.sample.shape, data: Float32Array.from(a.sample.data, (x, j) => (o.nan ? Number.NaN : 0.1 * x + 0.02 * e(Math.floor(j / n)))) }, extra: {} };
    },
  };
  const vae = { scaleFactor: 8, async decode(t: Tensor) { o.decoded?.push(t); return { shape: [1, 3, 16, 16], data: new Float32Array(768).fill(o.vaeNan ? Number.NaN : t.data[0]! > 0 ? 0.5 : -0.5) }; } };
  const conditioner = {
    async encode(texts: (string | null)[], opts: unknown) {
      o.encodeOpts?.push(opts);
      return new PromptEmbeddings({ shape: [texts.length, 1, 1], data: Float32Array.from(texts.map((t) => { assert.ok(E.has(t), `text ${t}`); return E.get(t)!; })) }, undefined, ['cut'], null);
    },
  };
  return { unet: () => unet, autoencoder: () => vae, conditioner: () => conditioner, release: async (c: string) => { o.released?.push(c); }, schedulerConfig: () => ({ raw: CONFIG, file: 'scheduler_config.json' }) } as unknown as Checkpoint;
}

const lat = (k: number, seed = 0, n = N): Tensor => ({ shape: n === N ? [k, 1, 2, 2] : [k, 3, 4, 4], data: Float32Array.from({ length: k * n }, (_, j) => Math.sin(2 + j + seed)) });

/** The loop written out: x = x_T * init sigma; eps from the rows' conditioning; CFG in float32 steps. */
function expectRun(calls: Call[], got: Tensor, o: { latents: Tensor; scheduler: Sampler; rowsE: number[]; guidance: number; eta?: number; noise?: TorchGenerator; steps: number }): void {
  const s = o.scheduler;
  s.setTimesteps(o.steps);
  const k = o.latents.shape[0]!, n = o.latents.data.length / k;
  let x: Float32Array = Float32Array.from(o.latents.data, (v) => (s.initNoiseSigma === 1 ? v : v * f(s.initNoiseSigma)));
  const cfg = o.rowsE.length === 2 * k;
  assert.equal(calls.length, s.timesteps.length);
  s.timesteps.forEach((t, i) => {
    const c = calls[i]!;
    const scaled = s.scaleModelInput(x, t);
    const rowsIn = Array.from({ length: o.rowsE.length }, (_, r) => Array.from(scaled.subarray((r % k) * n, (r % k + 1) * n)));
    assert.equal(c.timestep, t);
    assert.deepEqual(c.sample, rowsIn, `step ${i} rows`);
    if (c.context.length) assert.deepEqual(c.context, o.rowsE, `step ${i} conditioning`);
    const pred = rowsIn.map((row, r) => row.map((v) => f(0.1 * v + 0.02 * (o.rowsE[r] ?? 1))));
    const eps = Float32Array.from({ length: k * n }, (_, j) => {
      const r = Math.floor(j / n), q = j % n;
      return cfg ? f(pred[r]![q]! + f(f(o.guidance) * f(pred[k + r]![q]! - pred[r]![q]!))) : pred[r]![q]!;
    });
    x = s.step(eps, t, x, { eta: o.eta ?? 0, noise: o.noise }).prevSample;
  });
  const err = Math.max(...Array.from(x, (v, j) => Math.abs(v - got.data[j]!)));
  assert.ok(err < 1e-6, `final latents ${err}`);
}

async function run(o: Partial<TextToImageOptions>, ck?: Checkpoint, calls: Call[] = []) {
  const r = await textToImage(ck ?? fakeCheckpoint(calls), { prompt: 'a', steps: 3, ...o });
  return { r, calls };
}

test('text-to-image loop: [uncond x K, cond x K] rows, negative prompt / null, guided DDIM (eta and its noise), progress and step hooks', async () => {
  const latents = lat(2);
  const events: string[] = [], ends: number[] = [];
  const { r, calls } = await run({ negativePrompt: 'neg', guidance: 5, numImages: 2, latents, onProgress: (e: ProgressEvent) => events.push(`${e.stage} ${e.step}/${e.total}`), onStepEnd: (i, t) => ends.push(i, t) });
  expectRun(calls, r.latents, { latents, scheduler: createScheduler(undefined, { raw: CONFIG, file: 'x' }), rowsE: [7, 7, 3, 3], guidance: 5, steps: 3 });
  assert.deepEqual(events, ['encode 0/1', 'encode 1/1', 'denoise 0/3', 'denoise 1/3', 'denoise 2/3', 'denoise 3/3', 'decode 0/2', 'decode 1/2', 'decode 2/2']);
  assert.deepEqual(ends, [0, 667, 1, 334, 2, 1]);
  assert.equal(r.images.length, 2);
  assert.deepEqual(r.truncatedPrompts, ['cut']);
  // default guidance 7.5, no negative prompt: null; eta 1 draws the step noise from the given source
  const eta = await run({ latents: lat(1, 1), eta: 1, noise: new TorchGenerator(3) });
  expectRun(eta.calls, eta.r.latents, { latents: lat(1, 1), scheduler: createScheduler(undefined, { raw: CONFIG, file: 'x' }), rowsE: [-1, 3], guidance: 7.5, eta: 1, noise: new TorchGenerator(3), steps: 3 });
  // one image at a time through the VAE, diffusers' postprocess: (x / 2 + 0.5) * 255 rounded
  const decoded: Tensor[] = [];
  const d = await run({ latents: lat(2, 2), guidance: 1, numImages: 2 }, fakeCheckpoint([], { decoded }));
  assert.deepEqual(decoded.map((t) => [t.shape, Array.from(t.data)]), [0, 1].map((r) => [[1, 1, 2, 2], Array.from(d.r.latents.data.subarray(r * N, (r + 1) * N))]));
  assert.deepEqual(d.r.images.map((im) => [im.width, im.height, im.data[0]]), decoded.map((t) => [16, 16, t.data[0]! > 0 ? 191 : 64]));
  await assert.rejects(run({ latents: lat(1) }, fakeCheckpoint([], { vaeNan: true })),
    (e: unknown) => e instanceof InputError && e.message === 'the VAE produced NaN or infinite pixels (check the VAE weights; fp16-only VAEs overflow)');
  // latentsOnly: no decode
  assert.deepEqual((await run({ latents: lat(1), latentsOnly: true })).r.images, []);
});

test('text-to-image loop: guidance <= 1 and guidance-embedding UNets run [cond x K]; Euler scales init noise and model input; embeddings given directly', async () => {
  const g1 = await run({ guidance: 1, numImages: 2, latents: lat(2, 4) });
  expectRun(g1.calls, g1.r.latents, { latents: lat(2, 4), scheduler: createScheduler(undefined, { raw: CONFIG, file: 'x' }), rowsE: [3, 3], guidance: 1, steps: 3 });
  const lcm = await run({ guidance: 6, latents: lat(1, 5) }, fakeCheckpoint([], { embedsGuidance: true }));
  assert.equal(lcm.r.latents.shape[0], 1);
  const lcmCalls: Call[] = [];
  await run({ guidance: 6, latents: lat(1, 5) }, fakeCheckpoint(lcmCalls, { embedsGuidance: true }));
  assert.deepEqual(lcmCalls.map((c) => [c.sample.length, c.timestepCond]), [[1, [6]], [1, [6]], [1, [6]]], 'one row, w embedded');
  const eu = await run({ scheduler: 'euler', guidance: 2, latents: lat(1, 6) });
  const euler = createScheduler('euler', { raw: CONFIG, file: 'x' });
  euler.setTimesteps(3);
  assert.ok(euler.initNoiseSigma > 1);
  expectRun(eu.calls, eu.r.latents, { latents: lat(1, 6), scheduler: euler, rowsE: [-1, 3], guidance: 2, steps: 3 });
  const tr = await run({ timestepSpacing: 'trailing', latents: lat(1), guidance: 1 });
  assert.deepEqual(tr.calls.map((c) => c.timestep), [999, 666, 332]); // np.arange(1000, 0, -1000 / 3).round() - 1
  const emb = await run({ embeddings: { cond: { shape: [1, 1, 1], data: Float32Array.of(3) }, uncond: { shape: [1, 1, 1], data: Float32Array.of(7) } }, guidance: 4, numImages: 2, latents: lat(2, 7) });
  expectRun(emb.calls, emb.r.latents, { latents: lat(2, 7), scheduler: createScheduler(undefined, { raw: CONFIG, file: 'x' }), rowsE: [7, 7, 3, 3], guidance: 4, steps: 3 });
  const emb1 = await run({ embeddings: { cond: { shape: [1, 1, 1], data: Float32Array.of(0) }, uncond: { shape: [1, 1, 1], data: Float32Array.of(7) } }, guidance: 1, latents: lat(1) });
  assert.deepEqual(emb1.calls[0]!.context, [0]);
  // no latents: drawn from the noise source at the model's sample size
  const drawn = await run({ noise: new TorchGenerator(9), guidance: 1 });
  const z = new TorchGenerator(9).randn([1, 1, 2, 2]);
  assert.deepEqual(drawn.calls[0]!.sample, [Array.from(z)]);
});

test('text-to-image loop: per-step variants and feeds, pixel-space models (no text, samples as images), scaleByInitNoiseSigma', async () => {
  const variantForStep = (i: number) => (i === 1 ? undefined : { variant: { key: `v${i}`, hooks: () => ({}) }, feeds: { [`f${i}`]: { shape: [1], data: Float32Array.of(i) } } });
  const v = await run({ latents: lat(1), variantForStep });
  assert.deepEqual(v.calls.map((c) => [c.key, c.feeds]), [['v0', ['f0']], ['', []], ['v2', ['f2']]]);
  const px: Call[] = [];
  const p = await run({ latents: lat(1, 0, 48), guidance: 7.5 }, fakeCheckpoint(px, { conditional: false }));
  assert.deepEqual(px.map((c) => [c.sample.length, c.context.length]), [[1, 0], [1, 0], [1, 0]], 'no CFG, no text');
  expectRun(px, p.r.latents, { latents: lat(1, 0, 48), scheduler: createScheduler(undefined, { raw: CONFIG, file: 'x' }), rowsE: [1], guidance: 7.5, steps: 3 }); // the stand-in's E = 1 without text
  assert.equal(p.r.images.length, 1);
  assert.deepEqual([p.r.images[0]!.width, p.r.images[0]!.height], [4, 4]);
  await assert.rejects(run({ latents: lat(1, 0, 48), controls: [{ net: { id: 'c' } as never, image: { shape: [1, 3, 4, 4], data: new Float32Array(48) }, scale: 1 }] }, fakeCheckpoint([], { conditional: false })),
    (e: unknown) => e instanceof InputError && e.message === 'ControlNets need a text-conditioned model (Stable Diffusion), not a pixel-space UNet2DModel');
  const t: Tensor = { shape: [1, 2], data: Float32Array.of(1.5, -2) };
  assert.equal(scaleByInitNoiseSigma(t, 1), t);
  assert.deepEqual(Array.from(scaleByInitNoiseSigma(t, 14.6).data), [f(1.5 * f(14.6)), f(-2 * f(14.6))]);
});

test('text-to-image loop: one-line errors', async () => {
  const err = (p: Promise<unknown>, message: string) => assert.rejects(p, (e: unknown) => e instanceof InputError && e.message === message, message);
  await err(run({ numImages: 0 }), '--num-images must be an integer >= 1, got 0');
  await err(run({ numImages: 2.5 }), '--num-images must be an integer >= 1, got 2.5');
  await err(run({ steps: 0 }), '--steps must be an integer >= 1, got 0');
  await err(run({ steps: 1.5 }), '--steps must be an integer >= 1, got 1.5');
  await err(run({ guidance: Number.NaN }), '--guidance must be a number, got NaN');
  await err(run({ latents: lat(1) }, fakeCheckpoint([], { nan: true })), 'sampling produced NaN or infinite latents (check the model weights and --guidance)');
  await err(run({ latents: lat(2) }), '--latents has shape [2, 1, 2, 2] but this run needs [1, 1, 2, 2]');
  await err(run({}), 'no initial latents and no noise source (give --latents or --seed)');
  await err(run({ width: 20, latents: lat(1) }), '--width 20 is not divisible by 8 (the VAE\'s downsampling factor); try 16');
  await err(run({ height: 4, latents: lat(1) }), '--height must be a positive integer of at least 8, got 4');
  await err(run({ width: 16.5, latents: lat(1) }), '--width must be a positive integer of at least 8, got 16.5');
  await err(run({ height: 12, latents: lat(1) }), '--height 12 is not divisible by 8 (the VAE\'s downsampling factor); try 8');
});

test('text-to-image loop: encoder options, one step, truncation only from encoding, low-memory releases, control image size; repeatRows, samplesToImages', async () => {
  const encodeOpts: unknown[] = [];
  await run({ latents: lat(1), negativePrompt2: 'n2', prompt2: 'p2', clipSkip: 2 }, fakeCheckpoint([], { encodeOpts }));
  await run({ latents: lat(1), prompt2: 'p2', guidance: 1 }, fakeCheckpoint([], { encodeOpts }));
  assert.deepEqual(encodeOpts, [{ clipSkip: 2, prompts2: ['n2', 'p2'] }, { clipSkip: undefined, prompts2: ['p2'] }]);
  const one = await run({ latents: lat(1), steps: 1 });
  assert.equal(one.calls.length, 1);
  const emb = await run({ embeddings: { cond: { shape: [1, 1, 1], data: Float32Array.of(3) }, uncond: { shape: [1, 1, 1], data: Float32Array.of(7) } }, latents: lat(1) });
  assert.deepEqual(emb.r.truncatedPrompts, []);
  const released: string[] = [];
  configureEngine({ lowMemory: true });
  try { await run({ latents: lat(1) }, fakeCheckpoint([], { released })); } finally { configureEngine({ lowMemory: false }); }
  assert.deepEqual(released, ['text_encoder', 'text_encoder_2', 'unet']);
  // a control image tensor must be at the output size (16 x 16 pixels here)
  await assert.rejects(run({ latents: lat(1), controls: [{ net: { id: 'c' } as never, image: { shape: [1, 3, 2, 2], data: new Float32Array(12) }, scale: 1 }] }),
    (e: unknown) => e instanceof InputError && e.message === 'control image tensor has shape [1, 3, 2, 2] but this run needs [1, 3, 16, 16]');
  const rr = repeatRows({ shape: [2, 1], data: Float32Array.of(1, 2) }, 3);
  assert.deepEqual([rr.shape, Array.from(rr.data)], [[6, 1], [1, 2, 1, 2, 1, 2]]);
  const im = samplesToImages({ shape: [1, 3, 1, 2], data: Float32Array.of(-1, 1, 0, 0.5, 1, -1) });
  assert.deepEqual([im.length, im[0]!.width, im[0]!.height, Array.from(im[0]!.data)], [1, 2, 1, [0, 128, 255, 255, 191, 0]]);
  assert.throws(() => samplesToImages({ shape: [1, 3, 1, 1], data: Float32Array.of(0, Number.NaN, 0) }),
    (e: unknown) => e instanceof InputError && e.message === 'sampling produced NaN or infinite pixels');
});
