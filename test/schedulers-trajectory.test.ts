/**
 * Every scheduler against diffusers v0.30.3 on the stand-in model eps = xin * a_i + b_i
 * (goldens/tiny-sd15/schedulers/<name>.*): timesteps, sigmas and init_noise_sigma exact; each step's
 * model input and sample, with the stored noise injected AND with the torch generator replayed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Config } from '../src/io/config.js';
import { parsePythonJson } from '../src/io/python-json.js';
import { TorchGenerator } from '../src/noise/torch-generator.js';
import { createScheduler, LMSDiscreteScheduler, UniPCMultistepScheduler, DPMSolverMultistepScheduler, type Sampler } from '../src/schedulers/index.js';
import type { Tensor } from '../src/tensor.js';
import { golden, goldenPath, modelDir } from './helpers.js';

const f = Math.fround;
/** golden file -> --scheduler flags */
export const SCHEDULER_GOLDENS: Record<string, { name: string; spacing?: string }> = {
  euler_leading: { name: 'euler', spacing: 'leading' }, euler_trailing: { name: 'euler', spacing: 'trailing' }, euler_ancestral: { name: 'euler-a' },
  dpmpp_2m: { name: 'dpm++2m' }, dpmpp_2m_karras: { name: 'dpm++2m-karras' }, dpmpp_2m_sde: { name: 'dpm++2m-sde' }, unipc: { name: 'unipc' },
  pndm: { name: 'pndm' }, lms: { name: 'lms' }, heun: { name: 'heun' }, lcm: { name: 'lcm' }, ddpm: { name: 'ddpm' },
};

interface StepMeta { index: number; timestep: number; a: number; b: number; noise_draws: number; lms_coefficients?: number[]; this_order?: number; update_order?: number }
export interface SchedulerGoldenMeta {
  stochastic: boolean;
  trajectory: { timesteps: number[]; sigmas?: number[]; init_noise_sigma: number; steps: StepMeta[]; step_kwargs: string; num_inference_steps: number };
  pipeline: { prompt: string; negative_prompt: string; guidance_scale: number; num_inference_steps: number; height: number; width: number; call: string; timesteps: number[]; unet_calls: number; unet_timesteps: number[]; noise_draws: number };
}

export function meta(file: string): SchedulerGoldenMeta {
  return parsePythonJson(fs.readFileSync(goldenPath('tiny-sd15', `schedulers/${file}.json`), 'utf8')) as SchedulerGoldenMeta;
}

export function sd15Scheduler(name: string, spacing?: string): Sampler {
  const c = Config.read(path.join(modelDir('tiny-sd15'), 'scheduler', 'scheduler_config.json'));
  return createScheduler(name, c, { timestepSpacing: spacing });
}

function relErr(a: Float32Array, b: Float32Array): { abs: number; rel: number } {
  let abs = 0, scale = 0;
  for (let i = 0; i < a.length; i++) { abs = Math.max(abs, Math.abs(a[i]! - b[i]!)); scale = Math.max(scale, Math.abs(b[i]!)); }
  return { abs, rel: abs / (scale || 1) };
}

/** Runs the stand-in model loop; noise: 'stored' injects the golden draws, 'torch' replays the generator. */
function runTrajectory(file: string, noiseMode: 'stored' | 'torch'): { worst: number; s: Sampler } {
  const m = meta(file), g = golden('tiny-sd15', `schedulers/${file}`);
  const { name, spacing } = SCHEDULER_GOLDENS[file]!;
  const s = sd15Scheduler(name, spacing);
  s.setTimesteps(m.trajectory.num_inference_steps);
  const seed = /manual_seed\((\d+)\)/.exec(m.trajectory.step_kwargs);
  const gen = seed ? new TorchGenerator(Number(seed[1])) : undefined;
  const xT = g['trajectory.x_T']!;
  const sigma0 = f(s.initNoiseSigma);
  let x: Float32Array = sigma0 === 1 ? xT.data : xT.data.map((v) => v * sigma0);
  let worst = relErr(x, g['trajectory.initial_sample']!.data).rel;
  s.timesteps.forEach((t, i) => {
    const st = m.trajectory.steps[i]!;
    const xin = s.scaleModelInput(x, t);
    worst = Math.max(worst, relErr(xin, g[`trajectory.step_${i}.model_input`]!.data).rel);
    const a = f(st.a), b = f(st.b);
    const eps = xin.map((v) => f(v * a) + b);
    const noise = noiseMode === 'stored' ? g[`trajectory.step_${i}.noise`]?.data : gen;
    const out = s.step(eps, t, x, { noise });
    const e = relErr(out.prevSample, g[`trajectory.step_${i}.prev_sample`]!.data).rel;
    assert.ok(e < 1e-5, `${file} step ${i}: prev_sample relative error ${e}`);
    worst = Math.max(worst, e);
    if (s instanceof LMSDiscreteScheduler) {
      st.lms_coefficients!.forEach((c, j) => assert.ok(Math.abs(s.lastCoefficients[j]! - c) <= 1e-5 * Math.abs(c) + 1e-9, `${file} step ${i} LMS coefficient ${j}: ${s.lastCoefficients[j]} vs ${c}`));
    }
    if (s instanceof UniPCMultistepScheduler) {
      assert.equal(s.lastOrder, st.this_order, `${file} step ${i} order`);
      const cs = g[`trajectory.step_${i}.corrected_sample`];
      if (cs) worst = Math.max(worst, relErr(s['lastCorrected']!, cs.data).rel);
    }
    if (s instanceof DPMSolverMultistepScheduler) assert.equal(s.lastOrder, st.update_order, `${file} step ${i} order`);
    x = out.prevSample;
  });
  const fin = relErr(x, g['trajectory.final_sample']!.data);
  assert.ok(fin.rel < 1e-5, `${file}: final sample relative error ${fin.rel}`);
  return { worst: Math.max(worst, fin.rel), s };
}

for (const file of Object.keys(SCHEDULER_GOLDENS)) {
  test(`${file}: timesteps, sigmas, init_noise_sigma exact; stand-in trajectory matches diffusers`, () => {
    const m = meta(file), g = golden('tiny-sd15', `schedulers/${file}`);
    const { name, spacing } = SCHEDULER_GOLDENS[file]!;
    const s = sd15Scheduler(name, spacing);
    s.setTimesteps(m.trajectory.num_inference_steps);
    assert.deepEqual([...s.timesteps], m.trajectory.timesteps, 'timesteps');
    const gs = g['trajectory.sigmas'];
    if (gs) assert.deepEqual([...(s as unknown as { sigmas: Float32Array }).sigmas], [...gs.data], 'sigmas');
    assert.equal(f(s.initNoiseSigma), f(m.trajectory.init_noise_sigma), 'init_noise_sigma');
    const p = sd15Scheduler(name, spacing);
    p.setTimesteps(m.pipeline.num_inference_steps);
    assert.deepEqual([...p.timesteps], m.pipeline.unet_timesteps, 'pipeline timesteps (UNet calls)');
    const stored = runTrajectory(file, 'stored');
    const replay = m.stochastic ? runTrajectory(file, 'torch') : stored;
    console.log(`${file}: trajectory max relative error ${stored.worst.toExponential(2)} (stored noise), ${replay.worst.toExponential(2)} (torch generator)`);
  });
}

export type { Tensor };
