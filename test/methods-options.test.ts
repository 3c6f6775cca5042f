/**
 * The image-prompt methods as objects (src/methods/baselines.ts, indetail-ip.ts, index.ts), without a UNet:
 * every option reaches the weights / layers / initial latents / official-run settings it names, each default is
 * the official code's (named), and bad values are one-line errors word for word. Milliseconds: the fast file of
 * the methods-attention mutation slice (the model-running files pin the same against official goldens).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InputError } from '../src/errors.js';
import { adainLatents } from '../src/methods/adain.js';
import {
  defaultInversionOffset, kvConcat, kvReplace, permutedPositions, STYLE_ALIGNED_SCHEDULER, styleAligned, torchPermutations,
} from '../src/methods/baselines.js';
import { defaultStratifiedSteps, inDetailIP } from '../src/methods/indetail-ip.js';
import { createMethod, GUIDANCE_MODES, METHOD_NAMES, type ReferenceMethod, type StepContext } from '../src/methods/index.js';
import { MASACTRL_RUN } from '../src/methods/masactrl.js';
import { CONCAT, PLAIN, REPLACE } from '../src/methods/reference-attention.js';
import type { NoiseSource } from '../src/noise/gaussian.js';
import { torchRandperm } from '../src/noise/randperm.js';
import { TorchGenerator } from '../src/noise/torch-generator.js';
import type { Tensor } from '../src/tensor.js';

const at = (index: number, timestep = 500, steps = 50): StepContext => ({ index, timestep, steps });
const t4 = (shape: number[], data: number[]): Tensor => ({ shape, data: Float32Array.from(data) });
/** One-line InputError with exactly this message. */
const inputError = (fn: () => unknown, message: string): void => {
  assert.throws(fn, (e: unknown) => e instanceof InputError && e.message === message, message);
};
const noise = t4([2, 1, 2, 2], [1, 2, 3, 5, -1, 0, 4, 1]);
const zT = t4([1, 1, 2, 2], [10, 20, 30, 40]);

test('names and guidance modes', () => {
  assert.deepEqual([...METHOD_NAMES], ['indetail-ip', 'kv-concat', 'kv-replace', 'style-aligned']);
  assert.deepEqual([...GUIDANCE_MODES], ['conflict-free', 'conflicting']);
});

test('InDetail-IP: weights per step and branch, layers, key, initial latents, defaults and errors', () => {
  const m = inDetailIP(20, { lambdaP: 2, lambdaG: 0.5, stratifiedSteps: 3 });
  assert.equal(m.name, 'indetail-ip');
  assert.equal(m.guidanceMode, 'conflict-free');
  assert.equal(m.key, 'indetail-ip:up-attn1');
  assert.deepEqual([0, 2, 3, 19].map((i) => m.weights(at(i)).cond), [
    { fixedRef: 0.8, fixedOwn: 0.2, soft: 0 }, { fixedRef: 0.8, fixedOwn: 0.2, soft: 0 }, CONCAT, CONCAT]);
  assert.deepEqual([0, 3].map((i) => m.weights(at(i)).uncond), [PLAIN, PLAIN]);
  const c = inDetailIP(20, { lambdaP: 2, lambdaG: 0.5, stratifiedSteps: 3, guidanceMode: 'conflicting' });
  assert.equal(c.guidanceMode, 'conflicting');
  assert.deepEqual([0, 3].map((i) => c.weights(at(i)).uncond), [{ fixedRef: 0.8, fixedOwn: 0.2, soft: 0 }, CONCAT]);
  assert.deepEqual(['up_blocks.0.attentions.1.transformer_blocks.0.attn1', 'mid_block.attentions.0.transformer_blocks.0.attn1',
    'down_blocks.0.attentions.0.transformer_blocks.0.attn1', 'x.up_blocks.1'].map((p) => m.layer(p, 0)), [true, false, false, false]);
  assert.equal(m.run, undefined);
  assert.equal(m.adjustNoise, undefined);
  assert.equal(m.queryKeyAdain, undefined);
  // Initial latents: the noise AdaIN'd to the inverted z_T (per channel), or the noise itself without AdaIN.
  const init = m.initialLatents(noise, zT, undefined);
  assert.deepEqual([...init.data], [...adainLatents(noise, zT).data]);
  assert.notDeepEqual([...init.data], [...noise.data]);
  assert.equal(inDetailIP(20, { adain: false }).initialLatents(noise, zT, undefined), noise);
  assert.deepEqual([...inDetailIP(20, { adain: true }).initialLatents(noise, zT, undefined).data], [...init.data]);
  // Defaults: lambda 1 / 1, 10 of 50 stratified steps (25 of 50 with a ControlNet), rounded.
  assert.deepEqual([50, 20, 3, 2, 1, 7, 8].map((n) => defaultStratifiedSteps(n)), [10, 4, 1, 0, 0, 1, 2]);
  assert.deepEqual([50, 20, 3, 1, 2].map((n) => defaultStratifiedSteps(n, true)), [25, 10, 2, 1, 1]);
  const d = inDetailIP(20);
  assert.deepEqual([3, 4].map((i) => d.weights(at(i)).cond), [{ fixedRef: 0.5, fixedOwn: 0.5, soft: 0 }, CONCAT]);
  const cn = inDetailIP(20, { controlnet: true });
  assert.deepEqual([9, 10].map((i) => cn.weights(at(i)).cond), [{ fixedRef: 0.5, fixedOwn: 0.5, soft: 0 }, CONCAT]);
  assert.deepEqual(inDetailIP(20, { lambdaP: 0 }).weights(at(0)).cond, { fixedRef: 0, fixedOwn: 1, soft: 0 });
  assert.deepEqual(inDetailIP(20, { lambdaG: 0 }).weights(at(0)).cond, { fixedRef: 1, fixedOwn: 0, soft: 0 });
  assert.deepEqual(inDetailIP(20, { stratifiedSteps: 0 }).weights(at(0)).cond, CONCAT);
  assert.deepEqual(inDetailIP(20, { stratifiedSteps: 20 }).weights(at(19)).cond, { fixedRef: 0.5, fixedOwn: 0.5, soft: 0 });
  inputError(() => inDetailIP(20, { lambdaP: -1 }), '--lambda-p and --lambda-g must be >= 0, got -1 and 1');
  inputError(() => inDetailIP(20, { lambdaG: -0.5 }), '--lambda-p and --lambda-g must be >= 0, got 1 and -0.5');
  inputError(() => inDetailIP(20, { lambdaP: Number.NaN }), '--lambda-p and --lambda-g must be >= 0, got NaN and 1');
  inputError(() => inDetailIP(20, { lambdaP: 0, lambdaG: 0 }), '--lambda-p and --lambda-g are both 0: Stratified Attention would divide by zero');
  for (const s of [21, -1, 1.5]) inputError(() => inDetailIP(20, { stratifiedSteps: s }), `--stratified-steps must be an integer in [0, 20] (the number of steps), got ${s}`);
});

test('kv-concat (RIVAL): t_align / t_early thresholds, branches, permuted z_T (torch.randperm or ranked noise), AdaIN options', () => {
  const m = kvConcat({ tAlign: 700, tEarly: 300 });
  assert.equal(m.name, 'kv-concat');
  assert.equal(m.guidanceMode, 'conflicting');
  assert.equal(m.key, 'kv-concat:all-attn1');
  assert.equal(m.layer('down_blocks.0.attentions.0.transformer_blocks.0.attn1', 0), true);
  assert.deepEqual([701, 700, 301].map((t) => m.weights(at(0, t)).cond), [REPLACE, CONCAT, CONCAT]);
  assert.deepEqual([701, 700].map((t) => m.weights(at(0, t)).uncond), [REPLACE, CONCAT], 'conflicting: both branches');
  const free = kvConcat({ guidanceMode: 'conflict-free' });
  assert.equal(free.guidanceMode, 'conflict-free');
  assert.deepEqual([601, 600].map((t) => free.weights(at(0, t)).uncond), [PLAIN, PLAIN]);
  assert.deepEqual([601, 600].map((t) => free.weights(at(0, t)).cond), [REPLACE, CONCAT]);
  // Noise AdaIN above t_early only (strictly), toward the reference's noise prediction.
  const guided = t4([1, 1, 2, 2], [1, 2, 3, 5]), ref = t4([1, 1, 2, 2], [10, 10, 14, 14]);
  assert.deepEqual([...m.adjustNoise!(at(0, 301), guided, ref).data], [...adainLatents(guided, ref).data]);
  assert.equal(m.adjustNoise!(at(0, 300), guided, ref), guided);
  assert.equal(kvConcat().adjustNoise!(at(0, 600), guided, ref), guided, 'default t_early 600');
  assert.notEqual(kvConcat().adjustNoise!(at(0, 601), guided, ref), guided);
  assert.equal(kvConcat({ noiseAdain: false }).adjustNoise, undefined);
  // Initial latents: AdaIN'd noise without permutation ...
  assert.deepEqual([...kvConcat({ permutedInit: false }).initialLatents(noise, zT, undefined).data], [...adainLatents(noise, zT).data]);
  // ... else z_T permuted, one permutation per generated row: torch.randperm after manual_seed(seed), continuing the stream.
  const seeded = kvConcat({ permutationSeed: 3 }).initialLatents(noise, zT, undefined);
  const gen = new TorchGenerator(3);
  const p1 = torchRandperm(gen, 4), p2 = torchRandperm(gen, 4);
  assert.deepEqual(seeded.shape, [2, 1, 2, 2]);
  assert.deepEqual([...seeded.data], [...p1, ...p2].map((i) => zT.data[i]!));
  assert.deepEqual([...kvConcat({ permutationSeed: 3n, permutedInit: true }).initialLatents(noise, zT, undefined).data], [...seeded.data]);
  // Without a seed: ranked from the run's noise source (keys sorted ascending).
  const keys: NoiseSource = { randn: (shape) => { assert.deepEqual([...shape], [4]); return Float32Array.from([0.3, -1, 2, 0]); } };
  assert.deepEqual([...kvConcat().initialLatents(noise, zT, keys).data], [20, 40, 10, 30, 20, 40, 10, 30]);
});

test('permutedPositions / torchPermutations: new position i takes old position perm[i] in every channel', () => {
  const z = t4([1, 2, 1, 3], [1, 2, 3, 10, 20, 30]);
  const perms = [[2, 0, 1], [1, 2, 0]];
  let call = 0;
  const r = permutedPositions(z, 2, (n) => { assert.equal(n, 3); return perms[call++]!; });
  assert.deepEqual(r.shape, [2, 2, 1, 3]);
  assert.deepEqual([...r.data], [3, 1, 2, 30, 10, 20, 2, 3, 1, 20, 30, 10]);
  assert.deepEqual([...permutedPositions(z, 1, undefined).data], [1, 2, 3, 10, 20, 30], 'no source: identity');
  const draw = torchPermutations(7), gen = new TorchGenerator(7);
  assert.deepEqual([draw(5), draw(6)], [torchRandperm(gen, 5), torchRandperm(gen, 6)]);
  assert.deepEqual(torchPermutations(7n)(5), torchRandperm(new TorchGenerator(7), 5));
});

test('kv-replace (MasaCtrl): steps [start_step, total_steps), layers [start_layer, total_layers), official run, z_T start, errors', () => {
  const m = kvReplace(50);
  assert.equal(m.name, 'kv-replace');
  assert.equal(m.guidanceMode, 'conflicting');
  assert.equal(m.key, 'kv-replace:layers-10-16');
  assert.equal(m.run, MASACTRL_RUN);
  assert.deepEqual([3, 4, 49, 50].map((i) => m.weights(at(i)).uncond), [PLAIN, REPLACE, REPLACE, PLAIN]);
  const free = kvReplace(50, { guidanceMode: 'conflict-free', startStep: 2, startLayer: 1, totalSteps: 5, totalLayers: 3 });
  assert.equal(free.guidanceMode, 'conflict-free');
  assert.equal(free.key, 'kv-replace:layers-1-3');
  assert.deepEqual([1, 2, 4, 5].map((i) => free.weights(at(i)).cond), [PLAIN, REPLACE, REPLACE, PLAIN]);
  assert.deepEqual([2, 4].map((i) => free.weights(at(i)).uncond), [PLAIN, PLAIN]);
  assert.deepEqual([0, 1, 2, 3].map((i) => free.layer('x', i)), [false, true, true, false]);
  // Every row starts from z_T (official start_code = x_T expanded); fromNoise: the run's noise, no official settings.
  const init = m.initialLatents(noise, zT, undefined);
  assert.deepEqual(init.shape, [2, 1, 2, 2]);
  assert.deepEqual([...init.data], [10, 20, 30, 40, 10, 20, 30, 40]);
  const pre = kvReplace(50, { fromNoise: true });
  assert.equal(pre.run, undefined);
  assert.equal(pre.initialLatents(noise, zT, undefined), noise);
  assert.equal(kvReplace(50, { fromNoise: false }).run, MASACTRL_RUN);
  assert.deepEqual([0, 50].map((s) => kvReplace(50, { startStep: s }).weights(at(s === 0 ? 0 : 49)).cond), [REPLACE, PLAIN]);
  assert.equal(kvReplace(50, { startLayer: 0 }).layer('x', 0), true);
  for (const s of [51, -1, 1.5]) inputError(() => kvReplace(50, { startStep: s }), `--start-step must be an integer in [0, 50], got ${s}`);
  for (const s of [-1, 2.5]) inputError(() => kvReplace(50, { startLayer: s }), `--start-layer must be an integer >= 0, got ${s}`);
  for (const s of [-1, 0.5]) inputError(() => kvReplace(50, { totalSteps: s }), `kv-replace total steps must be an integer >= 0, got ${s}`);
  for (const s of [-1, 0.5]) inputError(() => kvReplace(50, { totalLayers: s }), `kv-replace total layers must be an integer >= 0, got ${s}`);
  assert.equal(kvReplace(50, { totalSteps: 0, totalLayers: 0 }).key, 'kv-replace:layers-10-0');
});

test('style-aligned: the official run (scheduler, inversion, reference-row schedule), shared attention settings, errors', () => {
  const m = styleAligned(50, { scoreShift: 0.5, scoreScale: 0.25, inversionOffset: 3 });
  assert.equal(m.name, 'style-aligned');
  assert.equal(m.guidanceMode, 'conflicting');
  assert.equal(m.key, 'style-aligned:all-attn1');
  assert.equal(m.layer('down_blocks.1.attentions.0.transformer_blocks.0.attn1', 0), true);
  assert.deepEqual([m.queryKeyAdain, m.scoreShift, m.scoreScale, m.sharedGroupNorm], [true, 0.5, 0.25, true]);
  assert.deepEqual(m.weights(at(0)), { cond: CONCAT, uncond: CONCAT });
  assert.deepEqual(styleAligned(50, { guidanceMode: 'conflict-free' }).weights(at(7)), { cond: CONCAT, uncond: PLAIN });
  assert.equal(m.initialLatents(noise, zT, undefined), noise);
  const run = m.run!;
  assert.equal(run.schedulerConfig, STYLE_ALIGNED_SCHEDULER);
  assert.deepEqual({ ...STYLE_ALIGNED_SCHEDULER }, {
    _class_name: 'DDIMScheduler', num_train_timesteps: 1000, beta_start: 0.00085, beta_end: 0.012, beta_schedule: 'scaled_linear',
    trained_betas: null, clip_sample: false, set_alpha_to_one: false, steps_offset: 0, prediction_type: 'epsilon',
    thresholding: false, timestep_spacing: 'leading', rescale_betas_zero_snr: false,
  });
  assert.equal(run.referenceUncond, 'negative');
  assert.equal(run.inversionUncond, 'zeros');
  assert.equal(run.inversionGuidance, 2);
  assert.deepEqual(run.inversionMicro, { originalSize: [1024, 1024], cropTopLeft: [0, 0], targetSize: [1024, 1024] });
  assert.equal(run.noiseForReference, true);
  assert.deepEqual([0, 1, 3, 4, 5, 49].map((i) => run.referenceStep!(i)), [3, 4, 4, 4, 5, 49]);
  assert.deepEqual(Object.keys(run).sort(), ['inversionGuidance', 'inversionMicro', 'inversionUncond', 'noiseForReference', 'referenceStep', 'referenceUncond', 'schedulerConfig']);
  // Defaults: shift log 2, scale 1, offset steps / 10 rounded, at least 2, at most steps - 1.
  const d = styleAligned(8);
  assert.deepEqual([d.scoreShift, d.scoreScale], [Math.log(2), 1]);
  assert.deepEqual([50, 8, 24, 25, 35, 3, 2, 1].map(defaultInversionOffset), [5, 2, 2, 3, 4, 2, 1, 0]);
  assert.equal(styleAligned(1).run!.referenceStep!(0), 0);
  assert.equal(styleAligned(8, { inversionOffset: 0 }).run!.referenceStep!(0), 0);
  assert.equal(styleAligned(8, { inversionOffset: 7 }).run!.referenceStep!(0), 7);
  inputError(() => styleAligned(8, { inversionOffset: 8 }), '--inversion-offset must be an integer in [0, 7] (steps - 1), got 8');
  inputError(() => styleAligned(8, { inversionOffset: -1 }), '--inversion-offset must be an integer in [0, 7] (steps - 1), got -1');
  inputError(() => styleAligned(8, { inversionOffset: 1.5 }), '--inversion-offset must be an integer in [0, 7] (steps - 1), got 1.5');
  inputError(() => styleAligned(8, { scoreShift: Number.NEGATIVE_INFINITY }), '--score-shift must be a finite number, got -Infinity');
  inputError(() => styleAligned(8, { scoreScale: Number.POSITIVE_INFINITY }), '--score-scale must be a finite number, got Infinity');
});

test('createMethod passes each option to the method it names; unknown names list the methods', () => {
  const same = (a: ReferenceMethod, b: ReferenceMethod, steps = 20): void => {
    assert.deepEqual([a.name, a.guidanceMode, a.key, a.scoreShift, a.scoreScale], [b.name, b.guidanceMode, b.key, b.scoreShift, b.scoreScale]);
    for (let i = 0; i < steps; i++) for (const t of [999, 601, 600, 301, 300, 1]) assert.deepEqual(a.weights(at(i, t, steps)), b.weights(at(i, t, steps)));
    for (let i = 0; i < 20; i++) assert.equal(a.layer(i % 2 ? 'up_blocks.0.x' : 'down_blocks.0.x', i), b.layer(i % 2 ? 'up_blocks.0.x' : 'down_blocks.0.x', i));
    assert.deepEqual([...a.initialLatents(noise, zT, undefined).data], [...b.initialLatents(noise, zT, undefined).data]);
    assert.equal(a.run?.referenceStep?.(0), b.run?.referenceStep?.(0));
    assert.equal(a.adjustNoise === undefined, b.adjustNoise === undefined);
  };
  same(createMethod('indetail-ip', 20, { lambdaP: 3, lambdaG: 1, stratifiedSteps: 5, guidanceMode: 'conflicting' }),
    inDetailIP(20, { lambdaP: 3, lambdaG: 1, stratifiedSteps: 5, guidanceMode: 'conflicting' }));
  same(createMethod('indetail-ip', 20, { controlnet: true }), inDetailIP(20, { controlnet: true }));
  assert.notDeepEqual(createMethod('indetail-ip', 20, { controlnet: true }).weights(at(5)).cond, CONCAT);
  same(createMethod('kv-concat', 20, { tAlign: 900, tEarly: 300, permutationSeed: 5, guidanceMode: 'conflict-free' }),
    kvConcat({ tAlign: 900, tEarly: 300, permutationSeed: 5, guidanceMode: 'conflict-free' }));
  same(createMethod('kv-replace', 20, { startStep: 2, startLayer: 3, fromNoise: true }), kvReplace(20, { startStep: 2, startLayer: 3, fromNoise: true }));
  same(createMethod('style-aligned', 20, { scoreShift: 0.1, scoreScale: 0.5, inversionOffset: 4, guidanceMode: 'conflict-free' }),
    styleAligned(20, { scoreShift: 0.1, scoreScale: 0.5, inversionOffset: 4, guidanceMode: 'conflict-free' }));
  assert.equal(createMethod('style-aligned', 20, { inversionOffset: 4 }).run!.referenceStep!(0), 4);
  assert.equal(createMethod('kv-replace', 20, { startLayer: 3 }).key, 'kv-replace:layers-3-16');
  assert.equal(createMethod('indetail-ip', 10).name, 'indetail-ip');
  inputError(() => createMethod('masactrl', 20), 'unknown method "masactrl" (expected one of indetail-ip, kv-concat, kv-replace, style-aligned)');
  inputError(() => createMethod('kv-replace', 20, { startStep: 21 }), '--start-step must be an integer in [0, 20], got 21');
});
