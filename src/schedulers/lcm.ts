/**
 * diffusers' LCMScheduler (Latent Consistency Models, Luo et al. 2023): timesteps from the distillation
 * schedule (k = T // original_inference_steps; candidates (1..orig) * k - 1, reversed, taken at
 * floor(linspace(0, orig, N, endpoint=False)); timestep_spacing and steps_offset are ignored), the
 * consistency function denoised = c_out x0 + c_skip x with c_skip = 0.25 / ((10 t)^2 + 0.25) and
 * c_out = 10 t / sqrt((10 t)^2 + 0.25), then fresh noise to the NEXT timestep of the list; the last
 * step returns `denoised` and draws nothing.
 */
import { InputError } from '../errors.js';
import { clipSampleInPlace } from './ddim.js';
import { checkSameLength, indexForTimestep, stepNoise, type Sampler, type SchedulerStepOptions, type SchedulerStepResult } from './sampler.js';
import { SchedulerConfigReader, trainingSchedule, type PredictionType, type TrainingSchedule } from './scheduler-config.js';
import { npLinspace } from './numpy.js';

const f = Math.fround;

export interface LcmOptions { source?: string }

export class LCMScheduler implements Sampler {
  readonly schedule: TrainingSchedule;
  readonly originalInferenceSteps: number;
  readonly timestepScaling: number;
  readonly predictionType: PredictionType;
  readonly clipRange: number | undefined;
  readonly finalAlphaCumprod: number;
  readonly initNoiseSigma = 1;
  readonly source: string;
  timesteps: number[] = [];
  private stepIndex: number | undefined;

  constructor(raw: Record<string, unknown> = {}, options: LcmOptions = {}) {
    this.source = options.source ?? 'scheduler_config.json';
    const r = new SchedulerConfigReader(this.source, raw);
    this.schedule = trainingSchedule(r, { betaStart: 0.00085, betaEnd: 0.012, betaSchedule: 'scaled_linear', rescale: 'plain' });
    this.originalInferenceSteps = r.int('original_inference_steps', 50, 1);
    this.timestepScaling = r.num('timestep_scaling', 10.0);
    this.predictionType = r.oneOf<PredictionType>('prediction_type', ['epsilon', 'v_prediction', 'sample'], 'epsilon');
    this.clipRange = r.bool('clip_sample', false) ? r.num('clip_sample_range', 1.0) : undefined;
    this.finalAlphaCumprod = r.bool('set_alpha_to_one', true) ? 1 : this.schedule.alphasCumprod[0]!;
    r.unsupported('thresholding', false, 'dynamic thresholding (pixel-space models) is not supported');
  }

  setTimesteps(numInferenceSteps: number): void {
    const N = numInferenceSteps, T = this.schedule.numTrainTimesteps, orig = this.originalInferenceSteps;
    if (orig > T) throw new InputError(`LCM original_inference_steps ${orig} exceeds num_train_timesteps ${T}`);
    if (!Number.isSafeInteger(N) || N < 1 || N > orig) throw new InputError(`LCM supports 1 to ${orig} steps (original_inference_steps), got ${N}`);
    const k = Math.floor(T / orig);
    const candidates = Array.from({ length: orig }, (_, i) => (orig - i) * k - 1); // reversed
    this.timesteps = npLinspace(0, orig, N, false).map((x) => candidates[Math.floor(x)]!);
    this.stepIndex = undefined;
  }

  scaleModelInput(sample: Float32Array): Float32Array { return sample; }

  /** c_skip and c_out at timestep t (float32, as torch computes them from an int64 timestep). */
  boundaryScalings(t: number): { cSkip: number; cOut: number } {
    const s = f(t * f(this.timestepScaling));
    const d = f(f(s * s) + 0.25);
    return { cSkip: f(0.25 / d), cOut: f(s / f(Math.sqrt(d))) };
  }

  step(modelOutput: Float32Array, t: number, sample: Float32Array, opts: SchedulerStepOptions = {}): SchedulerStepResult {
    checkSameLength(modelOutput, sample);
    if (this.timesteps.length === 0) throw new Error('call setTimesteps() before stepping the scheduler');
    const i = this.stepIndex ?? indexForTimestep(this.timesteps, t);
    const prevT = i + 1 < this.timesteps.length ? this.timesteps[i + 1]! : t;
    const ac = this.schedule.alphasCumprod;
    const a = ac[t]!, ap = prevT >= 0 ? ac[prevT]! : this.finalAlphaCumprod;
    const sa = f(Math.sqrt(a)), sb = f(Math.sqrt(f(1 - a)));
    const n = sample.length, x0 = new Float32Array(n);
    if (this.predictionType === 'epsilon') for (let q = 0; q < n; q++) x0[q] = f(sample[q]! - f(sb * modelOutput[q]!)) / sa;
    else if (this.predictionType === 'v_prediction') for (let q = 0; q < n; q++) x0[q] = f(sa * sample[q]!) - f(sb * modelOutput[q]!);
    else x0.set(modelOutput);
    if (this.clipRange !== undefined) clipSampleInPlace(x0, this.clipRange);
    const { cSkip, cOut } = this.boundaryScalings(t);
    const denoised = new Float32Array(n);
    for (let q = 0; q < n; q++) denoised[q] = f(cOut * x0[q]!) + f(cSkip * sample[q]!);
    let prev = denoised;
    if (i !== this.timesteps.length - 1) {
      const z = stepNoise(opts.noise, n, 'lcm');
      const c1 = f(Math.sqrt(ap)), c2 = f(Math.sqrt(f(1 - ap)));
      prev = new Float32Array(n);
      for (let q = 0; q < n; q++) prev[q] = f(c1 * denoised[q]!) + f(c2 * z[q]!);
    }
    this.stepIndex = i + 1;
    return { prevSample: prev, predOriginalSample: denoised };
  }
}
