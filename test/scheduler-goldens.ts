/** The scheduler goldens (goldens/tiny-sd15/schedulers/) shared by the scheduler tests. */
import fs from 'node:fs';
import path from 'node:path';
import { Config } from '../src/io/config.js';
import { parsePythonJson } from '../src/io/python-json.js';
import { createScheduler, type Sampler } from '../src/schedulers/index.js';
import { goldenPath, modelDir } from './helpers.js';

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

