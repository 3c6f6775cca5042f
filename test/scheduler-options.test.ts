/**
 * Scheduler options and inputs the trajectory goldens never exercise, each against a value worked out by
 * hand (numpy's definitions for timestep lists, the papers' update formulas in float64 for one step on a
 * few numbers), and the one-line errors with their exact text (key, expected, actual). Pure arithmetic:
 * no model runs.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { NoiseSource } from '../src/noise/gaussian.js';
import { DDIMInverseScheduler, DDIMScheduler, parseDdimConfig, type DdimConfigJson } from '../src/schedulers/ddim.js';
import { DDPMScheduler } from '../src/schedulers/ddpm.js';
import { EulerAncestralDiscreteScheduler } from '../src/schedulers/euler-ancestral.js';
import { EulerDiscreteScheduler } from '../src/schedulers/euler.js';
import { HeunDiscreteScheduler } from '../src/schedulers/heun.js';
import {
  checkSchedulerName, createInverseScheduler, createScheduler, DPMSolverMultistepScheduler, LMSDiscreteScheduler, PNDMScheduler, SCHEDULER_CLASSES,
  SCHEDULERS, schedulerNameForClass, UniPCMultistepScheduler, type Sampler,
} from '../src/schedulers/index.js';
import { torchLinspaceF32 } from '../src/schedulers/betas.js';
import { predictOriginalAndEpsilon } from '../src/schedulers/ddim.js';
import { predictX0 } from '../src/schedulers/k-diffusion.js';
import { LCMScheduler } from '../src/schedulers/lcm.js';
import { karrasSigmas, logF32, npArange, npInterpIndex, npLinspace, roundHalfEven, sigmaToT } from '../src/schedulers/numpy.js';
import { checkInferenceSteps, indexForTimestep, stepNoise } from '../src/schedulers/sampler.js';
import { karras64, near, nearAll, throwsFile, throwsInput } from './scheduler-reference.js';

const f = Math.fround;
const SRC = 'scheduler_config.json';
const X = Float32Array.of(-1.2, -0.5, 0, 0.3, 0.9, 1.5);
const OUT = Float32Array.of(0.4, -0.2, 0.1, 0.05, -0.3, 0.25);

/** A noise source that counts its draws and returns 0.5, -0.5, ... */
class CountingNoise implements NoiseSource {
  draws = 0;
  randn(shape: readonly number[]): Float32Array { this.draws++; return Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, (_, k) => (k % 2 ? -0.5 : 0.5)); }
}

// ---------------------------------------------------------------------------------------------
// numpy pieces and the sampler helpers

test('numpy: round half to even, arange, linspace (endpoint, num 1), interp, Karras ramp, sigma_to_t', () => {
  assert.deepEqual([0.5, 1.5, 2.5, 3.5, -0.5, -1.5, 2.4, 2.6, 7].map(roundHalfEven), [0, 2, 2, 4, -0, -2, 2, 3, 7]);
  assert.deepEqual(npArange(0, 0, 1), []);
  assert.deepEqual(npArange(5, 6, 1), [5]);
  assert.deepEqual(npArange(0, 1, 0.25), [0, 0.25, 0.5, 0.75]);
  assert.deepEqual(npArange(1000, 0, -250), [1000, 750, 500, 250]);
  nearAll(npArange(1000, 0, -1000 / 3), [1000, 2000 / 3, 1000 / 3], 1e-15, 'arange thirds');
  assert.deepEqual(npLinspace(0, 1, 5), [0, 0.25, 0.5, 0.75, 1]);
  assert.deepEqual(npLinspace(0, 1, 4, false), [0, 0.25, 0.5, 0.75]);
  assert.deepEqual(npLinspace(3, 7, 1), [3]);
  assert.deepEqual(npLinspace(3, 7, 1, false), [3]);
  assert.equal(npLinspace(0, 0.3, 4)[3], 0.3); // the endpoint exactly (3 * 0.1 is 0.30000000000000004)
  nearAll(npLinspace(0, 0.3, 4, false), [0, 0.075, 0.15, 0.225], 1e-15, 'linspace without endpoint');
  const fp = Float32Array.of(10, 20, 40);
  const got = npInterpIndex([-1, 0, 0.5, 1, 1.25, 2, 3], fp);
  assert.deepEqual(got, [10, 10, 15, 20, 25, 40, 40]);
  assert.ok(Number.isNaN(npInterpIndex([Number.NaN], fp)[0]!));
  nearAll(karrasSigmas(0.1, 10, 4), karras64(0.1, 10, 4), 1e-14, 'Karras');
  nearAll(karrasSigmas(0.1, 10, 2), [10, 0.1], 1e-14, 'Karras ends');
  assert.deepEqual(logF32(Float32Array.of(1, 4)), Float32Array.of(0, f(Math.log(4))));
  const ls = logF32(Float32Array.of(0.1, 1, 10));
  near(sigmaToT(1, ls), 1, 1e-7, 'sigma 1');
  near(sigmaToT(Math.sqrt(10), ls), 1.5, 1e-6, 'sigma sqrt 10');
  near(sigmaToT(0.3, ls), Math.log(1 / 3) / Math.log(0.1), 1e-6, 'sigma 0.3');
  assert.equal(sigmaToT(0.05, ls), 0); // below the smallest: clipped to t = 0
  assert.equal(sigmaToT(0, ls), 0);
  assert.equal(sigmaToT(100, ls), 2); // above the largest: t = T - 1
});

test('sampler helpers: the step index (second occurrence, last for DPM), step noise, step count and lengths, with exact messages', () => {
  assert.equal(indexForTimestep([5, 3, 1], 3), 1);
  assert.equal(indexForTimestep([5, 3, 3, 1], 3), 2); // the second occurrence (img2img starting mid-schedule)
  assert.equal(indexForTimestep([3, 3, 3], 3), 1);
  assert.equal(indexForTimestep([5, 3, 1], 5), 0);
  assert.equal(indexForTimestep([5, 3, 1], 4, 'last'), 2);
  assert.equal(indexForTimestep([5, 3, 1], 3, 'last'), 1);
  throwsInput(() => indexForTimestep([5, 3, 1], 4), "timestep 4 is not one of this schedule's timesteps (call setTimesteps first)");
  throwsInput(() => indexForTimestep([], 4, 'last'), "timestep 4 is not one of this schedule's timesteps (call setTimesteps first)");
  throwsInput(() => stepNoise(undefined, 3, 'euler-a'), 'the euler-a scheduler is stochastic and needs a noise source (give --seed)');
  throwsInput(() => stepNoise(new Float32Array(2), 3, 'lcm'), 'step noise has 2 values, the sample 3');
  const z = Float32Array.of(1, 2, 3);
  assert.equal(stepNoise(z, 3, 'x'), z);
  const c = new CountingNoise();
  assert.deepEqual(stepNoise(c, 3, 'x'), Float32Array.of(0.5, -0.5, 0.5));
  assert.equal(c.draws, 1);
  for (const n of [1, 7, 1000]) assert.doesNotThrow(() => checkInferenceSteps(n, 1000));
  for (const n of [0, -1, 1001, 2.5, Number.NaN]) throwsInput(() => checkInferenceSteps(n, 1000), `number of inference steps must be an integer from 1 to 1000 (num_train_timesteps), got ${n}`);
  throwsInput(() => checkInferenceSteps(11, 10), 'number of inference steps must be an integer from 1 to 10 (num_train_timesteps), got 11');
});

// ---------------------------------------------------------------------------------------------
// k-diffusion family

test('x0 from the model output at sigma 0.75 by hand (epsilon, v_prediction, sample)', () => {
  const out = Float32Array.of(0.5, -1), x = Float32Array.of(1, 0.2);
  nearAll(predictX0('epsilon', out, x, 0.75), [1 - 0.375, 0.2 + 0.75], 1e-7, 'epsilon');
  // v: out * (-sigma / sqrt(sigma^2 + 1)) + x / (sigma^2 + 1) = -0.6 out + x / 1.5625
  nearAll(predictX0('v_prediction', out, x, 0.75), [-0.3 + 0.64, 0.6 + 0.128], 1e-6, 'v_prediction');
  assert.deepEqual(predictX0('sample', out, x, 0.75), out);
});

test('Euler, Euler a, Heun, LMS steps by hand; step bookkeeping and its errors', () => {
  // Euler: x + (x - x0) / sigma * (sigma_next - sigma); the noise is drawn (diffusers' generator) but unused
  const e = new EulerDiscreteScheduler({ prediction_type: 'v_prediction' });
  e.setTimesteps(4);
  const s0 = e.sigmas[0]!, s1 = e.sigmas[1]!;
  const x0 = [...X].map((v, k) => OUT[k]! * (-s0 / Math.sqrt(s0 * s0 + 1)) + v / (s0 * s0 + 1));
  const want = [...X].map((v, k) => v + ((v - x0[k]!) / s0) * (s1 - s0));
  const c = new CountingNoise();
  const r = e.step(OUT, 999, X, { noise: c });
  nearAll(r.prevSample, want, 1e-5, 'Euler v step', 1);
  nearAll(r.predOriginalSample!, x0, 1e-5, 'Euler v x0', 1);
  assert.equal(c.draws, 1);
  const e2 = new EulerDiscreteScheduler({ prediction_type: 'v_prediction' });
  e2.setTimesteps(4);
  assert.deepEqual(e2.step(OUT, 999, X, { noise: Float32Array.of(9, 9, 9, 9, 9, 9) }).prevSample, r.prevSample);
  const e3 = new EulerDiscreteScheduler({ prediction_type: 'v_prediction' });
  e3.setTimesteps(4);
  assert.deepEqual(e3.step(OUT, 999, X).prevSample, r.prevSample);

  // Euler a: to sigma_down, then noise of std sigma_up (sigma_up^2 = s1^2 (s0^2 - s1^2) / s0^2)
  const a = new EulerAncestralDiscreteScheduler({});
  a.setTimesteps(4);
  const up = Math.sqrt((s1 * s1 * (s0 * s0 - s1 * s1)) / (s0 * s0)), down = Math.sqrt(s1 * s1 - up * up);
  const z = Float32Array.of(1, -1, 0.5, 2, 0, -0.25);
  const ea = a.step(OUT, 999, X, { noise: z });
  nearAll(ea.prevSample, [...X].map((v, k) => v + OUT[k]! * (down - s0) + z[k]! * up), 1e-5, 'Euler a step', 1);
  throwsInput(() => { const b = new EulerAncestralDiscreteScheduler({}); b.setTimesteps(4); b.step(OUT, 999, X); }, 'the euler-a scheduler is stochastic and needs a noise source (give --seed)');

  // the step index: from the first timestep, then counted; errors before setTimesteps and past the end
  const h = new HeunDiscreteScheduler({});
  assert.throws(() => h.scaleModelInput(X, 999), (err: unknown) => err instanceof Error && err.message === 'call setTimesteps() before using the scheduler');
  h.setTimesteps(2); // [999, 0, 0]
  assert.equal(h.stateInFirstOrder, true);
  throwsInput(() => h.step(OUT, 5, X), "timestep 5 is not one of this schedule's timesteps (call setTimesteps first)");
  throwsInput(() => h.step(OUT.subarray(1), 999, X), 'model output has 5 values but the sample has 6');
  let x: Float32Array = X;
  x = h.step(OUT, 999, x).prevSample;
  assert.equal(h.stateInFirstOrder, false);
  h.setTimesteps(2); // resets the pending Heun state
  assert.equal(h.stateInFirstOrder, true);
  for (const t of h.timesteps) x = h.step(OUT, t, x).prevSample;
  assert.equal(h.stateInFirstOrder, false); // as diffusers: the last (plain Euler) call leaves a pending derivative
  throwsInput(() => h.step(OUT, 0, x), 'the scheduler has already taken all 3 steps');
  // Heun's corrector: x_prev = x_saved + dt (d_first + d_second) / 2 at the second call (sample prediction: x0 = output)
  const hs = new HeunDiscreteScheduler({ prediction_type: 'sample' });
  hs.setTimesteps(3);
  const [hs0, hs1] = [hs.sigmas[0]!, hs.sigmas[1]!];
  const p1 = hs.step(OUT, hs.timesteps[0]!, X).prevSample;
  const d1 = [...X].map((v, k) => (v - OUT[k]!) / hs0);
  nearAll(p1, [...X].map((v, k) => v + d1[k]! * (hs1 - hs0)), 1e-6, 'Heun predictor', 1);
  const out2 = OUT.map((v) => v / 2);
  const p2 = hs.step(out2, hs.timesteps[1]!, p1).prevSample;
  nearAll(p2, [...X].map((v, k) => v + ((d1[k]! + (p1[k]! - out2[k]!) / hs1) / 2) * (hs1 - hs0)), 1e-6, 'Heun corrector', 1);

  // LMS: no coefficients before a step; setTimesteps clears the derivative history
  const l = new LMSDiscreteScheduler({});
  assert.deepEqual(l.lastCoefficients, []);
  l.setTimesteps(4);
  const first = l.step(OUT, 999, X).prevSample;
  const c1 = l.lastCoefficients;
  assert.equal(c1.length, 1);
  near(c1[0]!, l.sigmas[1]! - l.sigmas[0]!, 1e-6, 'order-1 LMS coefficient = sigma_next - sigma');
  l.step(OUT, 666, first);
  assert.equal(l.lastCoefficients.length, 2);
  l.setTimesteps(4);
  assert.deepEqual(l.step(OUT, 999, X).prevSample, first);
  assert.deepEqual(l.lastCoefficients, c1);
});

// ---------------------------------------------------------------------------------------------
// PNDM

test('PNDM: timestep spacings, PLMS first steps and v_prediction by hand (formula 9), set_alpha_to_one, errors', () => {
  const p = (raw: Record<string, unknown>, n: number): number[] => { const s = new PNDMScheduler({ skip_prk_steps: true, ...raw }); s.setTimesteps(n); return s.timesteps; };
  assert.deepEqual(p({ timestep_spacing: 'linspace' }, 4), [999, 666, 666, 333, 0]); // np.linspace(0, 999, 4).round()
  assert.deepEqual(p({ timestep_spacing: 'linspace' }, 7), [999, 832, 832, 666, 500, 333, 166, 0]); // 166.5 -> 166, 499.5 -> 500, 832.5 -> 832
  assert.deepEqual(p({ timestep_spacing: 'trailing' }, 4), [999, 749, 749, 499, 249]);
  assert.deepEqual(p({ timestep_spacing: 'trailing' }, 3), [999, 666, 666, 332]);
  assert.deepEqual(p({}, 4), [750, 500, 500, 250, 0]);
  assert.deepEqual(p({ steps_offset: 1 }, 2), [501, 1, 1]);
  throwsInput(() => new PNDMScheduler({}).setTimesteps(3), 'PNDM with Runge-Kutta warm-up steps (skip_prk_steps false) needs at least 4 steps, got 3');
  assert.doesNotThrow(() => new PNDMScheduler({}).setTimesteps(4));
  throwsInput(() => new PNDMScheduler({ skip_prk_steps: true }).setTimesteps(1), 'PNDM (PLMS) needs at least 2 steps, got 1');
  throwsInput(() => new PNDMScheduler({ skip_prk_steps: true }).setTimesteps(0), 'number of inference steps must be an integer from 1 to 1000 (num_train_timesteps), got 0');
  throwsFile(() => new PNDMScheduler({ timestep_spacing: 'x' }), SRC, 'timestep_spacing', 'expected one of leading, trailing, linspace, got "x"');
  throwsFile(() => new PNDMScheduler({ skip_prk_steps: 1 }, { source: 'p.json' }), 'p.json', 'skip_prk_steps', 'expected true or false, got 1');

  // formula (9): x_prev = sqrt(ap / a) x - (ap - a) eps / (a sqrt(1 - ap) + sqrt(a (1 - a) ap))
  const prev = (s: PNDMScheduler, t: number, pt: number, x: ArrayLike<number>, eps: ArrayLike<number>): number[] => {
    const ac = s.schedule.alphasCumprod, a = ac[t]!, ap = pt >= 0 ? ac[pt]! : s.finalAlphaCumprod;
    return Array.from(x, (v, k) => Math.sqrt(ap / a) * v - ((ap - a) * eps[k]!) / (a * Math.sqrt(1 - ap) + Math.sqrt(a * (1 - a) * ap)));
  };
  for (const setOne of [false, true]) {
    const s = new PNDMScheduler({ skip_prk_steps: true, prediction_type: 'v_prediction', set_alpha_to_one: setOne });
    s.setTimesteps(2); // [500, 0, 0]
    assert.deepEqual(s.timesteps, [500, 0, 0]);
    const ac = s.schedule.alphasCumprod;
    const eps = (t: number, out: Float32Array, x: Float32Array): number[] => [...out].map((v, k) => Math.sqrt(ac[t]!) * v + Math.sqrt(1 - ac[t]!) * x[k]!);
    // call 0: a first-order step 500 -> 0 with eps_0 (v converted to eps)
    const e0 = eps(500, OUT, X);
    const r0 = s.step(OUT, 500, X).prevSample;
    nearAll(r0, prev(s, 500, 0, X, e0), 1e-5, 'PLMS call 0', 1);
    // call 1 (t = 0 again): redo 500 -> 0 from the saved sample with (eps_0 + eps_1) / 2; v converts at t = 500
    const out1 = OUT.map((v) => -v);
    const e1 = eps(500, out1, X);
    const r1 = s.step(out1, 0, r0).prevSample;
    nearAll(r1, prev(s, 500, 0, X, e0.map((v, k) => (v + e1[k]!) / 2)), 1e-5, 'PLMS call 1', 1);
    // call 2: second order on the stored outputs [out_0, out_2] (call 1 stores nothing): (3 out_2 - out_0) / 2, converted at
    // t = 0 with this sample, from t = 0 to -500: the final alpha (1 with set_alpha_to_one, else alphas_cumprod[0])
    const out2 = OUT.map((v) => v * 0.5);
    const e2 = eps(0, out2, r1), e0at0 = eps(0, OUT, r1);
    const r2 = s.step(out2, 0, r1).prevSample;
    nearAll(r2, prev(s, 0, -500, r1, e2.map((v, k) => (3 * v - e0at0[k]!) / 2)), 1e-5, `PLMS call 2 (set_alpha_to_one ${setOne})`, 1);
  }
  const s = new PNDMScheduler({ skip_prk_steps: true });
  assert.throws(() => s.step(OUT, 500, X), (e: unknown) => e instanceof Error && e.message === 'call setTimesteps() before stepping the scheduler');
  s.setTimesteps(2);
  throwsInput(() => s.step(OUT, 1.5, X), 'PNDM timesteps are integers, got 1.5');
  throwsInput(() => s.step(OUT.subarray(1), 500, X), 'model output has 5 values but the sample has 6');
  throwsFile(() => s.step(OUT, 1000, X), SRC, undefined, 'PNDM timestep 1000 is outside 0..999');
  const s2 = new PNDMScheduler({ skip_prk_steps: true });
  s2.setTimesteps(2);
  throwsFile(() => s2.step(OUT, -1, X), SRC, undefined, 'PNDM timestep -1 is outside 0..999');
});

// ---------------------------------------------------------------------------------------------
// DDPM

test('DDPM: spacings, previous timestep, the three variance types and t = 0 by hand, errors', () => {
  const ts = (raw: Record<string, unknown>, n: number): number[] => { const s = new DDPMScheduler(raw); s.setTimesteps(n); return s.timesteps; };
  assert.deepEqual(ts({ timestep_spacing: 'trailing' }, 4), [999, 749, 499, 249]);
  assert.deepEqual(ts({ timestep_spacing: 'trailing' }, 3), [999, 666, 332]);
  assert.deepEqual(ts({ timestep_spacing: 'linspace' }, 4), [999, 666, 333, 0]);
  assert.deepEqual(ts({ timestep_spacing: 'linspace' }, 7), [999, 832, 666, 500, 333, 166, 0]);
  assert.deepEqual(ts({ steps_offset: 1 }, 4), [751, 501, 251, 1]);
  const fresh = new DDPMScheduler({});
  assert.equal(fresh.previousTimestep(500), 499); // before setTimesteps: every training step
  fresh.setTimesteps(4);
  assert.equal(fresh.previousTimestep(500), 250);
  throwsInput(() => new DDPMScheduler({}).setTimesteps(1001), 'number of inference steps must be an integer from 1 to 1000 (num_train_timesteps), got 1001');

  // x_prev = c0 x0 + ct x_t + std z (Ho et al. eq. 7): c0 = sqrt(ap) beta_t / (1 - a), ct = sqrt(alpha_t) (1 - ap) / (1 - a)
  const z = Float32Array.of(1, -1, 0.5, 2, 0, -0.25);
  for (const vt of ['fixed_small', 'fixed_small_log', 'fixed_large']) {
    const s = new DDPMScheduler({ variance_type: vt, clip_sample: false });
    assert.equal(s.varianceType, vt);
    s.setTimesteps(4);
    const ac = s.alphasCumprod, a = ac[500]!, ap = ac[250]!, alphaT = a / ap, betaT = 1 - alphaT;
    const small = ((1 - ap) / (1 - a)) * betaT;
    const std = vt === 'fixed_large' ? Math.sqrt(betaT) : Math.sqrt(small);
    const x0 = [...X].map((v, k) => (v - Math.sqrt(1 - a) * OUT[k]!) / Math.sqrt(a));
    const want = [...X].map((v, k) => (Math.sqrt(ap) * betaT / (1 - a)) * x0[k]! + (Math.sqrt(alphaT) * (1 - ap) / (1 - a)) * v + std * z[k]!);
    const r = s.step(OUT, 500, X, { noise: z });
    nearAll(r.prevSample, want, 1e-5, `DDPM ${vt}`, 1);
    nearAll(r.predOriginalSample, x0, 1e-5, `DDPM ${vt} x0`, 1);
    // a noise source is drawn from the same way
    assert.deepEqual(s.step(OUT, 500, X, { noise: { randn: () => z } }).prevSample, r.prevSample);
  }
  // t = 0: no noise is drawn; the previous alpha is 1 (x_prev = x0)
  const s = new DDPMScheduler({ clip_sample: false });
  s.setTimesteps(4);
  const c = new CountingNoise();
  const r0 = s.step(OUT, 0, X, { noise: c });
  assert.equal(c.draws, 0);
  nearAll(r0.prevSample, r0.predOriginalSample, 1e-6, 'DDPM t = 0', 1);
  // t = 1 with every training step: the previous alpha is alphas_cumprod[0]
  const all = new DDPMScheduler({ clip_sample: false });
  all.setTimesteps(1000);
  const ac = all.alphasCumprod, a = ac[1]!, ap = ac[0]!, betaT = 1 - a / ap;
  const x0 = [...X].map((v, k) => (v - Math.sqrt(1 - a) * OUT[k]!) / Math.sqrt(a));
  const std = Math.sqrt(Math.max(((1 - ap) / (1 - a)) * betaT, 1e-20));
  // 5e-4: at t = 1, beta_t = 1 - a_1 / a_0 ~ 1e-4 is float32 (torch): 1 - (rounded ratio) carries ~6e-4 relative error
  nearAll(all.step(OUT, 1, X, { noise: z }).prevSample, [...X].map((v, k) => (Math.sqrt(ap) * betaT / (1 - a)) * x0[k]! + (Math.sqrt(a / ap) * (1 - ap) / (1 - a)) * v + std * z[k]!), 5e-4, 'DDPM t = 1', 1);
  throwsInput(() => s.step(OUT, 500, X), 'DDPM sampling needs a noise source (give --seed)');
  throwsFile(() => new DDPMScheduler({ variance_type: 'fixed_large_log' }), SRC, 'variance_type',
    'fixed_large_log gives NaN samples in diffusers (the square root of a log variance); expected fixed_small, fixed_small_log or fixed_large, got "fixed_large_log"');
  throwsFile(() => new DDPMScheduler({ variance_type: 'learned_range' }, { source: 'd.json' }), 'd.json', 'variance_type',
    'expected one of fixed_small, fixed_small_log, fixed_large, fixed_large_log (learned variances need a model that predicts them), got "learned_range"');
  throwsFile(() => new DDPMScheduler({ prediction_type: 'x' }), SRC, 'prediction_type', 'expected one of epsilon, v_prediction, sample, got "x"');
});

// ---------------------------------------------------------------------------------------------
// LCM

test('LCM: consistency step by hand (epsilon, v_prediction, sample + clip), the last step, bounds, errors', () => {
  const bs = new LCMScheduler({ timestep_scaling: 1 }).boundaryScalings(1); // s = 1: c_skip = 0.25 / 1.25, c_out = 1 / sqrt(1.25)
  near(bs.cSkip, 0.2, 1e-7, 'c_skip'); near(bs.cOut, 1 / Math.sqrt(1.25), 1e-7, 'c_out');
  const b0 = new LCMScheduler({}).boundaryScalings(0);
  assert.deepEqual(b0, { cSkip: 1, cOut: 0 });
  const b1 = new LCMScheduler({}).boundaryScalings(1); // s = 10
  near(b1.cSkip, 0.25 / 100.25, 1e-7, 'c_skip(1)'); near(b1.cOut, 10 / Math.sqrt(100.25), 1e-7, 'c_out(1)');

  const z = Float32Array.of(1, -1, 0.5, 2, 0, -0.25);
  const cases: [string, Record<string, unknown>, (a: number, v: number, o: number) => number][] = [
    ['epsilon', {}, (a, v, o) => (v - Math.sqrt(1 - a) * o) / Math.sqrt(a)],
    ['v_prediction', { prediction_type: 'v_prediction' }, (a, v, o) => Math.sqrt(a) * v - Math.sqrt(1 - a) * o],
    ['sample', { prediction_type: 'sample', clip_sample: true, clip_sample_range: 0.2 }, (_a, _v, o) => Math.min(0.2, Math.max(-0.2, o))],
  ];
  for (const [what, raw, x0of] of cases) {
    const s = new LCMScheduler({ timestep_scaling: 0.01, ...raw }); // a small scaling keeps c_skip visible
    s.setTimesteps(2); // [999, 499]
    assert.deepEqual(s.timesteps, [999, 499]);
    const ac = s.schedule.alphasCumprod;
    const { cSkip, cOut } = s.boundaryScalings(999);
    near(cSkip, 0.25 / ((9.99 ** 2) + 0.25), 1e-6, 'c_skip(999)');
    const den = [...X].map((v, k) => cOut * x0of(ac[999]!, v, OUT[k]!) + cSkip * v);
    const r = s.step(OUT, 999, X, { noise: z });
    nearAll(r.predOriginalSample!, den, 1e-5, `LCM ${what} denoised`, 1);
    nearAll(r.prevSample, den.map((d, k) => Math.sqrt(ac[499]!) * d + Math.sqrt(1 - ac[499]!) * z[k]!), 1e-5, `LCM ${what} step`, 1);
    // the last step returns the denoised sample and draws nothing
    const c = new CountingNoise();
    const last = s.step(OUT, 499, r.prevSample, { noise: c });
    assert.equal(c.draws, 0);
    assert.deepEqual(last.prevSample, last.predOriginalSample);
  }
  // original_inference_steps = T: the step before t = 0 noises to alphas_cumprod[0]
  const full = new LCMScheduler({ original_inference_steps: 1000 });
  full.setTimesteps(1000);
  assert.deepEqual(full.timesteps.slice(-3), [2, 1, 0]);
  const ac = full.schedule.alphasCumprod;
  const r = full.step(OUT, 1, X, { noise: z });
  nearAll(r.prevSample, [...r.predOriginalSample!].map((d, k) => Math.sqrt(ac[0]!) * d + Math.sqrt(1 - ac[0]!) * z[k]!), 1e-5, 'LCM to t = 0', 1);

  const s = new LCMScheduler({});
  assert.throws(() => s.step(OUT, 999, X), (e: unknown) => e instanceof Error && e.message === 'call setTimesteps() before stepping the scheduler');
  for (const n of [0, 51, 2.5]) throwsInput(() => s.setTimesteps(n), `LCM supports 1 to 50 steps (original_inference_steps), got ${n}`);
  for (const n of [1, 50]) assert.doesNotThrow(() => s.setTimesteps(n));
  s.setTimesteps(1);
  assert.deepEqual(s.timesteps, [999]);
  throwsInput(() => new LCMScheduler({ original_inference_steps: 1001 }).setTimesteps(1), 'LCM original_inference_steps 1001 exceeds num_train_timesteps 1000');
  s.setTimesteps(4);
  throwsInput(() => s.step(OUT, 999, X), 'the lcm scheduler is stochastic and needs a noise source (give --seed)');
  throwsInput(() => s.step(OUT.subarray(1), 999, X), 'model output has 5 values but the sample has 6');
});

// ---------------------------------------------------------------------------------------------
// DDIM

test('DDIM config errors: each key with expected and actual, the file named; parsed configs pass through', () => {
  const E = (raw: unknown, key: string | undefined, detail: string, inverse = false): void =>
    throwsFile(() => (inverse ? new DDIMInverseScheduler(raw as DdimConfigJson) : new DDIMScheduler(raw as DdimConfigJson)), SRC, key, detail);
  for (const raw of [null, 5, [1, 2], 'x']) throwsFile(() => parseDdimConfig(raw), SRC, undefined, 'scheduler config is not a JSON object');
  throwsFile(() => parseDdimConfig(null, 'a.json'), 'a.json', undefined, 'scheduler config is not a JSON object');
  E({ num_train_timesteps: 1.5 }, 'num_train_timesteps', 'expected a positive integer, got 1.5');
  E({ num_train_timesteps: '1000' }, 'num_train_timesteps', 'expected a positive integer, got "1000"');
  E({ beta_start: 'x' }, 'beta_start', 'expected a finite number, got "x"');
  E({ beta_end: Number.NaN }, 'beta_end', 'expected a finite number, got null');
  E({ beta_schedule: 'cosine' }, 'beta_schedule', 'expected one of linear, scaled_linear, squaredcos_cap_v2, got "cosine"');
  E({ trained_betas: 'abc' }, 'trained_betas', 'expected null or a list of numbers in [0, 1), got "abc"');
  E({ num_train_timesteps: 1, trained_betas: [1] }, 'trained_betas', 'expected null or a list of numbers in [0, 1), got [1]');
  E({ num_train_timesteps: 1, trained_betas: [-0.1] }, 'trained_betas', 'expected null or a list of numbers in [0, 1), got [-0.1]');
  E({ num_train_timesteps: 1, trained_betas: ['0.1'] }, 'trained_betas', 'expected null or a list of numbers in [0, 1), got ["0.1"]');
  E({ num_train_timesteps: 2, trained_betas: [0.1] }, 'trained_betas', 'expected 2 betas (num_train_timesteps), got 1');
  E({ thresholding: true }, 'thresholding', 'dynamic thresholding (pixel-space models such as DeepFloyd IF) is not supported; expected false, got true');
  E({ thresholding: 'no' }, 'thresholding', 'expected true or false, got "no"');
  E({ clip_sample: 1 }, 'clip_sample', 'expected true or false, got 1');
  E({ clip_sample_range: 0 }, 'clip_sample_range', 'expected a positive number, got 0');
  E({ clip_sample_range: Number.POSITIVE_INFINITY }, 'clip_sample_range', 'expected a positive number, got null');
  E({ set_alpha_to_one: 'yes' }, 'set_alpha_to_one', 'expected true or false, got "yes"');
  E({ steps_offset: 0.5 }, 'steps_offset', 'expected an integer, got 0.5');
  E({ prediction_type: 'flow' }, 'prediction_type', 'expected one of epsilon, v_prediction, sample, got "flow"');
  E({ timestep_spacing: 'uniform' }, 'timestep_spacing', 'expected one of leading, trailing, linspace, got "uniform"');
  E({ timestep_spacing: 'linspace' }, 'timestep_spacing', 'expected one of leading, trailing, got "linspace"', true);
  E({ rescale_betas_zero_snr: 1 }, 'rescale_betas_zero_snr', 'expected true or false, got 1');
  // the boundaries that are valid
  assert.deepEqual([...new DDIMScheduler({ num_train_timesteps: 1, trained_betas: [0] }).betas], [0]);
  const tb = new DDIMScheduler({ num_train_timesteps: 3, trained_betas: [0.1, 0.2, 0.3], trained_betas_ignored: 1 });
  nearAll(tb.alphasCumprod, [0.9, 0.72, 0.504], 1e-6, 'trained betas');
  assert.deepEqual(tb.config.trainedBetas, [0.1, 0.2, 0.3]);
  assert.equal(parseDdimConfig({ timestep_spacing: 'linspace' }).timestepSpacing, 'linspace'); // the forward scheduler (inverse = false by default)
  assert.equal(parseDdimConfig({ thresholding: true }, SRC, true).thresholding, false); // the inverse ignores the key
  assert.equal(parseDdimConfig({ clip_sample_range: 0.5 }).clipSampleRange, 0.5);
  assert.equal(parseDdimConfig({ steps_offset: -1 }).stepsOffset, -1);
  // a parsed config is used as is (not parsed again as a snake_case file)
  const parsed = parseDdimConfig({ num_train_timesteps: 500, prediction_type: 'v_prediction', set_alpha_to_one: false });
  const fromParsed = new DDIMScheduler(parsed);
  assert.equal(fromParsed.config, parsed);
  assert.equal(fromParsed.alphasCumprod.length, 500);
  assert.equal(new DDIMInverseScheduler(parsed).config, parsed);
  // a parsed forward config with linspace spacing cannot drive the inverse scheduler
  throwsFile(() => new DDIMInverseScheduler(parseDdimConfig({ timestep_spacing: 'linspace' })), SRC, 'timestep_spacing', 'DDIMInverseScheduler supports leading or trailing, got "linspace"');
  throwsFile(() => new DDIMInverseScheduler(parseDdimConfig({ timestep_spacing: 'linspace' }), { source: 'i.json' }), 'i.json', 'timestep_spacing', 'DDIMInverseScheduler supports leading or trailing, got "linspace"');
  throwsFile(() => new DDIMScheduler({ beta_schedule: 'x' }, { source: 'f.json' }), 'f.json', 'beta_schedule', 'expected one of linear, scaled_linear, squaredcos_cap_v2, got "x"');
});

test('DDIM: linspace with halves (round half to even), trailing N = 1, variance, ranges, eta and noise errors, the inverse source timestep', () => {
  const s = new DDIMScheduler({ timestep_spacing: 'linspace' });
  s.setTimesteps(7); // i * 166.5: 166.5 -> 166, 499.5 -> 500, 832.5 -> 832
  assert.deepEqual(s.timesteps, [999, 832, 666, 500, 333, 166, 0]);
  s.setTimesteps(2);
  assert.deepEqual(s.timesteps, [999, 0]);
  const tr = new DDIMScheduler({ timestep_spacing: 'trailing' });
  tr.setTimesteps(1);
  assert.deepEqual(tr.timesteps, [999]);
  const inv = new DDIMInverseScheduler({ timestep_spacing: 'trailing' });
  inv.setTimesteps(1);
  assert.deepEqual(inv.timesteps, [999]);
  inv.setTimesteps(3);
  assert.deepEqual(inv.timesteps, [332, 666, 999]);

  const d = new DDIMScheduler({});
  assert.throws(() => d.prevTimestep(500), (e: unknown) => e instanceof Error && e.message === 'call setTimesteps() before stepping the scheduler');
  for (const n of [0, 1001, 1.5]) throwsInput(() => d.setTimesteps(n), `number of inference steps must be an integer from 1 to 1000 (num_train_timesteps), got ${n}`);
  d.setTimesteps(4);
  const ac = d.alphasCumprod;
  near(d.variance(500, 250), ((1 - ac[250]!) / (1 - ac[500]!)) * (1 - ac[500]! / ac[250]!), 1e-6, 'variance(500, 250)');
  assert.equal(d.variance(0, -250), 0); // the final alpha is 1: (1 - 1) / (1 - a_0) * ...
  assert.equal(d.alphaProd(0), ac[0]);
  assert.equal(d.alphaProd(-1), 1);
  for (const t of [1.5, -1, 1000]) throwsInput(() => d.addNoise(X, OUT, t), `timestep ${t} is outside the scheduler's range 0..999`);
  assert.doesNotThrow(() => d.addNoise(X, OUT, 0));
  assert.doesNotThrow(() => d.addNoise(X, OUT, 999));
  throwsInput(() => d.addNoise(X, OUT.subarray(1), 5), 'model output has 6 values but the sample has 5');
  throwsInput(() => d.step(OUT, 500, X, { eta: -0.5 }), 'eta must be a number >= 0, got -0.5');
  throwsInput(() => d.step(OUT, 500, X, { eta: Number.NaN }), 'eta must be a number >= 0, got NaN');
  throwsInput(() => d.step(OUT, 500, X, { eta: 0.5 }), 'a DDIM step with eta > 0 needs variance noise (a tensor or a noise source)');
  throwsInput(() => d.asymmetricStep(OUT, OUT, 500, X, { eta: 0.5 }), 'a DDIM step with eta > 0 needs variance noise (a tensor or a noise source)');
  // eta 0 leaves a noise source untouched
  const c = new CountingNoise();
  d.step(OUT, 500, X, { eta: 0, noise: c });
  assert.equal(c.draws, 0);
  // dtLambda scales the direction only: x_prev = sqrt(ap) x0 + sqrt(1 - ap) (dt eps)
  const plain = new DDIMScheduler({ clip_sample: false });
  plain.setTimesteps(4);
  const a = plain.alphasCumprod[500]!, ap = plain.alphasCumprod[250]!;
  const x0 = [...X].map((v, k) => (v - Math.sqrt(1 - a) * OUT[k]!) / Math.sqrt(a));
  nearAll(plain.asymmetricStep(OUT, OUT, 500, X, { dtLambda: 0.5 }).prevSample, x0.map((v, k) => Math.sqrt(ap) * v + Math.sqrt(1 - ap) * 0.5 * OUT[k]!), 1e-5, 'dtLambda 0.5', 1);
  assert.deepEqual(plain.asymmetricStep(OUT, OUT, 500, X, { dtLambda: 1 }).prevSample, plain.step(OUT, 500, X).prevSample);

  // the inverse: an inverse step at t starts from min(t - T // N, T - 1); alpha of t < 0 is the initial alpha
  const i4 = new DDIMInverseScheduler({});
  i4.setTimesteps(4);
  assert.equal(i4.sourceTimestep(249), -1);
  assert.equal(i4.sourceTimestep(999), 749);
  assert.equal(i4.sourceTimestep(1200), 950);
  assert.equal(i4.sourceTimestep(1300), 999);
  assert.equal(i4.alphaProd(0), i4.alphasCumprod[0]);
  assert.equal(i4.alphaProd(-1), 1);
});

// ---------------------------------------------------------------------------------------------
// Selection by name and by class (index.ts)

test('scheduler names: the diffusers class and from_config kwargs of each; names of classes; name errors', () => {
  const TABLE: Record<string, [string, Record<string, unknown>]> = {
    ddim: ['DDIMScheduler', {}], ddpm: ['DDPMScheduler', {}], euler: ['EulerDiscreteScheduler', {}], 'euler-a': ['EulerAncestralDiscreteScheduler', {}],
    'dpm++2m': ['DPMSolverMultistepScheduler', { algorithm_type: 'dpmsolver++', solver_order: 2, use_karras_sigmas: false }],
    'dpm++2m-karras': ['DPMSolverMultistepScheduler', { algorithm_type: 'dpmsolver++', solver_order: 2, use_karras_sigmas: true }],
    'dpm++2m-sde': ['DPMSolverMultistepScheduler', { algorithm_type: 'sde-dpmsolver++', solver_order: 2, use_karras_sigmas: false }],
    unipc: ['UniPCMultistepScheduler', {}], pndm: ['PNDMScheduler', { skip_prk_steps: true }], lms: ['LMSDiscreteScheduler', {}],
    heun: ['HeunDiscreteScheduler', {}], lcm: ['LCMScheduler', {}],
  };
  assert.deepEqual([...SCHEDULERS], Object.keys(TABLE));
  const cfg = { file: 'sched.json', raw: { _class_name: 'DDIMScheduler', use_karras_sigmas: true, solver_order: 3, algorithm_type: 'sde-dpmsolver++', skip_prk_steps: false } };
  for (const [name, [cls, kwargs]] of Object.entries(TABLE)) {
    assert.equal(SCHEDULER_CLASSES[name as keyof typeof SCHEDULER_CLASSES].className, cls, name);
    assert.deepEqual(SCHEDULER_CLASSES[name as keyof typeof SCHEDULER_CLASSES].kwargs, kwargs, name);
    const s = createScheduler(name, cfg);
    assert.equal(s.constructor.name, cls, name);
    assert.equal(checkSchedulerName(name), name);
    if (Object.keys(kwargs).length === 0) assert.equal(schedulerNameForClass(cls), name);
  }
  // the kwargs win over the config's keys
  assert.equal((createScheduler('dpm++2m', cfg) as DPMSolverMultistepScheduler).sigmaConfig.useKarrasSigmas, false);
  assert.equal((createScheduler('dpm++2m', cfg) as DPMSolverMultistepScheduler).solverOrder, 2);
  assert.equal((createScheduler('dpm++2m', cfg) as DPMSolverMultistepScheduler).algorithmType, 'dpmsolver++');
  assert.equal((createScheduler('dpm++2m-karras', { file: 'x', raw: {} }) as DPMSolverMultistepScheduler).sigmaConfig.useKarrasSigmas, true);
  assert.equal((createScheduler('dpm++2m-sde', { file: 'x', raw: {} }) as DPMSolverMultistepScheduler).algorithmType, 'sde-dpmsolver++');
  assert.equal((createScheduler('pndm', cfg) as PNDMScheduler).skipPrkSteps, true);
  assert.equal(schedulerNameForClass('DPMSolverMultistepScheduler'), 'dpm++2m');
  assert.equal(schedulerNameForClass('KDPM2DiscreteScheduler'), undefined);
  throwsInput(() => checkSchedulerName('dpm++3m'), `unknown scheduler "dpm++3m" for --scheduler (expected one of: ${SCHEDULERS.join(', ')})`);
  throwsInput(() => checkSchedulerName('x', '--inversion-scheduler'), `unknown scheduler "x" for --inversion-scheduler (expected one of: ${SCHEDULERS.join(', ')})`);
  throwsInput(() => createScheduler('x', cfg), `unknown scheduler "x" for --scheduler (expected one of: ${SCHEDULERS.join(', ')})`);
});

test('default scheduler = _class_name (each class, the file named in its errors); --timestep-spacing; _use_default_values; the inverse', () => {
  const CLASSES = ['DDIMScheduler', 'DDPMScheduler', 'EulerDiscreteScheduler', 'EulerAncestralDiscreteScheduler', 'DPMSolverMultistepScheduler',
    'UniPCMultistepScheduler', 'PNDMScheduler', 'LMSDiscreteScheduler', 'HeunDiscreteScheduler', 'LCMScheduler'];
  for (const cls of CLASSES) {
    const s: Sampler = createScheduler(undefined, { file: 'my/sched.json', raw: { _class_name: cls, skip_prk_steps: true } });
    assert.equal(s.constructor.name, cls);
    s.setTimesteps(4);
    assert.ok(s.timesteps.length >= 4, cls);
    assert.throws(() => createScheduler(undefined, { file: 'my/sched.json', raw: { _class_name: cls, prediction_type: 'flow' } }),
      (e: unknown) => e instanceof Error && e.message.startsWith('my/sched.json [prediction_type]: expected one of'), cls);
  }
  const list = CLASSES.join(', ');
  throwsFile(() => createScheduler(undefined, { file: 'm.json', raw: {} }), 'm.json', '_class_name', `expected a supported scheduler class (${list}) or choose one with --scheduler, got null`);
  throwsFile(() => createScheduler(undefined, { file: 'm.json', raw: { _class_name: 7 } }), 'm.json', '_class_name', `expected a supported scheduler class (${list}) or choose one with --scheduler, got 7`);
  throwsFile(() => createScheduler(undefined, { file: 'm.json', raw: { _class_name: 'KDPM2DiscreteScheduler' } }), 'm.json', '_class_name', `expected a supported scheduler class (${list}) or choose one with --scheduler, got "KDPM2DiscreteScheduler"`);
  // an inherited property name is not a class
  throwsFile(() => createScheduler(undefined, { file: 'm.json', raw: { _class_name: 'toString' } }), 'm.json', '_class_name', `expected a supported scheduler class (${list}) or choose one with --scheduler, got "toString"`);
  // a name ignores _class_name
  assert.ok(createScheduler('euler', { file: 'm.json', raw: { _class_name: 'KDPM2DiscreteScheduler' } }) instanceof EulerDiscreteScheduler);
  // --timestep-spacing overrides the config (and is checked)
  const cfg = { file: 'm.json', raw: { _class_name: 'EulerDiscreteScheduler', timestep_spacing: 'leading', steps_offset: 1 } };
  const lin = createScheduler(undefined, cfg, { timestepSpacing: 'linspace' });
  lin.setTimesteps(4);
  assert.deepEqual(lin.timesteps, [999, 666, 333, 0]);
  const lead = createScheduler(undefined, cfg);
  lead.setTimesteps(4);
  assert.deepEqual(lead.timesteps, [751, 501, 251, 1]);
  throwsInput(() => createScheduler(undefined, cfg, { timestepSpacing: 'middle' }), '--timestep-spacing must be one of leading, trailing, linspace, got "middle"');
  throwsInput(() => createScheduler('ddim', cfg, { timestepSpacing: 'Linspace' }), '--timestep-spacing must be one of leading, trailing, linspace, got "Linspace"');
  // keys saved as defaults are dropped: the class's own default applies
  const dropped = createScheduler(undefined, { file: 'm.json', raw: { ...cfg.raw, _use_default_values: ['timestep_spacing', 'steps_offset'] } });
  dropped.setTimesteps(4);
  assert.deepEqual(dropped.timesteps, [999, 666, 333, 0]);
  // the inverse scheduler of a config, defaults dropped, its errors naming the file
  const inv = createInverseScheduler({ file: 'm.json', raw: { set_alpha_to_one: false, steps_offset: 1, _use_default_values: ['set_alpha_to_one'] } });
  assert.ok(inv instanceof DDIMInverseScheduler);
  assert.equal(inv.initialAlphaCumprod, 1);
  inv.setTimesteps(4);
  assert.deepEqual(inv.timesteps, [1, 251, 501, 751]);
  throwsFile(() => createInverseScheduler({ file: 'm.json', raw: { timestep_spacing: 'linspace' } }), 'm.json', 'timestep_spacing', 'expected one of leading, trailing, got "linspace"');
  // unknown keys of other classes are ignored by each class (from_config)
  assert.doesNotThrow(() => createScheduler('unipc', { file: 'm.json', raw: { skip_prk_steps: true, variance_type: 'learned', clip_sample: 'x' } }));
  assert.ok(createScheduler('lms', { file: 'm.json', raw: {} }) instanceof LMSDiscreteScheduler);
  assert.ok(createScheduler('unipc', { file: 'm.json', raw: {} }) instanceof UniPCMultistepScheduler);
});

// ---------------------------------------------------------------------------------------------
// One-line pins for the surviving mutants of the schedulers slice (notes/old/s19/mutation-schedulers.md)

test('scheduler survivors: linspace from a non-zero start and its exact endpoint, one-step torch.linspace, DDIM list / message / inverse betas, Euler draw size', () => {
  // np.linspace(1, 2, 3) and without the endpoint; 49 * (1 / 49) is 0.9999999999999999 in float64: the last is exactly stop.
  assert.deepEqual(npLinspace(1, 2, 3), [1, 1.5, 2]);
  assert.deepEqual(npLinspace(1, 2, 4, false), [1, 1.25, 1.5, 1.75]);
  assert.equal(npLinspace(0, 1, 50)[49], 1);
  assert.notEqual(49 * (1 / 49), 1);
  // torch.linspace(a, b, 1) = [a] in both flavours.
  for (const fl of ['torch1', 'torch2'] as const) assert.deepEqual([...torchLinspaceF32(0.3, 0.7, 1, fl)], [f(0.3)]);
  // trained_betas with ONE entry outside [0, 1) is refused (not only when all are).
  throwsFile(() => new DDIMScheduler({ num_train_timesteps: 3, trained_betas: [0.1, 1, 0.2] }), SRC, 'trained_betas', 'expected null or a list of numbers in [0, 1), got [0.1,1,0.2]');
  // The prediction_type message lists the types, comma separated.
  throwsInput(() => predictOriginalAndEpsilon('x0' as never, OUT, X, 0.5), 'prediction_type must be one of epsilon, v_prediction, sample, got "x0"');
  // DDIMInverseScheduler's betas default to torch 1's linspace (as DDIMScheduler's): scaled_linear differs between the two.
  const cfg = { beta_schedule: 'scaled_linear', beta_start: 0.00085, beta_end: 0.012 } as DdimConfigJson;
  const inv = new DDIMInverseScheduler(cfg).alphasCumprod;
  assert.deepEqual(inv, new DDIMInverseScheduler(cfg, { linspace: 'torch1' }).alphasCumprod);
  assert.deepEqual(inv, new DDIMScheduler(cfg).alphasCumprod);
  assert.notDeepEqual(inv, new DDIMInverseScheduler(cfg, { linspace: 'torch2' }).alphasCumprod);
  // Euler draws (and discards) randn of the sample's size: the generator stays in step with diffusers.
  const shapes: number[][] = [];
  const e = new EulerDiscreteScheduler({});
  e.setTimesteps(4);
  e.step(OUT, e.timesteps[0]!, X, { noise: { randn: (shape) => { shapes.push([...shape]); return new Float32Array(shape.reduce((a, b) => a * b, 1)); } } });
  assert.deepEqual(shapes, [[X.length]]);
});
