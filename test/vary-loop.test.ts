/**
 * The vary sampling loop (src/pipelines/vary.ts) with a stand-in checkpoint whose UNet is a known function of
 * each row (eps_r = 0.1 x_r + 0.02 E(text_r), E a table of the texts' embedding values): for each method, the
 * rows of every UNet call (the documented layouts, written out literally below), what each row is conditioned on,
 * the per-row reference weights and ControlNet scales fed, the guided update, and the final latents against a
 * DDIM loop written here. No model runs: milliseconds (the pipelines mutation slice's fast file for vary).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Checkpoint } from '../src/components/checkpoint.js';
import { PromptEmbeddings } from '../src/components/prompt-conditioner.js';
import { InputError } from '../src/errors.js';
import { Graph } from '../src/graph/ir.js';
import { configureEngine } from '../src/graph/session.js';
import type { RGBImage } from '../src/io/image.js';
import { pilResize } from '../src/io/pil-resize.js';
import { VaeImageProcessor } from '../src/io/vae-image-processor.js';
import { adainLatents } from '../src/methods/adain.js';
import { defaultInversionOffset, kvConcat, kvReplace, styleAligned, STYLE_ALIGNED_SCHEDULER } from '../src/methods/baselines.js';
import { inDetailIP } from '../src/methods/indetail-ip.js';
import { MASACTRL_SCHEDULER, masactrlReferencePixels } from '../src/methods/masactrl.js';
import type { ReferenceMethod } from '../src/methods/method.js';
import { PLAIN, type ReferenceWeights } from '../src/methods/reference-attention.js';
import type { NoiseSource } from '../src/noise/gaussian.js';
import { invert, type Inversion } from '../src/pipelines/invert.js';
import { referenceAtSize } from '../src/pipelines/common.js';
import { report, type ProgressEvent } from '../src/pipelines/progress.js';
import { rowLayout, schedulerConfigOf, vary, type VaryOptions } from '../src/pipelines/vary.js';
import { DDIMInverseScheduler, DDIMScheduler } from '../src/schedulers/ddim.js';
import type { Tensor } from '../src/tensor.js';

const CONFIG = { _class_name: 'DDIMScheduler', num_train_timesteps: 1000, beta_start: 0.00085, beta_end: 0.012, beta_schedule: 'scaled_linear', clip_sample: false, set_alpha_to_one: false, steps_offset: 1 };
/** Embedding value of each text the loop may encode (null: the missing negative prompt). */
const E = new Map<string | null, number>([[null, -1], ['', 0], ['inv', 2], ['a', 3], ['b', 5], ['neg', 7]]);
const STEPS = 3, N = 4; // latents [K, 1, 2, 2]: images 16 x 16, VAE factor 8

interface Call { sample: number[][]; timestep: number; context: number[]; key: string; feeds: Record<string, number[]>; hookInputs: string[] }

/** The stand-in VAE encoder: [1, 1, 2, 2] from the pixels' mean and first value. */
function encodeStandIn(px: Tensor): Tensor {
  const m = px.data.reduce((a, b) => a + b, 0) / px.data.length;
  return { shape: [1, 1, 2, 2], data: Float32Array.from([m, px.data[0]!, -m, 0.5]) };
}

function fakeCheckpoint(calls: Call[], o: { conditional?: boolean; nan?: boolean; encoded?: Tensor[]; released?: string[]; encodeOpts?: unknown[] } = {}): Checkpoint {
  const unet = {
    conditional: o.conditional ?? true,
    config: { inChannels: 1 },
    async run(a: { sample: Tensor; timestep: number; encoderHiddenStates: Tensor; variant?: { key: string; hooks: (g: Graph) => unknown }; feeds?: Record<string, Tensor> }) {
      const b = a.sample.shape[0]!, n = a.sample.data.length / b;
      const g = new Graph();
      if (a.variant && !a.variant.key.includes('+')) a.variant.hooks(g);
      calls.push({
        sample: Array.from({ length: b }, (_, r) => Array.from(a.sample.data.subarray(r * n, (r + 1) * n))),
        timestep: a.timestep, context: Array.from(a.encoderHiddenStates.data), key: a.variant?.key ?? '',
        feeds: Object.fromEntries(Object.entries(a.feeds ?? {}).map(([k, v]) => [k, Array.from(v.data)])), hookInputs: g.inputs.map((i) => i.name),
      });
      const data = Float32Array.from(a.sample.data, (x, j) => (o.nan ? Number.NaN : 0.1 * x + 0.02 * a.encoderHiddenStates.data[Math.floor(j / n)]!));
      // InjectFusion's h-space tap: the stand-in's mid block is the sample itself.
      return { noisePred: { shape: a.sample.shape, data }, extra: (a.variant as { outputs?: string[] } | undefined)?.outputs?.includes('mid_block') ? { mid_block: a.sample } : {} };
    },
  };
  const vae = { scaleFactor: 8, async encodeToLatents(px: Tensor) { o.encoded?.push(px); return encodeStandIn(px); }, async decode(t: Tensor) { return { shape: [1, 3, 16, 16], data: new Float32Array(3 * 256).fill(t.data[0]! > 0 ? 0.5 : -0.5) }; } };
  const conditioner = {
    async encode(texts: (string | null)[], opts: unknown) {
      o.encodeOpts?.push(opts);
      const data = texts.map((t) => { assert.ok(E.has(t), `unexpected text ${t}`); return E.get(t)!; });
      return new PromptEmbeddings({ shape: [texts.length, 1, 1], data: Float32Array.from(data) }, undefined, [], null);
    },
  };
  return { unet: () => unet, autoencoder: () => vae, vae: () => vae, isPixelSpace: () => !unet.conditional, conditioner: () => conditioner, release: async (c: string) => { o.released?.push(c); }, schedulerConfig: () => ({ raw: CONFIG, file: 'scheduler_config.json' }) } as unknown as Checkpoint;
}

const reference: RGBImage = { width: 16, height: 16, data: new Uint8Array(16 * 16 * 3).fill(100) } as RGBImage;
/** z_0 .. z_3, one row each. */
const chain = Array.from({ length: STEPS + 1 }, (_, s) => ({ shape: [1, 1, 2, 2], data: Float32Array.from([0.5, -1, 1.5, 0.25].map((v, j) => v * (1 + s) + 0.1 * j)) }));
const inversion: Inversion = { chain, timesteps: [], noisePreds: [], hSpace: new Map(), promptEmbeds: undefined, conditioning: undefined };
const noiseOf = (k: number, seed = 0): Tensor => ({ shape: [k, 1, 2, 2], data: Float32Array.from({ length: k * N }, (_, j) => Math.sin(1 + j + seed)) });
const rowOf = (t: Tensor, r: number): number[] => Array.from(t.data.subarray(r * N, (r + 1) * N));

/** One row of the documented layout: R = reference, G = generated; u / c = branch; the text it is conditioned on. */
interface Row { kind: 'R' | 'G'; branch: 'u' | 'c'; text: string | null; gen?: number }
const R = (branch: 'u' | 'c', text: string | null): Row => ({ kind: 'R', branch, text });
const G = (branch: 'u' | 'c', text: string | null, gen: number): Row => ({ kind: 'G', branch, text, gen });

interface Expect {
  layout: Row[]; guidance: number; method: ReferenceMethod; init: Tensor; scheduler: Record<string, unknown>;
  /** chain index (z_s) of the reference rows at step i; undefined: free-running reference from z_N. */
  refChain?: (i: number) => number; key: string; controlScale?: (i: number) => number[];
}

const f = Math.fround;
function nearRows(got: number[][], want: number[][], what: string): void {
  assert.equal(got.length, want.length, `${what}: row count`);
  const err = Math.max(0, ...got.flatMap((r, i) => r.map((v, j) => Math.abs(v - want[i]![j]!))));
  assert.ok(err < 1e-5, `${what}: max err ${err}`);
}

/** The loop as documented, DDIM steps from a scheduler of its own. */
function expectRun(x: Expect, calls: Call[], latents: Tensor): void {
  const sched = new DDIMScheduler(x.scheduler as never);
  sched.setTimesteps(STEPS);
  const refSched = new DDIMScheduler(x.scheduler as never);
  refSched.setTimesteps(STEPS);
  const k = x.init.shape[0]!;
  let gen = Array.from({ length: k }, (_, r) => rowOf(x.init, r));
  let ref = rowOf(chain[STEPS]!, 0);
  assert.equal(calls.length, STEPS);
  const attending = x.layout.map((r) => r.kind === 'G' && x.layout.some((q) => q.kind === 'R' && q.branch === r.branch));
  sched.timesteps.forEach((t, i) => {
    const c = calls[i]!;
    const w = x.method.weights({ index: i, timestep: t, steps: STEPS });
    const sample = x.layout.map((r) => (r.kind === 'G' ? gen[r.gen!]! : x.refChain ? rowOf(chain[x.refChain(i)]!, 0) : ref));
    assert.equal(c.timestep, t, `step ${i} timestep`);
    nearRows(c.sample, sample, `step ${i} rows`);
    assert.deepEqual(c.context, x.layout.map((r) => E.get(r.text)!), `step ${i} conditioning`);
    assert.equal(c.key, x.key);
    const perRow: ReferenceWeights[] = x.layout.filter((_, j) => attending[j]).map((r) => (r.branch === 'c' ? w.cond : w.uncond));
    for (const [name, field] of [['reference_fixed_ref', 'fixedRef'], ['reference_fixed_own', 'fixedOwn'], ['reference_soft', 'soft']] as const) {
      assert.deepEqual(c.feeds[name], perRow.map((p) => Math.fround(p[field])), `step ${i} ${name}`);
    }
    if (x.controlScale) assert.deepEqual(c.feeds['controlnet_0_scale'], x.controlScale(i), `step ${i} control scales`);
    // The stand-in's float32 outputs; CFG in float32 steps as torch computes it.
    const pred = sample.map((s, j) => s.map((v) => f(0.1 * v + 0.02 * E.get(x.layout[j]!.text)!)));
    const guided = (u: number[] | undefined, cc: number[]): number[] => (x.guidance > 1 && u ? cc.map((v, j) => f(u[j]! + f(f(x.guidance) * f(v - u[j]!)))) : cc);
    const predOf = (kind: 'R' | 'G', branch: 'u' | 'c', g?: number): number[] | undefined => {
      const j = x.layout.findIndex((r) => r.kind === kind && r.branch === branch && (g === undefined || r.gen === g));
      return j < 0 ? undefined : pred[j];
    };
    let eps: Tensor = { shape: [k, 1, 2, 2], data: Float32Array.from(gen.flatMap((_, g) => guided(predOf('G', 'u', g), predOf('G', 'c', g)!))) };
    if (x.method.adjustNoise) eps = x.method.adjustNoise({ index: i, timestep: t, steps: STEPS }, eps, { shape: [1, 1, 2, 2], data: Float32Array.from(predOf('R', 'c')!) });
    if (!x.refChain) ref = Array.from(refSched.step(Float32Array.from(guided(predOf('R', 'u'), predOf('R', 'c')!)), t, Float32Array.from(ref)).prevSample);
    const next = sched.step(eps.data, t, Float32Array.from(gen.flat())).prevSample;
    gen = gen.map((_, g) => Array.from(next.subarray(g * N, (g + 1) * N)));
  });
  const err = Math.max(...gen.flat().map((v, j) => Math.abs(v - latents.data[j]!)));
  assert.ok(err < 1e-5, `final latents max err ${err}`);
}

async function runVary(extra: Partial<VaryOptions> & { method: ReferenceMethod }, ck?: Checkpoint, calls: Call[] = []) {
  const r = await vary(ck ?? fakeCheckpoint(calls), { reference, prompt: 'a', inversionPrompt: 'inv', negativePrompt: 'neg', steps: STEPS, inversion, onWarning: () => {}, ...extra });
  return { r, calls };
}

test('vary loop, InDetail-IP (conflict-free): rows [gen_u x K, ref_c, gen_c x K], per-prompt rows, weights of the cond rows only, guided DDIM', async () => {
  const method = inDetailIP(STEPS, { lambdaP: 3, lambdaG: 1, stratifiedSteps: 2 });
  const latents = noiseOf(4);
  const events: string[] = [];
  const ends: number[] = [];
  const { r, calls } = await runVary({ method, prompts: ['a', 'b'], numImages: 2, latents, onProgress: (e: ProgressEvent) => events.push(`${e.stage} ${e.step}/${e.total}`), onStepEnd: (i, t) => ends.push(i, t) });
  expectRun({
    layout: [G('u', 'neg', 0), G('u', 'neg', 1), G('u', 'neg', 2), G('u', 'neg', 3), R('c', 'inv'), G('c', 'a', 0), G('c', 'a', 1), G('c', 'b', 2), G('c', 'b', 3)],
    guidance: 7.5, method, init: adainLatents(latents, chain[STEPS]!), scheduler: CONFIG, refChain: (i) => STEPS - i,
    key: 'indetail-ip:up-attn1:ref[-,-,-,-,-,4,4,4,4]:unread4:',
  }, calls, r.latents);
  assert.equal(r.rowsPerStep, 9);
  assert.equal(r.images.length, 4);
  assert.equal(r.inversion, inversion);
  assert.deepEqual(ends, [0, 667, 1, 334, 2, 1]);
  assert.deepEqual(events, ['denoise 0/3', 'denoise 1/3', 'denoise 2/3', 'denoise 3/3', 'decode 0/4', 'decode 1/4', 'decode 2/4', 'decode 3/4', 'decode 4/4']);
  assert.deepEqual(calls[0]!.hookInputs, ['reference_fixed_ref', 'reference_fixed_own', 'reference_soft']);
  // Something reads the reference row's output: it stays in the batch (no unread rows in the layout key); no resize warning.
  const warnings: string[] = [];
  const read = await runVary({ method, latents: noiseOf(1), onUNetOutput: () => {}, onWarning: (m) => warnings.push(m) });
  assert.equal(read.calls[0]!.key, 'indetail-ip:up-attn1:ref[-,-,1]:');
  assert.deepEqual(warnings, []);
  // Without `prompts`: numImages rows of the prompt; the negative prompt absent is null.
  const one = await runVary({ method, prompt: 'b', negativePrompt: undefined, latents: noiseOf(1) });
  expectRun({ layout: [G('u', null, 0), R('c', 'inv'), G('c', 'b', 0)], guidance: 7.5, method, init: adainLatents(noiseOf(1), chain[STEPS]!), scheduler: CONFIG,
    refChain: (i) => STEPS - i, key: 'indetail-ip:up-attn1:ref[-,-,1]:unread1:' }, one.calls, one.r.latents);
  // inversionPrompt defaults to the prompt.
  const same = await runVary({ method, prompt: 'inv', inversionPrompt: undefined, guidance: 1, latents: noiseOf(1) });
  assert.deepEqual(same.calls[0]!.context, [2, 2]);
});

test('vary loop: conflicting guidance (kv-concat) adds ref_u and AdaINs the guided noise to ref_c above t_early; guidance 1 is [ref_c, gen_c x K]', async () => {
  const method = kvConcat({ tAlign: 500, tEarly: 500, permutedInit: false });
  const latents = noiseOf(2, 3);
  const onUNet: number[] = [];
  const { r, calls } = await runVary({ method, prompts: ['a', 'b'], latents, guidance: 5, onUNetOutput: (i, layout) => onUNet.push(i, layout.length) });
  expectRun({
    layout: [R('u', ''), G('u', 'neg', 0), G('u', 'neg', 1), R('c', 'inv'), G('c', 'a', 0), G('c', 'b', 1)], guidance: 5, method,
    init: adainLatents(latents, chain[STEPS]!), scheduler: CONFIG, refChain: (i) => STEPS - i, key: 'kv-concat:all-attn1:ref[-,0,0,-,3,3]:',
  }, calls, r.latents);
  assert.deepEqual(onUNet, [0, 6, 1, 6, 2, 6]);
  // No CFG: only the conditional rows; the (conflicting) method has no unconditional branch to read.
  const g1 = await runVary({ method, prompts: ['a', 'b'], latents, guidance: 1 });
  expectRun({ layout: [R('c', 'inv'), G('c', 'a', 0), G('c', 'b', 1)], guidance: 1, method, init: adainLatents(latents, chain[STEPS]!), scheduler: CONFIG,
    refChain: (i) => STEPS - i, key: 'kv-concat:all-attn1:ref[-,0,0]:' }, g1.calls, g1.r.latents);
  assert.equal(g1.r.rowsPerStep, 3);
  // The layouts themselves (rowLayout): reference of each generated row in its own branch.
  assert.deepEqual(rowLayout(true, false, 2).referenceOf, [null, null, null, 2, 2]);
  assert.deepEqual(rowLayout(true, true, 1).referenceOf, [null, 0, null, 2]);
  assert.deepEqual(rowLayout(false, true, 2).referenceOf, [null, 0, 0]);
  assert.deepEqual(rowLayout(false, false, 1).rows, [{ kind: 'ref', branch: 'cond' }, { kind: 'gen', branch: 'cond' }]);
});

test('vary loop: MasaCtrl (kv-replace) denoises its source row from z_T with its own guidance, on the official scheduler, every row starting at z_T', async () => {
  const method = kvReplace(STEPS, { startStep: 1, startLayer: 0 });
  const { r, calls } = await runVary({ method, latents: noiseOf(1, 5), guidance: 6 });
  const repeated = { shape: [1, 1, 2, 2], data: chain[STEPS]!.data };
  expectRun({ layout: [R('u', ''), G('u', 'neg', 0), R('c', 'inv'), G('c', 'a', 0)], guidance: 6, method, init: repeated, scheduler: { ...CONFIG, ...MASACTRL_SCHEDULER },
    key: 'kv-replace:layers-0-16:ref[-,0,-,2]:' }, calls, r.latents);
  // conflict-free with CFG: still the reference's unconditional row (its own guidance needs it).
  const free = await runVary({ method: kvReplace(STEPS, { guidanceMode: 'conflict-free', startStep: 1 }), latents: noiseOf(1), guidance: 6 });
  assert.equal(free.r.rowsPerStep, 4);
  assert.deepEqual(free.calls.map((c) => c.feeds['reference_fixed_ref']), [[0, 0], [0, 1], [0, 1]], 'uncond row PLAIN, cond row REPLACE from step 1');
});

test('vary loop: StyleAligned reads zts[offset] then zts[max(offset + 1, i)], draws noise for the reference row, negative prompt on ref_u, its own scheduler', async () => {
  const method = styleAligned(STEPS);
  const offset = defaultInversionOffset(STEPS);
  assert.equal(offset, 2);
  let drawn: number[] = [];
  const noise: NoiseSource = { randn: (shape) => { const d = Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, (_, j) => Math.cos(j)); drawn = [...shape]; return d; } };
  const { r, calls } = await runVary({ method, prompts: ['a', 'b'], noise, guidance: 3 });
  assert.deepEqual(drawn, [3, 1, 2, 2], 'K + 1 rows drawn');
  const init: Tensor = { shape: [2, 1, 2, 2], data: Float32Array.from({ length: 8 }, (_, j) => Math.fround(Math.cos(j + N))) };
  // zts (most noisy first) index s is chain[STEPS - s]: step 0 reads zts[2], steps 1, 2 read zts[3].
  expectRun({ layout: [R('u', 'neg'), G('u', 'neg', 0), G('u', 'neg', 1), R('c', 'inv'), G('c', 'a', 0), G('c', 'b', 1)], guidance: 3, method, init,
    scheduler: { ...CONFIG, ...STYLE_ALIGNED_SCHEDULER }, refChain: (i) => STEPS - (i === 0 ? 2 : 3), key: 'style-aligned:all-attn1:ref[-,0,0,-,3,3]:adain:shift0.6931471805599453:gn:' }, calls, r.latents);
  assert.deepEqual(calls.map((c) => c.timestep), [666, 333, 0], 'steps_offset 0');
  // With given latents nothing is drawn.
  drawn = [];
  await runVary({ method, prompts: ['a'], noise, latents: noiseOf(1), guidance: 3 });
  assert.deepEqual(drawn, []);
});

test('vary loop: ControlNet scales are 0 on reference rows and on the unconditional branch for the first steps', async () => {
  const method = inDetailIP(STEPS);
  const control = { net: { id: 'cn' } as never, image: { shape: [1, 3, 16, 16], data: new Float32Array(768) }, scale: 0.5 };
  for (const [off, want] of [[undefined, [[0, 0, 0.5], [0.5, 0, 0.5], [0.5, 0, 0.5]]], [2, [[0, 0, 0.5], [0, 0, 0.5], [0.5, 0, 0.5]]], [0, [[0.5, 0, 0.5], [0.5, 0, 0.5], [0.5, 0, 0.5]]]] as const) {
    const calls: Call[] = [];
    await runVary({ method, latents: noiseOf(1), controls: [control], controlUncondSteps: off }, undefined, calls);
    // default: round(10 / 50 * 3) = 1 step without the unconditional ControlNet
    assert.deepEqual(calls.map((c) => c.feeds['controlnet_0_scale']), want, `controlUncondSteps ${off}`);
    assert.match(calls[0]!.key, /^indetail-ip:up-attn1:ref\[-,-,1\]:unread1:\+controlnet\[cn\]$/);
  }
  await assert.rejects(runVary({ method, latents: noiseOf(1), controls: [control], controlUncondSteps: 4 }),
    (e: unknown) => e instanceof InputError && e.message === 'control steps without the unconditional branch must be in [0, 3], got 4');
  await assert.rejects(runVary({ method, latents: noiseOf(1), controlUncondSteps: -1 }), /must be in \[0, 3\], got -1$/);
  await assert.rejects(runVary({ method, latents: noiseOf(1), controlUncondSteps: 1.5 }), /must be in \[0, 3\], got 1\.5$/);
  await runVary({ method, latents: noiseOf(1), controlUncondSteps: 3 });
});

test('vary loop: one-line errors (images, prompts, pixel model, inversion length, NaN) and the scheduler override', async () => {
  const method = inDetailIP(STEPS);
  const err = (p: Promise<unknown>, message: string) => assert.rejects(p, (e: unknown) => e instanceof InputError && e.message === message, message);
  await err(runVary({ method, latents: noiseOf(1), numImages: 0 }), '--num-images must be an integer >= 1, got 0');
  await err(runVary({ method, latents: noiseOf(1), numImages: 1.5 }), '--num-images must be an integer >= 1, got 1.5');
  await err(runVary({ method, latents: noiseOf(1), prompts: [] }), '--prompt: give at least one prompt');
  await err(runVary({ method, latents: noiseOf(1), steps: 0 }), '--steps must be an integer >= 1, got 0');
  await err(runVary({ method, latents: noiseOf(1) }, fakeCheckpoint([], { conditional: false })),
    'image-prompt methods need a text-conditioned model (Stable Diffusion); this is a pixel-space UNet2DModel (use `inject` or `edit`)');
  await err(runVary({ method, latents: noiseOf(1), steps: 2 }), 'the inversion has 3 steps but this run has 2');
  await err(runVary({ method, latents: noiseOf(1) }, fakeCheckpoint([], { nan: true })), 'sampling produced NaN or infinite latents');
  await err(runVary({ method, latents: noiseOf(2) }), '--latents has shape [2, 1, 2, 2] but this run needs [1, 1, 2, 2]');
  const ck = fakeCheckpoint([]);
  assert.deepEqual(schedulerConfigOf(ck, {}), { raw: CONFIG, file: 'scheduler_config.json' });
  assert.deepEqual(schedulerConfigOf(ck, { schedulerConfig: { steps_offset: 0, extra: 1 } }), { raw: { ...CONFIG, steps_offset: 0, extra: 1 }, file: 'scheduler_config.json' });
  assert.deepEqual(PLAIN, { fixedRef: 0, fixedOwn: 1, soft: 0 });
});

test('vary inverts the reference through the stand-in: z_0 from the VAE, inverse DDIM on [cond] or guided [uncond, cond], each method\'s inversion settings', async () => {
  // A 20 x 20 gradient: floored to 16 x 16 (a warning); diffusers' path resizes it with PIL bicubic, MasaCtrl's with torch nearest.
  const ref20 = { width: 20, height: 20, data: Uint8Array.from({ length: 20 * 20 * 3 }, (_, j) => (j * 7) % 256) } as RGBImage;
  const diffusersPx = new VaeImageProcessor({ vae_scale_factor: 8 }).preprocess(pilResize(ref20, 16, 16, 'bicubic'));
  const masaPx = masactrlReferencePixels(ref20, 16, 16);
  assert.ok(Math.abs(encodeStandIn(diffusersPx).data[0]! - encodeStandIn(masaPx).data[0]!) > 1e-4, 'the two paths differ on this image');
  /** The inverse steps written out: rows [cond] or [uncond, cond] (texts), guided in float32, from z_0. */
  const chainOf = (z0: Tensor, texts: (string | null)[], g: number, cfg: Record<string, unknown>): number[][] => {
    const inv = new DDIMInverseScheduler(cfg as never);
    inv.setTimesteps(STEPS);
    let z = Array.from(z0.data);
    const out = [z];
    for (const t of inv.timesteps) {
      const p = texts.map((tx) => z.map((v) => f(0.1 * v + 0.02 * E.get(tx)!)));
      const eps = p.length === 2 ? p[1]!.map((c, j) => f(p[0]![j]! + f(f(g) * f(c - p[0]![j]!)))) : p[0]!;
      z = Array.from(inv.step(Float32Array.from(eps), t, Float32Array.from(z)).prevSample);
      out.push(z);
    }
    return out;
  };
  const cases: [string, ReferenceMethod, Partial<VaryOptions>, Tensor, (string | null)[], number, Record<string, unknown>][] = [
    ['indetail-ip: no guidance, the inversion prompt', inDetailIP(STEPS), {}, diffusersPx, ['inv'], 1, CONFIG],
    ['indetail-ip with --inversion-guidance 4: the missing negative prompt (null) as uncond', inDetailIP(STEPS), { inversionGuidance: 4 }, diffusersPx, [null, 'inv'], 4, CONFIG],
    ['kv-replace: the sampling guidance, nearest-resized pixels, MasaCtrl scheduler', kvReplace(STEPS, { startStep: 1 }), { guidance: 6 }, masaPx, [null, 'inv'], 6, { ...CONFIG, ...MASACTRL_SCHEDULER }],
    ['style-aligned: guidance 2, zero uncond, its scheduler', styleAligned(STEPS), { guidance: 3 }, diffusersPx, [null, 'inv'], 2, { ...CONFIG, ...STYLE_ALIGNED_SCHEDULER }],
    ['style-aligned with --inversion-guidance 1.5', styleAligned(STEPS), { guidance: 3, inversionGuidance: 1.5 }, diffusersPx, [null, 'inv'], 1.5, { ...CONFIG, ...STYLE_ALIGNED_SCHEDULER }],
  ];
  for (const [what, method, extra, px, texts, g, cfg] of cases) {
    const encoded: Tensor[] = [], calls: Call[] = [], warnings: string[] = [];
    const { r } = await runVary({ method, inversion: undefined, reference: ref20, latents: noiseOf(1), onWarning: (m) => warnings.push(m), ...extra }, fakeCheckpoint(calls, { encoded }));
    assert.deepEqual(warnings, ['reference image is 20x20; resized to 16x16'], what);
    assert.equal(encoded.length, 1, what);
    assert.deepEqual(Array.from(encoded[0]!.data), Array.from(px.data), `${what}: pixels encoded`);
    const want = chainOf(encodeStandIn(px), texts, g, cfg);
    assert.equal(r.inversion.chain.length, STEPS + 1);
    r.inversion.chain.forEach((z, s) => nearRows([Array.from(z.data)], [want[s]!], `${what}: z_${s}`));
    // the inversion's UNet calls come first: rows [z] or [z, z] conditioned on the texts
    assert.deepEqual(calls[0]!.context, texts.map((t) => E.get(t)!), what);
    assert.equal(calls.length, 2 * STEPS, what);
  }
});

test('invert directly: an RGB image through the VAE, guided rows [uncond, cond], the result\'s embeddings, noise predictions, timesteps, h-space; progress; errors', async () => {
  const calls: Call[] = [], encoded: Tensor[] = [], events: string[] = [];
  const ref16 = { width: 16, height: 16, data: Uint8Array.from({ length: 768 }, (_, j) => (j * 5) % 256) } as RGBImage;
  const inv = await invert(fakeCheckpoint(calls, { encoded }), ref16, { prompt: 'inv', steps: STEPS, guidance: 2, captureHSpace: true, onProgress: (e) => events.push(`${e.stage} ${e.step}/${e.total}`) });
  assert.deepEqual(Array.from(encoded[0]!.data), Array.from(new VaeImageProcessor({ vae_scale_factor: 8 }).preprocess(ref16).data));
  assert.deepEqual(Array.from(inv.chain[0]!.data), Array.from(encodeStandIn(encoded[0]!).data));
  assert.deepEqual(inv.timesteps, [1, 334, 667]);
  assert.deepEqual(calls.map((c) => c.context), [[-1, 2], [-1, 2], [-1, 2]]);
  assert.deepEqual(calls.map((c) => c.key), ['tap-mid-block', 'tap-mid-block', 'tap-mid-block']);
  assert.deepEqual(Array.from(inv.promptEmbeds!.data), [2], 'the conditional row');
  assert.deepEqual(Array.from(inv.conditioning!.encoderHiddenStates.data), [2]);
  assert.equal(inv.noisePreds.length, STEPS);
  inv.noisePreds.forEach((p, i) => {
    const z = Array.from(inv.chain[i]!.data), u = z.map((v) => f(0.1 * v - 0.02)), c = z.map((v) => f(0.1 * v + 0.04));
    assert.deepEqual(Array.from(p.data), c.map((v, j) => f(u[j]! + f(2 * f(v - u[j]!)))), `noise prediction ${i}`);
  });
  assert.deepEqual([...inv.hSpace.keys()], [1, 334, 667]);
  inv.hSpace.forEach((h, t) => assert.deepEqual(Array.from(h.data), Array.from(inv.chain[inv.timesteps.indexOf(t)]!.data), `h-space at ${t}: the cond row`));
  assert.deepEqual(events, ['encode 0/1', 'invert 0/3', 'invert 1/3', 'invert 2/3', 'invert 3/3']);
  // unguided: one row, the prompt
  const c1: Call[] = [];
  const u = await invert(fakeCheckpoint(c1), chain[0]!, { prompt: 'inv', steps: STEPS });
  assert.deepEqual(c1.map((c) => [c.sample.length, c.context]), [[1, [2]], [1, [2]], [1, [2]]]);
  assert.equal(u.chain[0], chain[0]);
  assert.equal(u.hSpace.size, 0);
  await assert.rejects(runVary({ method: inDetailIP(STEPS), inversion: undefined, latents: noiseOf(1), inversionGuidance: Number.NaN }),
    (e: unknown) => e instanceof InputError && e.message === 'the inversion guidance must be a number, got NaN');
});

test('low-memory mode: each phase releases its components; report / referenceAtSize edge cases', async () => {
  const released: string[] = [];
  configureEngine({ lowMemory: true });
  try {
    await vary(fakeCheckpoint([], { released }), { reference, prompt: 'a', inversionPrompt: 'inv', steps: STEPS, method: inDetailIP(STEPS), latents: noiseOf(1) });
  } finally {
    configureEngine({ lowMemory: false });
  }
  assert.deepEqual(released, ['text_encoder', 'text_encoder_2', 'vae', 'unet', 'text_encoder', 'text_encoder_2', 'unet']);
  const none: string[] = [];
  await runVary({ method: inDetailIP(STEPS), latents: noiseOf(1) }, fakeCheckpoint([], { released: none }));
  assert.deepEqual(none, [], 'nothing released by default');
  // report: no control, no signal, a detail only when given, an aborted signal stops the run
  report(undefined, 'x', 0, 1);
  report({}, 'x', 0, 1);
  const ev: ProgressEvent[] = [];
  report({ onProgress: (e) => ev.push(e) }, 'train', 1, 2, 'loss 0.5');
  report({ onProgress: (e) => ev.push(e) }, 'train', 2, 2);
  assert.deepEqual(ev, [{ stage: 'train', step: 1, total: 2, detail: 'loss 0.5' }, { stage: 'train', step: 2, total: 2 }]);
  assert.ok(!('detail' in ev[1]!));
  const ac = new AbortController();
  ac.abort();
  assert.throws(() => report({ signal: ac.signal }, 'x', 0, 1), /abort/i);
  // referenceAtSize: at size, the same image; otherwise resized, warning optional
  const ref20 = { width: 20, height: 24, data: new Uint8Array(20 * 24 * 3) } as RGBImage;
  assert.equal(referenceAtSize(reference, 8, undefined, undefined), reference);
  assert.equal(referenceAtSize(reference, 8, 16, 16), reference);
  const r = referenceAtSize(ref20, 8, undefined, undefined);
  assert.deepEqual([r.width, r.height], [16, 24]);
  const w: string[] = [];
  const r2 = referenceAtSize(ref20, 8, 16, 16, (m) => w.push(m));
  assert.deepEqual([r2.width, r2.height, w], [16, 16, ['reference image is 20x24; resized to 16x16']]);
  const r3 = referenceAtSize({ ...reference }, 8, 16, 8);
  assert.deepEqual([r3.width, r3.height], [16, 8]);
});

test('vary and invert pass the second encoder\'s prompts (SDXL) and the clip skip to the conditioner', async () => {
  const encodeOpts: unknown[] = [];
  await runVary({ method: inDetailIP(STEPS), inversion: undefined, inversionGuidance: 2, prompts: ['a', 'b'], prompt2: 'p2', negativePrompt2: 'n2', clipSkip: 2, latents: noiseOf(2) }, fakeCheckpoint([], { encodeOpts }));
  // the inversion [uncond, cond], then vary's texts [negative, inversion prompt, "", prompts...]
  assert.deepEqual(encodeOpts, [{ clipSkip: 2, prompts2: [undefined, undefined] }, { clipSkip: 2, prompts2: ['n2', undefined, undefined, 'p2', 'p2'] }]);
  const inv: unknown[] = [];
  await invert(fakeCheckpoint([], { encodeOpts: inv }), chain[0]!, { prompt: 'inv', prompt2: 'q2', steps: STEPS });
  await invert(fakeCheckpoint([], { encodeOpts: inv }), chain[0]!, { prompt: 'inv', prompt2: 'q2', steps: STEPS, guidance: 3, clipSkip: 1 });
  assert.deepEqual(inv, [{ clipSkip: undefined, prompts2: ['q2'] }, { clipSkip: 1, prompts2: [undefined, 'q2'] }]);
});
