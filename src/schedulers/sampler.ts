/**
 * The one interface every sampling loop drives (diffusers' scheduler protocol):
 *
 *   s.setTimesteps(N); x = x_T * s.initNoiseSigma
 *   for t of s.timesteps: eps = unet(s.scaleModelInput(x, t), t); x = s.step(eps, t, x, { noise }).prevSample
 *
 * `timesteps` is what the UNet receives (fractional for some schedules, repeated for Heun / PNDM);
 * multistep schedulers keep their history inside. Stochastic schedulers draw their step noise from
 * `noise` in diffusers' order, so a torch-compatible source seeded like diffusers' generator
 * reproduces diffusers' samples.
 */
import { InputError } from '../errors.js';
import type { NoiseSource } from '../noise/gaussian.js';

export interface SchedulerStepOptions {
  /** DDIM's eta (0: deterministic); other schedulers ignore it. */
  eta?: number;
  /** Step noise: a source drawn from (randn of the sample's size), or this step's noise tensor. */
  noise?: NoiseSource | Float32Array;
}

export interface SchedulerStepResult {
  prevSample: Float32Array;
  /** The step's x0 estimate, when the scheduler computes one (previews). */
  predOriginalSample?: Float32Array;
}

export interface Sampler {
  /** The timesteps the UNet receives, in calling order (one UNet call each). */
  readonly timesteps: readonly number[];
  /** Initial latents are the unit-variance noise times this. */
  readonly initNoiseSigma: number;
  setTimesteps(numInferenceSteps: number): void;
  /** The UNet's input for the sample at timestep t (the current step). */
  scaleModelInput(sample: Float32Array, t: number): Float32Array;
  step(modelOutput: Float32Array, t: number, sample: Float32Array, opts?: SchedulerStepOptions): SchedulerStepResult;
}

/** One noise tensor of `n` values for a stochastic step (from the source, or the given tensor). */
export function stepNoise(noise: SchedulerStepOptions['noise'], n: number, scheduler: string): Float32Array {
  if (noise === undefined) throw new InputError(`the ${scheduler} scheduler is stochastic and needs a noise source (give --seed)`);
  const z = noise instanceof Float32Array ? noise : noise.randn([n]);
  if (z.length !== n) throw new InputError(`step noise has ${z.length} values, the sample ${n}`);
  return z;
}

export function checkInferenceSteps(n: number, numTrainTimesteps: number): void {
  if (!Number.isSafeInteger(n) || n < 1 || n > numTrainTimesteps) {
    throw new InputError(`number of inference steps must be an integer from 1 to ${numTrainTimesteps} (num_train_timesteps), got ${n}`);
  }
}

export function checkSameLength(modelOutput: Float32Array, sample: Float32Array): void {
  if (modelOutput.length !== sample.length) throw new InputError(`model output has ${modelOutput.length} values but the sample has ${sample.length}`);
}

/**
 * diffusers' `_init_step_index` without a begin index: the position of t in the schedule; when t occurs
 * more than once, the second occurrence (so an img2img start does not skip a sigma).
 * `missing`: what the DPM-Solver family does for an unknown t (the last index); others raise.
 */
export function indexForTimestep(timesteps: readonly number[], t: number, missing: 'last' | 'error' = 'error'): number {
  const hits: number[] = [];
  for (let i = 0; i < timesteps.length && hits.length < 2; i++) if (timesteps[i] === t) hits.push(i);
  if (hits.length === 0) {
    if (missing === 'last' && timesteps.length > 0) return timesteps.length - 1;
    throw new InputError(`timestep ${t} is not one of this schedule's timesteps (call setTimesteps first)`);
  }
  return hits.length > 1 ? hits[1]! : hits[0]!;
}
