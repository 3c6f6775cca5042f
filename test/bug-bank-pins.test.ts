/**
 * Pins for the gaps the bug bank (scripts/bug-bank.json, `npm run bugbank`) found: one-line bugs the rest of
 * the suite let through. Each expectation is worked out by hand or is the official code's default (named),
 * on small inputs without a UNet, so the file runs in well under a second.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { kvConcat, kvReplace, styleAligned } from '../src/methods/baselines.js';
import { inDetailIP } from '../src/methods/indetail-ip.js';
import type { StepContext } from '../src/methods/method.js';
import { CONCAT, PLAIN, REPLACE } from '../src/methods/reference-attention.js';
import { fuse } from '../src/methods/vcf/fusion.js';
import { dtLambdaSchedule, gammaSchedule } from '../src/pipelines/inject.js';
import { defaultControlUncondSteps } from '../src/pipelines/vary.js';
import { EDIT_OPTIONS, FUSE_OPTIONS, GENERATE_OPTIONS, INJECT_OPTIONS, VARY_OPTIONS } from '../src/params/job-options.js';
import type { Tensor } from '../src/tensor.js';

const t3 = (shape: number[], data: number[]): Tensor => ({ shape, data: Float32Array.from(data) });
const at = (index: number, timestep: number, steps = 50): StepContext => ({ index, timestep, steps });

test('VCF average with L != D: every text token gets the image tokens\' per-channel mean (L = 3, N = 2, D = 2)', () => {
  // Yh = [[0, 2], [4, -2]]: mean [2, 0]. c_i = (T_i + [2, 0]) / 2. (Indexing the mean by token instead of channel
  // reads mean[2], which does not exist: NaN.)
  const T = t3([1, 3, 2], [1, 2, 3, 4, 5, 6]), Y = t3([1, 2, 2], [0, 2, 4, -2]), U = t3([1, 3, 2], [0, 0, 0, 0, 0, 0]);
  const r = fuse('average', T, Y, U);
  assert.deepEqual(r.cond.shape, [1, 3, 2]);
  assert.deepEqual([...r.cond.data], [1.5, 1, 2.5, 2, 3.5, 3]);
});

test('VCF cross-attention with N != D: the logits are scaled by 1/sqrt(D), the token width (L = 1, N = 3, D = 2)', () => {
  // T = [1, 0], Yh = [[2, 0], [0, 2], [-2, 0]]: logits [2, 0, -2] / sqrt 2; softmax w = [0.7679179, 0.1866937, 0.0453884];
  // read = w Yh = [2 (w0 - w2), 2 w1] = [1.4450591, 0.3733874]; c = (T + read) / 2 = [1.2225296, 0.1866937].
  // (1/sqrt(N) would give [1.1367598, 0.2228052].)
  const r = fuse('cross-attention', t3([1, 1, 2], [1, 0]), t3([1, 3, 2], [2, 0, 0, 2, -2, 0]), t3([1, 1, 2], [0, 0]));
  assert.deepEqual(r.cond.shape, [1, 1, 2]);
  for (const [i, want] of [1.2225296, 0.1866937].entries()) assert.ok(Math.abs(r.cond.data[i]! - want) < 1e-6, `c[${i}] = ${r.cond.data[i]} vs ${want}`);
});

test('InjectFusion --gamma-ramp: linear from a (first injected step) to b (last), both ends reached', () => {
  assert.deepEqual(gammaSchedule([0.2, 0.8], 4).map((g) => +g.toFixed(12)), [0.2, 0.4, 0.6, 0.8]);
  assert.deepEqual(gammaSchedule([0.9, 0.3], 3).map((g) => +g.toFixed(12)), [0.9, 0.6, 0.3]);
  assert.deepEqual(gammaSchedule([0.4, 0.7], 1), [0.4]);
  assert.deepEqual(gammaSchedule(0.5, 3), [0.5, 0.5, 0.5]);
});

test('InjectFusion dt_lambda: 0.9985 at t >= 950 on injected steps, 1 elsewhere (official defaults)', () => {
  const on = dtLambdaSchedule({}, () => 0.5);
  assert.deepEqual([999, 951, 950, 949, 901, 900, 1].map(on), [0.9985, 0.9985, 0.9985, 1, 1, 1, 1]);
  assert.equal(dtLambdaSchedule({}, () => 0)(981), 1, 'gamma 0: plain reconstruction');
  const custom = dtLambdaSchedule({ dtLambda: 0.5, dtEnd: 900 }, () => 1);
  assert.deepEqual([901, 900, 899].map(custom), [0.5, 0.5, 1]);
});

test('InDetail-IP weights: lambda_P weighs the reference, lambda_G the own attention; stratified for the first 10 (25 with a ControlNet) of 50 steps', () => {
  const m = inDetailIP(50, { lambdaP: 3, lambdaG: 1 });
  assert.deepEqual(m.weights(at(0, 981)).cond, { fixedRef: 0.75, fixedOwn: 0.25, soft: 0 });
  assert.deepEqual(m.weights(at(9, 801)).cond, { fixedRef: 0.75, fixedOwn: 0.25, soft: 0 });
  assert.deepEqual(m.weights(at(10, 781)).cond, CONCAT);
  assert.deepEqual(m.weights(at(0, 981)).uncond, PLAIN, 'conflict-free: no reference in the unconditional branch');
  const cn = inDetailIP(50, { controlnet: true });
  assert.deepEqual(cn.weights(at(24, 501)).cond, { fixedRef: 0.5, fixedOwn: 0.5, soft: 0 });
  assert.deepEqual(cn.weights(at(25, 481)).cond, CONCAT);
  assert.equal(m.layer('up_blocks.1.attentions.0.transformer_blocks.0.attn1', 3), true);
  assert.equal(m.layer('down_blocks.1.attentions.0.transformer_blocks.0.attn1', 1), false);
});

test('kv-replace (MasaCtrl) defaults: steps 4.. and transformer blocks 10..15 (forward order) replace K/V', () => {
  const m = kvReplace(50);
  assert.deepEqual([9, 10, 15, 16].map((i) => m.layer('any', i)), [false, true, true, false]);
  assert.deepEqual([3, 4, 49].map((i) => m.weights(at(i, 0)).cond), [PLAIN, REPLACE, REPLACE]);
  assert.deepEqual(m.weights(at(4, 0)).uncond, REPLACE, 'conflicting by default: both branches');
  const s = kvReplace(50, { startStep: 1, startLayer: 2 });
  assert.deepEqual([1, 2].map((i) => s.layer('any', i)), [false, true]);
  assert.deepEqual([0, 1].map((i) => s.weights(at(i, 0)).cond), [PLAIN, REPLACE]);
});

test('kv-concat (RIVAL): reference-only K/V above t_align, noise AdaIN above t_early (separate thresholds)', () => {
  const d = kvConcat();
  assert.deepEqual([601, 600].map((t) => d.weights(at(0, t)).cond), [REPLACE, CONCAT]);
  const m = kvConcat({ tAlign: 600, tEarly: 300 });
  const guided = t3([1, 1, 2, 2], [1, 2, 3, 5]), ref = t3([1, 1, 2, 2], [10, 10, 14, 14]);
  // t = 400: below t_align (concatenated K/V) but above t_early: the noise is AdaIN'd to the reference's statistics.
  assert.deepEqual(m.weights(at(0, 400)).cond, CONCAT);
  const adjusted = m.adjustNoise!(at(0, 400), guided, ref);
  assert.notDeepEqual([...adjusted.data], [...guided.data]);
  assert.ok(Math.abs(adjusted.data.reduce((a, b) => a + b, 0) / 4 - 12) < 1e-5, 'mean of the reference');
  assert.equal(m.adjustNoise!(at(0, 300), guided, ref), guided, 'not at t_early itself');
});

test('style-aligned defaults: shift log 2, scale 1, reference row at zts[5] then zts[max(6, i)] for 50 steps', () => {
  const m = styleAligned(50);
  assert.equal(m.scoreShift, Math.log(2));
  assert.equal(m.scoreScale, 1);
  assert.deepEqual([0, 1, 5, 6, 7, 49].map((i) => m.run!.referenceStep!(i)), [5, 6, 6, 6, 7, 49]);
  assert.deepEqual([0, 1, 2].map((i) => styleAligned(8).run!.referenceStep!(i)), [2, 3, 3]);
});

test('CLI / server defaults equal the library\'s defaults (a flag\'s default cannot drift from the pipeline\'s)', () => {
  // Each value is the library's own default (the `?? x` in the named file), itself the official code's.
  const want: [Record<string, { default?: unknown }>, Record<string, unknown>, string][] = [
    [INJECT_OPTIONS, { tEdit: 400, tNoise: 200, dtLambda: 0.9985, omega: 0, steps: 50 }, 'pipelines/inject.ts'],
    [EDIT_OPTIONS, { tEdit: 500, tBoost: 200, strength: 1, steps: 40 }, 'pipelines/edit.ts'],
    [VARY_OPTIONS, { lambdaP: 1, lambdaG: 1, method: 'indetail-ip', steps: 50, guidance: 7.5 }, 'methods/indetail-ip.ts, pipelines/vary.ts'],
    [FUSE_OPTIONS, { fusion: 'concat', pnoSteps: 0, pnoLr: 1e-2, steps: 50, guidance: 7.5 }, 'pipelines/fuse.ts'],
    [GENERATE_OPTIONS, { steps: 50, guidance: 7.5, numImages: 1 }, 'pipelines/text-to-image.ts'],
  ];
  for (const [spec, values, where] of want) {
    for (const [k, v] of Object.entries(values)) assert.equal(spec[k]?.default, v, `--${k} default vs ${where}`);
  }
});

test('vary with a ControlNet: the unconditional branch runs without it for the official 10 of 50 steps, scaled and rounded', () => {
  // 10 of 50 as in the official structure-guided run; other step counts round to the nearest step (0.6 -> 1, 1.6 -> 2).
  assert.deepEqual([50, 25, 3, 8, 2, 1, 100].map(defaultControlUncondSteps), [10, 5, 1, 2, 0, 0, 20]);
});
