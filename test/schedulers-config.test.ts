/**
 * Scheduler selection and configs as diffusers loads them: the default class from `_class_name`,
 * from_config semantics (kwargs, `_use_default_values`, keys inherited from another class's config),
 * Python JSON (-Infinity), the random-stream consumption of each scheduler, schedule shapes (Heun,
 * LCM, Karras) and the one-line errors (library; the CLI's in schedulers-cli.test.ts, kept apart so this
 * file stays fast enough for the mutation slices).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FileFormatError, InputError } from '../src/errors.js';
import { Config } from '../src/io/config.js';
import { parsePythonJson } from '../src/io/python-json.js';
import type { NoiseSource } from '../src/noise/gaussian.js';
import {
  createInverseScheduler, createScheduler, DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler, EulerDiscreteScheduler, HeunDiscreteScheduler, LCMScheduler, PNDMScheduler,
  SCHEDULERS, type Sampler,
} from '../src/schedulers/index.js';
import { modelDir } from './helpers.js';
import { fileError } from './refusals.js';
import { sd15Scheduler } from './scheduler-goldens.js';

const schedulerConfig = (m: string): Config => Config.read(path.join(modelDir(m), 'scheduler', 'scheduler_config.json'));
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vp-sched-'));

/** A noise source that counts its draws (zeros). */
class CountingNoise implements NoiseSource {
  draws = 0;
  randn(shape: readonly number[]): Float32Array { this.draws++; return new Float32Array(shape.reduce((a, b) => a * b, 1)); }
}

function run(s: Sampler, n: number, noise: NoiseSource): void {
  s.setTimesteps(n);
  let x: Float32Array = new Float32Array(16).fill(0.5);
  for (const t of s.timesteps) x = s.step(s.scaleModelInput(x, t).map((v) => 0.1 * v), t, x, { noise }).prevSample;
}

test('Python JSON: NaN / Infinity / -Infinity outside strings become numbers; strings are untouched', () => {
  const v = parsePythonJson('{"a": -Infinity, "b": [NaN, Infinity, 1], "c": "x -Infinity NaN", "d\\"Infinity": {"e": -Infinity}}') as Record<string, unknown>;
  assert.equal(v.a, Number.NEGATIVE_INFINITY);
  assert.ok(Number.isNaN((v.b as number[])[0]!));
  assert.deepEqual((v.b as number[]).slice(1), [Number.POSITIVE_INFINITY, 1]);
  assert.equal(v.c, 'x -Infinity NaN');
  assert.deepEqual(v['d"Infinity'], { e: Number.NEGATIVE_INFINITY });
  assert.throws(() => parsePythonJson('{"a": Infinit}'), SyntaxError);
});

test('a DPM-Solver config with lambda_min_clipped: -Infinity loads (Config.read) and equals the default; NaN is a one-line error', () => {
  const file = path.join(tmp, 'dpm.json');
  const base = fs.readFileSync(path.join(modelDir('tiny-sd15'), 'scheduler', 'scheduler_config.json'), 'utf8').replace('"DDIMScheduler"', '"DPMSolverMultistepScheduler"');
  fs.writeFileSync(file, base.replace('{', '{\n  "lambda_min_clipped": -Infinity,\n  "algorithm_type": "dpmsolver++",'));
  const c = Config.read(file);
  assert.equal(c.raw.lambda_min_clipped, Number.NEGATIVE_INFINITY);
  const s = createScheduler(undefined, c);
  assert.ok(s instanceof DPMSolverMultistepScheduler);
  s.setTimesteps(8);
  assert.deepEqual(s.timesteps, [889, 778, 667, 556, 445, 334, 223, 112]);
  // a finite clip removes the noisiest timesteps from the range (cosine schedules use -5.1)
  const clipped = createScheduler(undefined, { file, raw: { ...c.raw, beta_schedule: 'squaredcos_cap_v2', lambda_min_clipped: -5.1, timestep_spacing: 'linspace' } });
  clipped.setTimesteps(4);
  assert.ok(clipped.timesteps[0]! < 999, `clipped first timestep ${clipped.timesteps[0]}`);
  fs.writeFileSync(file, base.replace('{', '{\n  "lambda_min_clipped": NaN,'));
  assert.throws(() => createScheduler(undefined, Config.read(file)), (e: unknown) => e instanceof FileFormatError && e.key === 'lambda_min_clipped' && !e.message.includes('\n'));
});

test('default scheduler = the class scheduler_config.json names; unknown classes and names are one-line errors listing the choices', () => {
  assert.ok(createScheduler(undefined, schedulerConfig('tiny-sd15')) instanceof DDIMScheduler);
  assert.ok(createScheduler(undefined, schedulerConfig('tiny-sdxl')) instanceof EulerDiscreteScheduler);
  assert.ok(createScheduler(undefined, schedulerConfig('tiny-ddpm')) instanceof DDPMScheduler);
  const c = schedulerConfig('tiny-sd15');
  assert.throws(() => createScheduler(undefined, { file: c.file, raw: { ...c.raw, _class_name: 'KDPM2DiscreteScheduler' } }),
    (e: unknown) => e instanceof FileFormatError && e.key === '_class_name' && /KDPM2DiscreteScheduler/.test(e.message) && /EulerDiscreteScheduler/.test(e.message));
  assert.throws(() => createScheduler('euler-x', c), (e: unknown) => e instanceof InputError && e.message.includes(SCHEDULERS.join(', ')));
  assert.throws(() => createScheduler('euler', c, { timestepSpacing: 'middle' }), (e: unknown) => e instanceof InputError && /--timestep-spacing/.test(e.message));
});

test('from_config: every matching key is taken (DDPM inherits clip_sample false, PNDM skip_prk_steps from an SDXL Euler config); _use_default_values are dropped', () => {
  const ddpm = createScheduler('ddpm', schedulerConfig('tiny-sd15')) as DDPMScheduler;
  assert.equal(ddpm.config.clipSample, false); // DDPM's own default is true
  assert.equal(ddpm.config.stepsOffset, 1);
  const pndm = createScheduler(undefined, { file: 'x.json', raw: { ...schedulerConfig('tiny-sdxl').raw, _class_name: 'PNDMScheduler' } }) as PNDMScheduler;
  assert.equal(pndm.skipPrkSteps, true);
  const ddim = createScheduler('ddim', schedulerConfig('tiny-sdxl')) as DDIMScheduler;
  assert.equal(ddim.config.setAlphaToOne, false);
  // a key saved as a default is not carried over: Euler's own default spacing (linspace) applies
  const e = createScheduler('euler', { file: 'x.json', raw: { ...schedulerConfig('tiny-sd15').raw, _use_default_values: ['timestep_spacing', 'steps_offset'] } });
  e.setTimesteps(4);
  assert.deepEqual(e.timesteps, [999, 666, 333, 0]);
  assert.equal(e.initNoiseSigma, (e as EulerDiscreteScheduler).sigmas[0]); // linspace: sigma_max itself
  // --timestep-spacing overrides the config
  const t = sd15Scheduler('ddim', 'trailing');
  t.setTimesteps(4);
  assert.deepEqual(t.timesteps, [999, 749, 499, 249]);
});

test('random-stream consumption follows diffusers: Euler every step (unused), Euler a / SDE every step, LCM all but the last, DDPM at t > 0, deterministic ones never', () => {
  const draws = (name: string, n: number): number => { const c = new CountingNoise(); run(sd15Scheduler(name), n, c); return c.draws; };
  assert.equal(draws('euler', 5), 5);
  assert.equal(draws('euler-a', 5), 5);
  assert.equal(draws('dpm++2m-sde', 5), 5);
  assert.equal(draws('lcm', 5), 4);
  assert.equal(draws('ddpm', 5), 5); // the last t is 1 (steps_offset): drawn, scaled by ~1e-10
  for (const name of ['ddim', 'dpm++2m', 'dpm++2m-karras', 'unipc', 'pndm', 'lms', 'heun']) assert.equal(draws(name, 5), 0, name);
  // a stochastic scheduler without a noise source is a clear error
  const s = sd15Scheduler('euler-a');
  s.setTimesteps(2);
  assert.throws(() => s.step(new Float32Array(4), s.timesteps[0]!, new Float32Array(4)), (e: unknown) => e instanceof InputError && /--seed/.test(e.message));
});

test('schedule shapes: Heun 2N-1 calls, PNDM N+1 with the second repeated, LCM within original_inference_steps, Karras Euler keeps fractional timesteps', () => {
  const heun = sd15Scheduler('heun') as HeunDiscreteScheduler;
  heun.setTimesteps(3);
  assert.deepEqual(heun.timesteps, [667, 334, 334, 1, 1]);
  assert.equal(heun.sigmas.length, 6);
  assert.equal(heun.sigmas[5], 0);
  const pndm = sd15Scheduler('pndm');
  pndm.setTimesteps(3);
  assert.deepEqual(pndm.timesteps, [667, 334, 334, 1]);
  // PNDM with Runge-Kutta warm-up (skip_prk_steps false): 3 RK steps of 4 calls at t, t - h/2, t - h/2, t - h, then PLMS
  const c0 = schedulerConfig('tiny-sd15');
  const prk = createScheduler(undefined, { file: c0.file, raw: { ...c0.raw, _class_name: 'PNDMScheduler' } }) as PNDMScheduler;
  prk.setTimesteps(10);
  assert.deepEqual(prk.timesteps, [901, 851, 851, 801, 801, 751, 751, 701, 701, 651, 651, 601, 601, 501, 401, 301, 201, 101, 1]); // numpy, diffusers formula
  // against a float64 numpy re-derivation of diffusers' step_prk / step_plms (model eps = 0.1 x + 0.01 sin(t / 100))
  let x: Float32Array = Float32Array.from({ length: 16 }, (_, i) => -1 + (2 * i) / 15);
  for (const t of prk.timesteps) x = prk.step(x.map((v) => 0.1 * v + 0.01 * Math.sin(t / 100)), t, x).prevSample;
  const want = [-6.39904279, -5.54979929, -4.70055579, -3.85131229, -3.0020688, -2.1528253, -1.3035818, -0.454338304, 0.394905193, 1.24414869, 2.09339219, 2.94263568, 3.79187918, 4.64112268, 5.49036618, 6.33960967];
  want.forEach((w, i) => assert.ok(Math.abs(x[i]! - w) <= 1e-5 * Math.abs(w), `PRK sample ${i}: ${x[i]} vs ${w}`));
  const lcm = sd15Scheduler('lcm') as LCMScheduler;
  lcm.setTimesteps(4);
  assert.deepEqual(lcm.timesteps, [999, 759, 499, 259]);
  assert.throws(() => lcm.setTimesteps(51), (e: unknown) => e instanceof InputError && /1 to 50/.test(e.message));
  // LCM boundary scalings: c_skip -> 0 and c_out -> 1 away from t = 0
  const { cSkip, cOut } = lcm.boundaryScalings(999);
  assert.ok(cSkip < 1e-7 && Math.abs(cOut - 1) < 1e-6);
  const c = schedulerConfig('tiny-sd15');
  const karras = createScheduler('euler', { file: c.file, raw: { ...c.raw, use_karras_sigmas: true } }) as EulerDiscreteScheduler;
  karras.setTimesteps(6);
  assert.ok(karras.timesteps.some((t) => !Number.isInteger(t)), 'fractional timesteps');
  assert.equal(karras.sigmas.length, 7);
  assert.equal(karras.sigmas[6], 0);
  for (let i = 1; i < 6; i++) assert.ok(karras.sigmas[i]! < karras.sigmas[i - 1]! && karras.timesteps[i]! < karras.timesteps[i - 1]!);
  // the Karras range comes from the spaced sigmas (leading: t = 834 .. 1), not the training range
  const plain = sd15Scheduler('euler');
  plain.setTimesteps(6);
  assert.equal(Math.fround(karras.sigmas[0]!), (plain as EulerDiscreteScheduler).sigmas[0]);
  assert.ok(Math.abs(karras.timesteps[0]! - plain.timesteps[0]!) < 1e-3);
});

test('bad scheduler configs give one-line errors naming the key', () => {
  const c = schedulerConfig('tiny-sd15');
  const bad = (name: string | undefined, extra: Record<string, unknown>, key: string): void => {
    assert.throws(() => createScheduler(name, { file: 'sched.json', raw: { ...c.raw, ...extra } as Config['raw'] }),
      (e: unknown) => e instanceof FileFormatError && e.key === key && e.message.startsWith('sched.json') && !e.message.includes('\n'), `${key}`);
  };
  bad('euler', { prediction_type: 'flow' }, 'prediction_type');
  bad('euler', { interpolation_type: 'log_linear' }, 'interpolation_type');
  bad('dpm++2m', { use_lu_lambdas: true }, 'use_lu_lambdas');
  bad(undefined, { _class_name: 'DPMSolverMultistepScheduler', algorithm_type: 'dpmsolver' }, 'algorithm_type');
  bad(undefined, { _class_name: 'DPMSolverMultistepScheduler', solver_order: 4 }, 'solver_order');
  bad('unipc', { predict_x0: false }, 'predict_x0');
  bad('heun', { beta_schedule: 'exp' }, 'beta_schedule');
  bad('ddpm', { variance_type: 'fixed_large_log' }, 'variance_type');
  bad('lms', { num_train_timesteps: 0 }, 'num_train_timesteps');
  bad('euler-a', { trained_betas: [0.1, 0.2] }, 'trained_betas');
});

test('the DDIM file readers and _class_name: each refusal word for word (file, key, expected, actual); camelCase keys in a file are not a parsed config', () => {
  const c = schedulerConfig('tiny-sd15'), F = 'sched.json';
  const from = (extra: Record<string, unknown>) => ({ file: F, raw: { ...c.raw, ...extra } as Config['raw'] });
  const classes = 'DDIMScheduler, DDPMScheduler, EulerDiscreteScheduler, EulerAncestralDiscreteScheduler, DPMSolverMultistepScheduler, UniPCMultistepScheduler, PNDMScheduler, LMSDiscreteScheduler, HeunDiscreteScheduler, LCMScheduler';
  // a one-element list holding a class name is not a name (Object.hasOwn would take it as the string)
  for (const [cls, got] of [['KDPM2DiscreteScheduler', '"KDPM2DiscreteScheduler"'], [['DDIMScheduler'], '["DDIMScheduler"]'], [undefined, 'null'], [7, '7']] as const) {
    fileError(() => createScheduler(undefined, from({ _class_name: cls })), F, `expected a supported scheduler class (${classes}) or choose one with --scheduler, got ${got}`, '_class_name');
  }
  // DDIM's own reader (the default class of tiny-sd15), forward and inverse: non-numbers and unknown strings
  fileError(() => createScheduler(undefined, from({ timestep_spacing: 'sideways' })), F, 'expected one of leading, trailing, linspace, got "sideways"', 'timestep_spacing');
  fileError(() => createInverseScheduler(from({ timestep_spacing: 'sideways' })), F, 'expected one of leading, trailing, got "sideways"', 'timestep_spacing');
  fileError(() => createScheduler('ddim', from({ prediction_type: 'x0' })), F, 'expected one of epsilon, v_prediction, sample, got "x0"', 'prediction_type');
  fileError(() => createInverseScheduler(from({ prediction_type: 5 })), F, 'expected one of epsilon, v_prediction, sample, got 5', 'prediction_type');
  fileError(() => createScheduler(undefined, from({ beta_end: '0.012' })), F, 'expected a finite number, got "0.012"', 'beta_end');
  fileError(() => createScheduler(undefined, from({ num_train_timesteps: [1000] })), F, 'expected a positive integer, got [1000]', 'num_train_timesteps');
  fileError(() => createInverseScheduler(from({ steps_offset: true })), F, 'expected an integer, got true', 'steps_offset');
  // camelCase keys (a parsed DdimConfig's names) in a file: unknown keys, so the file is still read and checked
  // (was: taken for a parsed config, no timesteps, a TypeError at the first step)
  const plain = createScheduler(undefined, c) as DDIMScheduler;
  for (const camel of [{ numTrainTimesteps: 10, predictionType: 'sample' }, { numTrainTimesteps: 10 }, { predictionType: 'sample' }]) {
    const s = createScheduler(undefined, from(camel)) as DDIMScheduler;
    assert.deepEqual(s.config, plain.config, JSON.stringify(camel));
    s.setTimesteps(2);
    assert.deepEqual(s.timesteps, [501, 1]);
    fileError(() => createScheduler(undefined, from({ ...camel, prediction_type: 'x0' })), F, 'expected one of epsilon, v_prediction, sample, got "x0"', 'prediction_type');
    fileError(() => createInverseScheduler(from({ ...camel, num_train_timesteps: 'many' })), F, 'expected a positive integer, got "many"', 'num_train_timesteps');
  }
});
