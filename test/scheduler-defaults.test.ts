/**
 * Every scheduler class built from an empty config must behave as diffusers v0.30.3's class with its own
 * defaults (the `__init__` keyword defaults: which beta range and schedule, timestep spacing, which options
 * the class has at all). The trajectory goldens always pass tiny-sd15's complete config, so without this
 * file no default is ever used. Expected values: float64 arithmetic from the formulas (scheduler-reference.ts)
 * and timestep lists worked out by hand from numpy's definitions. Also: options a class does NOT have are
 * ignored (as from_config ignores unknown keys), options it has are validated with one-line errors.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { torchLinspaceF32 } from '../src/schedulers/betas.js';
import { DDIMInverseScheduler, DDIMScheduler, parseDdimConfig } from '../src/schedulers/ddim.js';
import { DDPMScheduler } from '../src/schedulers/ddpm.js';
import { DPMSolverMultistepScheduler } from '../src/schedulers/dpm-solver.js';
import { EulerAncestralDiscreteScheduler } from '../src/schedulers/euler-ancestral.js';
import { EulerDiscreteScheduler } from '../src/schedulers/euler.js';
import { HeunDiscreteScheduler } from '../src/schedulers/heun.js';
import type { KDiffusionScheduler } from '../src/schedulers/k-diffusion.js';
import { LCMScheduler } from '../src/schedulers/lcm.js';
import { LMSDiscreteScheduler } from '../src/schedulers/lms.js';
import { PNDMScheduler } from '../src/schedulers/pndm.js';
import type { TrainingSchedule } from '../src/schedulers/scheduler-config.js';
import { UniPCMultistepScheduler } from '../src/schedulers/unipc.js';
import { alphaBar64, betas64, karras64, near, nearAll, sigmaOf, throwsFile } from './scheduler-reference.js';

const f = Math.fround;
const SRC = 'scheduler_config.json';

/** The beta schedule of an empty config: first / last exact, the middle on the float64 line (or curve). */
function checkBetas(s: TrainingSchedule, start: number, end: number, schedule: 'linear' | 'scaled_linear', what: string): void {
  const want = betas64(start, end, 1000, schedule);
  assert.equal(s.numTrainTimesteps, 1000, `${what}: num_train_timesteps`);
  assert.equal(s.betas.length, 1000);
  for (const i of [0, 1, 250, 333, 500, 777, 998, 999]) near(s.betas[i]!, want[i]!, 2e-6, `${what} betas[${i}]`);
  if (schedule === 'linear') { assert.equal(s.betas[0], f(start), `${what} beta_start`); assert.equal(s.betas[999], f(end), `${what} beta_end`); }
  const abar = alphaBar64(want);
  nearAll([s.alphasCumprod[0]!, s.alphasCumprod[500]!, s.alphasCumprod[999]!], [abar[0]!, abar[500]!, abar[999]!], 1e-4, `${what} alphas_cumprod`);
}

interface KDiffusionDefaults {
  make: (raw: Record<string, unknown>, source?: string) => KDiffusionScheduler;
  beta: [number, number];
  rescale: 'with-eps' | 'none';
  karras: boolean; finalSigmas: boolean; sigmaRange: boolean;
  predictionTypes: string;
  /** setTimesteps(4) with linspace spacing (Heun doubles every timestep after the first). */
  timesteps4: number[];
}

// diffusers v0.30.3 __init__ defaults of each class (scheduling_*.py), as the descriptors must encode them.
const KDIFF: Record<string, KDiffusionDefaults> = {
  EulerDiscreteScheduler: {
    make: (raw, source) => new EulerDiscreteScheduler(raw, { source }), beta: [0.0001, 0.02], rescale: 'with-eps',
    karras: true, finalSigmas: true, sigmaRange: true, predictionTypes: 'epsilon, v_prediction, sample', timesteps4: [999, 666, 333, 0],
  },
  EulerAncestralDiscreteScheduler: {
    make: (raw, source) => new EulerAncestralDiscreteScheduler(raw, { source }), beta: [0.0001, 0.02], rescale: 'with-eps',
    karras: false, finalSigmas: false, sigmaRange: false, predictionTypes: 'epsilon, v_prediction', timesteps4: [999, 666, 333, 0],
  },
  HeunDiscreteScheduler: {
    make: (raw, source) => new HeunDiscreteScheduler(raw, { source }), beta: [0.00085, 0.012], rescale: 'none',
    karras: true, finalSigmas: false, sigmaRange: false, predictionTypes: 'epsilon, v_prediction, sample', timesteps4: [999, 666, 666, 333, 333, 0, 0],
  },
  LMSDiscreteScheduler: {
    make: (raw, source) => new LMSDiscreteScheduler(raw, { source }), beta: [0.0001, 0.02], rescale: 'none',
    karras: true, finalSigmas: false, sigmaRange: false, predictionTypes: 'epsilon, v_prediction, sample', timesteps4: [999, 666, 333, 0],
  },
};

/** The N + 1 sigmas of setTimesteps(4) without Heun's doubling. */
const distinctSigmas = (s: KDiffusionScheduler): number[] => [...new Set(s.sigmas)];

for (const [cls, d] of Object.entries(KDIFF)) {
  test(`${cls} from an empty config: diffusers' defaults (betas, linspace spacing, epsilon, sigma_max init noise)`, () => {
    const s = d.make({});
    checkBetas(s.schedule, d.beta[0], d.beta[1], 'linear', cls);
    assert.equal(s.predictionType, 'epsilon');
    assert.equal(s.source, SRC);
    assert.deepEqual(s.sigmaConfig, { timestepSpacing: 'linspace', stepsOffset: 0, useKarrasSigmas: false, finalSigmasType: 'zero', sigmaMin: null, sigmaMax: null });
    s.setTimesteps(4);
    assert.deepEqual(s.timesteps, d.timesteps4, 'np.linspace(0, 999, 4)[::-1]');
    const abar = alphaBar64(betas64(d.beta[0], d.beta[1], 1000, 'linear'));
    // sigmas at the (integer) timesteps, then the final 0
    // 5e-4: torch rounds 1 - beta to float32, which at beta ~ 1e-4 moves 1 - alphas_cumprod[0] by 1.7e-4 relative
    nearAll(distinctSigmas(s), [sigmaOf(abar[999]!), sigmaOf(abar[666]!), sigmaOf(abar[333]!), sigmaOf(abar[0]!), 0], 5e-4, `${cls} sigmas`);
    assert.equal(s.sigmas[s.sigmas.length - 1], 0);
    // linspace: init_noise_sigma is sigma_max itself (not sqrt(sigma_max^2 + 1))
    assert.equal(s.initNoiseSigma, s.sigmas[0]);
    // leading (an explicit key) takes sqrt(sigma_max^2 + 1)
    const leading = d.make({ timestep_spacing: 'leading' });
    leading.setTimesteps(4);
    assert.deepEqual(leading.timesteps.slice(0, 2), [750, 500]);
    assert.equal(leading.initNoiseSigma, f(Math.sqrt(f(f(leading.sigmas[0]! * leading.sigmas[0]!) + 1))));
  });

  test(`${cls}: the options the class has (and only those) take effect`, () => {
    const plain = d.make({});
    plain.setTimesteps(4);
    // rescale_betas_zero_snr: Euler / Euler a set alphas_cumprod[-1] = 2^-24 after the rescale; Heun / LMS have no such option
    const zsnr = d.make({ rescale_betas_zero_snr: true });
    if (d.rescale === 'with-eps') {
      assert.equal(zsnr.schedule.alphasCumprod[999], 2 ** -24, `${cls} rescaled alphas_cumprod[-1]`);
      assert.ok(Math.abs(zsnr.schedule.alphasCumprod[0]! - plain.schedule.alphasCumprod[0]!) < 1e-5);
    } else assert.deepEqual(zsnr.schedule.alphasCumprod, plain.schedule.alphasCumprod, `${cls} ignores rescale_betas_zero_snr`);

    // use_karras_sigmas: the Karras ramp between the spaced sigmas' ends
    const karras = d.make({ use_karras_sigmas: true });
    karras.setTimesteps(4);
    const ends = distinctSigmas(plain);
    if (d.karras) {
      const want = karras64(ends[3]!, ends[0]!, 4);
      nearAll(distinctSigmas(karras).slice(0, 4), want, 1e-6, `${cls} Karras sigmas`);
      assert.notEqual(karras.sigmas[1], plain.sigmas[1]);
      // timesteps follow the sigmas (log-sigma interpolation): fractional, from 999 down to 0
      near(karras.timesteps[0]!, 999, 1e-4, 'Karras t0');
      assert.ok(!Number.isInteger(karras.timesteps[1]!), 'fractional Karras timestep');
    } else assert.deepEqual(karras.sigmas, plain.sigmas, `${cls} has no use_karras_sigmas`);

    // sigma_min / sigma_max override the Karras range (Euler only)
    const range = d.make({ use_karras_sigmas: true, sigma_min: 0.5, sigma_max: 20 });
    range.setTimesteps(4);
    if (d.sigmaRange) {
      near(range.sigmas[0]!, 20, 1e-6, 'sigma_max');
      near(range.sigmas[3]!, 0.5, 1e-6, 'sigma_min');
      throwsFile(() => d.make({ sigma_min: 'x' }), SRC, 'sigma_min', 'expected a finite number, got "x"');
    } else {
      assert.deepEqual(range.sigmas, karras.sigmas, `${cls} has no sigma_min / sigma_max`);
      assert.doesNotThrow(() => d.make({ sigma_min: 'x', sigma_max: 'y' }));
    }

    // final_sigmas_type sigma_min: the last sigma is the smallest training sigma instead of 0 (Euler only here)
    const fin = d.make({ final_sigmas_type: 'sigma_min' });
    fin.setTimesteps(4);
    const last = fin.sigmas[fin.sigmas.length - 1]!;
    if (d.finalSigmas) {
      const a = plain.schedule.alphasCumprod[0]!;
      assert.equal(last, f(Math.sqrt(f(f(1 - a) / a))));
      near(last, Math.sqrt(d.beta[0] / (1 - d.beta[0])), 5e-4, 'sigma_min = sqrt(beta_0 / (1 - beta_0))');
      throwsFile(() => d.make({ final_sigmas_type: 'one' }), SRC, 'final_sigmas_type', 'expected one of zero, sigma_min, got "one"');
    } else {
      assert.equal(last, 0, `${cls} has no final_sigmas_type`);
      assert.doesNotThrow(() => d.make({ final_sigmas_type: 'one' }));
    }

    // prediction types the class accepts, listed in its error
    assert.equal(d.make({ prediction_type: 'v_prediction' }).predictionType, 'v_prediction');
    if (d.predictionTypes.endsWith('sample')) assert.equal(d.make({ prediction_type: 'sample' }).predictionType, 'sample');
    throwsFile(() => d.make({ prediction_type: 'flow' }), SRC, 'prediction_type', `expected one of ${d.predictionTypes}, got "flow"`);
    throwsFile(() => d.make({ prediction_type: 'flow' }, 'my/sched.json'), 'my/sched.json', 'prediction_type', `expected one of ${d.predictionTypes}, got "flow"`);
    // the shared keys
    throwsFile(() => d.make({ timestep_spacing: 'middle' }), SRC, 'timestep_spacing', 'expected one of leading, trailing, linspace, got "middle"');
    throwsFile(() => d.make({ steps_offset: 0.5 }), SRC, 'steps_offset', 'expected an integer, got 0.5');
    if (d.karras) throwsFile(() => d.make({ use_karras_sigmas: 'yes' }), SRC, 'use_karras_sigmas', 'expected true or false, got "yes"');
    else assert.doesNotThrow(() => d.make({ use_karras_sigmas: 'yes' }));
  });
}

test('Euler-only keys: interpolation_type and timestep_type (continuous only with v_prediction)', () => {
  throwsFile(() => new EulerDiscreteScheduler({ interpolation_type: 'log_linear' }), SRC, 'interpolation_type', 'only linear sigma interpolation is supported; expected "linear", got "log_linear"');
  throwsFile(() => new EulerDiscreteScheduler({ interpolation_type: 'cubic' }), SRC, 'interpolation_type', 'expected one of linear, log_linear, got "cubic"');
  throwsFile(() => new EulerDiscreteScheduler({ timestep_type: 'fractional' }), SRC, 'timestep_type', 'expected one of discrete, continuous, got "fractional"');
  assert.doesNotThrow(() => new EulerDiscreteScheduler({ interpolation_type: 'linear', timestep_type: 'discrete' }));
  // continuous + v_prediction (EDM-style models): the UNet gets 0.25 log(sigma) for each of the N sigmas
  const c = new EulerDiscreteScheduler({ timestep_type: 'continuous', prediction_type: 'v_prediction' });
  c.setTimesteps(4);
  assert.equal(c.timesteps.length, 4);
  c.timesteps.forEach((t, i) => near(t, 0.25 * Math.log(c.sigmas[i]!), 1e-6, `continuous t${i}`));
  // continuous with epsilon stays discrete (diffusers: only with v_prediction)
  const e = new EulerDiscreteScheduler({ timestep_type: 'continuous' });
  e.setTimesteps(4);
  assert.deepEqual(e.timesteps, [999, 666, 333, 0]);
  // the step index is found from the (log-sigma) timestep: a step runs
  const x = Float32Array.of(1, -1);
  const r = c.step(c.scaleModelInput(x, c.timesteps[0]!), c.timesteps[0]!, x);
  assert.equal(r.prevSample.length, 2);
});

test('Heun: beta_schedule exp is refused by name; clip_sample off by default, range 1 when on', () => {
  throwsFile(() => new HeunDiscreteScheduler({ beta_schedule: 'exp' }), SRC, 'beta_schedule', 'expected one of linear, scaled_linear, squaredcos_cap_v2, got "exp"');
  throwsFile(() => new HeunDiscreteScheduler({ beta_schedule: 'exp' }, { source: 'h.json' }), 'h.json', 'beta_schedule', 'expected one of linear, scaled_linear, squaredcos_cap_v2, got "exp"');
  const out = Float32Array.of(-50, 50, 0.1), x = Float32Array.of(0, 0, 0);
  // sample prediction: x0 = model output; clipped only with clip_sample
  const x0 = (raw: Record<string, unknown>): number[] => {
    const s = new HeunDiscreteScheduler({ prediction_type: 'sample', ...raw });
    s.setTimesteps(3);
    return [...s.step(out, s.timesteps[0]!, x).predOriginalSample!];
  };
  assert.deepEqual(x0({}), [-50, 50, f(0.1)]);
  assert.deepEqual(x0({ clip_sample: true }), [-1, 1, f(0.1)]);
  assert.deepEqual(x0({ clip_sample: true, clip_sample_range: 2.5 }), [-2.5, 2.5, f(0.1)]);
  assert.deepEqual(x0({ clip_sample: false, clip_sample_range: 2.5 }), [-50, 50, f(0.1)]);
});

test('DDIM / DDIM inverse / DDPM from an empty config: diffusers defaults (linear 1e-4..0.02, clip 1, alpha 1, leading)', () => {
  const want = {
    numTrainTimesteps: 1000, betaStart: 0.0001, betaEnd: 0.02, betaSchedule: 'linear', trainedBetas: null, clipSample: true, clipSampleRange: 1,
    setAlphaToOne: true, stepsOffset: 0, predictionType: 'epsilon', timestepSpacing: 'leading', thresholding: false, rescaleBetasZeroSnr: false,
  };
  assert.deepEqual(parseDdimConfig({}), want);
  assert.deepEqual(parseDdimConfig({}, 'x.json', true), want);
  for (const s of [new DDIMScheduler(), new DDIMInverseScheduler(), new DDPMScheduler({})]) {
    assert.deepEqual(s.config, want);
    checkBetas({ numTrainTimesteps: 1000, betas: s.betas, alphasCumprod: s.alphasCumprod }, 0.0001, 0.02, 'linear', s.constructor.name);
    // the torch <= 1.13 linspace (the goldens' torch) unless asked otherwise
    assert.deepEqual(s.betas, torchLinspaceF32(0.0001, 0.02, 1000, 'torch1'));
    assert.equal(s.initNoiseSigma, 1);
  }
  // before setTimesteps: every training timestep (descending; ascending for the inverse)
  const ddim = new DDIMScheduler();
  assert.deepEqual(ddim.timesteps, Array.from({ length: 1000 }, (_, i) => 999 - i));
  assert.deepEqual(new DDPMScheduler({}).timesteps, Array.from({ length: 1000 }, (_, i) => 999 - i));
  assert.deepEqual(new DDIMInverseScheduler().timesteps, Array.from({ length: 1000 }, (_, i) => i));
  assert.equal(ddim.finalAlphaCumprod, 1);
  assert.equal(new DDIMInverseScheduler().initialAlphaCumprod, 1);
  assert.equal(new DDIMScheduler({ set_alpha_to_one: false }).finalAlphaCumprod, ddim.alphasCumprod[0]);
  assert.equal(new DDIMInverseScheduler({ set_alpha_to_one: false }).initialAlphaCumprod, ddim.alphasCumprod[0]);
  ddim.setTimesteps(4);
  assert.deepEqual(ddim.timesteps, [750, 500, 250, 0]);
  const ddpm = new DDPMScheduler({});
  assert.equal(ddpm.varianceType, 'fixed_small');
  ddpm.setTimesteps(4);
  assert.deepEqual(ddpm.timesteps, [750, 500, 250, 0]);
  // clip_sample defaults to true: x0 of a sample model is clipped to [-1, 1]
  const r = new DDIMScheduler({ prediction_type: 'sample' });
  r.setTimesteps(4);
  assert.deepEqual([...r.step(Float32Array.of(3, -3, 0.5), 500, Float32Array.of(0, 0, 0)).predOriginalSample], [1, -1, 0.5]);
  // the torch 2 linspace differs from torch 1's in the last bits of some betas (scaled_linear)
  const t1 = new DDIMScheduler({ beta_schedule: 'scaled_linear', beta_start: 0.00085, beta_end: 0.012 });
  const t2 = new DDIMScheduler({ beta_schedule: 'scaled_linear', beta_start: 0.00085, beta_end: 0.012 }, { linspace: 'torch2' });
  assert.notDeepEqual(t1.betas, t2.betas);
  assert.deepEqual(t1.betas, new DDIMScheduler({ beta_schedule: 'scaled_linear', beta_start: 0.00085, beta_end: 0.012 }, { linspace: 'torch1' }).betas);
});

test('DPM-Solver++ and UniPC from an empty config: diffusers defaults', () => {
  const dpm = new DPMSolverMultistepScheduler();
  const uni = new UniPCMultistepScheduler();
  for (const s of [dpm, uni]) {
    checkBetas(s.schedule, 0.0001, 0.02, 'linear', s.constructor.name);
    assert.equal(s.predictionType, 'epsilon');
    assert.equal(s.source, SRC);
    assert.deepEqual(s.sigmaConfig, { timestepSpacing: 'linspace', stepsOffset: 0, useKarrasSigmas: false, finalSigmasType: 'zero', sigmaMin: null, sigmaMax: null });
    s.setTimesteps(4);
    // np.linspace(0, 999, 5).round()[::-1][:-1]: 249.75 -> 250, 499.5 -> 500 (half to even), 749.25 -> 749
    assert.deepEqual(s.timesteps, [999, 749, 500, 250]);
    assert.equal(s.initNoiseSigma, 1);
    assert.equal(s.sigmas[4], 0);
    // with-eps rescale, Karras and final sigma_min exist on both
    assert.equal(new (s.constructor as typeof DPMSolverMultistepScheduler)({ rescale_betas_zero_snr: true }).schedule.alphasCumprod[999], 2 ** -24);
  }
  assert.equal(dpm.algorithmType, 'dpmsolver++');
  assert.equal(dpm.solverOrder, 2);
  assert.equal(dpm.solverType, 'midpoint');
  assert.equal(dpm.lowerOrderFinal, true);
  assert.equal(dpm.eulerAtFinal, false);
  assert.equal(dpm.lambdaMinClipped, Number.NEGATIVE_INFINITY);
  assert.equal(uni.solverOrder, 2);
  assert.equal(uni.solverType, 'bh2');
  assert.equal(uni.lowerOrderFinal, true);
  assert.deepEqual(uni.disableCorrector, []);
  // sample prediction is accepted by both; the list is in the error
  assert.equal(new DPMSolverMultistepScheduler({ prediction_type: 'sample' }).predictionType, 'sample');
  assert.equal(new UniPCMultistepScheduler({ prediction_type: 'sample' }).predictionType, 'sample');
  throwsFile(() => new DPMSolverMultistepScheduler({ prediction_type: 'x' }), SRC, 'prediction_type', 'expected one of epsilon, v_prediction, sample, got "x"');
  throwsFile(() => new UniPCMultistepScheduler({ prediction_type: 'x' }), SRC, 'prediction_type', 'expected one of epsilon, v_prediction, sample, got "x"');
});

test('PNDM and LCM from an empty config: diffusers defaults', () => {
  const p = new PNDMScheduler();
  checkBetas(p.schedule, 0.0001, 0.02, 'linear', 'PNDM');
  assert.equal(p.skipPrkSteps, false);
  assert.equal(p.predictionType, 'epsilon');
  assert.equal(p.timestepSpacing, 'leading');
  assert.equal(p.stepsOffset, 0);
  assert.equal(p.source, SRC);
  assert.equal(p.finalAlphaCumprod, p.schedule.alphasCumprod[0]); // set_alpha_to_one false
  assert.equal(new PNDMScheduler({ set_alpha_to_one: true }).finalAlphaCumprod, 1);
  // PNDM has no rescale_betas_zero_snr
  assert.deepEqual(new PNDMScheduler({ rescale_betas_zero_snr: true }).schedule.alphasCumprod, p.schedule.alphasCumprod);
  // with Runge-Kutta warm-up (the default): leading [0, 250, 500, 750], half step 125
  p.setTimesteps(4);
  assert.deepEqual(p.timesteps, [750, 625, 625, 500, 500, 375, 375, 250, 250, 125, 125, 0, 0]);

  const l = new LCMScheduler();
  checkBetas(l.schedule, 0.00085, 0.012, 'scaled_linear', 'LCM');
  assert.equal(l.originalInferenceSteps, 50);
  assert.equal(l.timestepScaling, 10);
  assert.equal(l.predictionType, 'epsilon');
  assert.equal(l.clipRange, undefined);
  assert.equal(l.finalAlphaCumprod, 1);
  assert.equal(l.source, SRC);
  assert.equal(new LCMScheduler({ set_alpha_to_one: false }).finalAlphaCumprod, l.schedule.alphasCumprod[0]);
  assert.equal(new LCMScheduler({ clip_sample: true }).clipRange, 1);
  assert.equal(new LCMScheduler({ clip_sample: true, clip_sample_range: 3 }).clipRange, 3);
  // LCM's rescale has no 2^-24 (it never divides by sigma)
  assert.equal(new LCMScheduler({ rescale_betas_zero_snr: true }).schedule.alphasCumprod[999], 0);
  // T // 50 = 20: candidates 999, 979, ..., 19; N = 4 takes floor(linspace(0, 50, 4, endpoint=False)) = 0, 12, 25, 37
  l.setTimesteps(4);
  assert.deepEqual(l.timesteps, [999, 759, 499, 259]);
  const ten = new LCMScheduler({ original_inference_steps: 10 });
  ten.setTimesteps(4); // candidates 999, 899, ..., 99; positions 0, 2, 5, 7
  assert.deepEqual(ten.timesteps, [999, 799, 499, 299]);
  throwsFile(() => new LCMScheduler({ original_inference_steps: 0 }), SRC, 'original_inference_steps', 'expected an integer >= 1, got 0');
  throwsFile(() => new LCMScheduler({ timestep_scaling: 'x' }), SRC, 'timestep_scaling', 'expected a finite number, got "x"');
  throwsFile(() => new LCMScheduler({ thresholding: true }), SRC, 'thresholding', 'dynamic thresholding (pixel-space models) is not supported; expected false, got true');
  throwsFile(() => new LCMScheduler({ prediction_type: 'x' }), SRC, 'prediction_type', 'expected one of epsilon, v_prediction, sample, got "x"');
  throwsFile(() => new PNDMScheduler({ prediction_type: 'sample' }), SRC, 'prediction_type', 'expected one of epsilon, v_prediction, got "sample"');
});
