/**
 * What diffusers' k-diffusion-style schedulers (Euler, Euler ancestral, LMS, Heun) share: sigma
 * schedules with float32 timesteps, `init_noise_sigma` = sqrt(sigma_max^2 + 1) (sigma_max for linspace /
 * trailing spacing), inputs scaled by 1 / sqrt(sigma^2 + 1), x0 from the model output at a sigma, and
 * a step index found from the first timestep then counted. All arithmetic is float32 op by op.
 */
import { InputError } from '../errors.js';
import { checkInferenceSteps, checkSameLength, indexForTimestep, type Sampler, type SchedulerStepOptions, type SchedulerStepResult } from './sampler.js';
import { SchedulerConfigReader, trainingSchedule, type PredictionType, type TimestepSpacing, type TrainingDefaults, type TrainingSchedule } from './scheduler-config.js';
import { checkSchedule, kDiffusionSchedule, readSigmaScheduleConfig, type SigmaScheduleConfig } from './sigmas.js';

const f = Math.fround;

export interface KDiffusionOptions {
  /** Where the config came from, for error messages. */
  source?: string;
}

export interface KDiffusionClassInfo {
  readonly name: string;
  readonly training: TrainingDefaults;
  readonly spacingDefault: TimestepSpacing;
  readonly karras: boolean;
  readonly finalSigmas: boolean;
  readonly sigmaRange: boolean;
  readonly predictionTypes: readonly PredictionType[];
}

/** x0 from the model output at noise level sigma (diffusers' `pred_original_sample`). */
export function predictX0(type: PredictionType, modelOutput: Float32Array, sample: Float32Array, sigma: number): Float32Array {
  const n = sample.length, x0 = new Float32Array(n);
  switch (type) {
    case 'epsilon':
      for (let i = 0; i < n; i++) x0[i] = sample[i]! - f(sigma * modelOutput[i]!);
      break;
    case 'v_prediction': {
      // model_output * (-sigma / (sigma**2 + 1) ** 0.5) + sample / (sigma**2 + 1)
      const s2p1 = f(f(sigma * sigma) + 1);
      const cOut = f(-sigma / f(Math.sqrt(s2p1)));
      for (let i = 0; i < n; i++) x0[i] = f(modelOutput[i]! * cOut) + f(sample[i]! / s2p1);
      break;
    }
    case 'sample':
      x0.set(modelOutput);
      break;
  }
  return x0;
}

export abstract class KDiffusionScheduler implements Sampler {
  readonly schedule: TrainingSchedule;
  readonly sigmaConfig: SigmaScheduleConfig;
  readonly predictionType: PredictionType;
  readonly source: string;
  timesteps: number[] = [];
  sigmas: Float32Array = new Float32Array(0);
  numInferenceSteps: number | undefined;
  protected stepIndex: number | undefined;

  protected constructor(raw: Record<string, unknown>, info: KDiffusionClassInfo, options: KDiffusionOptions) {
    this.source = options.source ?? 'scheduler_config.json';
    const r = new SchedulerConfigReader(this.source, raw);
    this.schedule = trainingSchedule(r, info.training);
    this.sigmaConfig = readSigmaScheduleConfig(r, info);
    this.predictionType = r.oneOf<PredictionType>('prediction_type', info.predictionTypes, 'epsilon');
  }

  get initNoiseSigma(): number {
    let max = 0;
    for (const s of this.sigmas) if (s > max) max = s;
    const spacing = this.sigmaConfig.timestepSpacing;
    return spacing === 'linspace' || spacing === 'trailing' ? max : f(Math.sqrt(f(f(max * max) + 1)));
  }

  setTimesteps(numInferenceSteps: number): void {
    checkInferenceSteps(numInferenceSteps, this.schedule.numTrainTimesteps);
    const s = kDiffusionSchedule(this.schedule, this.sigmaConfig, numInferenceSteps);
    checkSchedule(s, this.source);
    this.numInferenceSteps = numInferenceSteps;
    this.timesteps = s.timesteps;
    this.sigmas = s.sigmas;
    this.stepIndex = undefined;
    this.reset();
  }

  /** Clears per-run state after setTimesteps. */
  protected reset(): void {}

  /** The current step index: found from t on the first call (diffusers' _init_step_index), then counted. */
  protected indexFor(t: number): number {
    if (this.timesteps.length === 0) throw new Error('call setTimesteps() before using the scheduler');
    if (this.stepIndex === undefined) this.stepIndex = indexForTimestep(this.timesteps, t);
    if (this.stepIndex >= this.timesteps.length) throw new InputError(`the scheduler has already taken all ${this.timesteps.length} steps`);
    return this.stepIndex;
  }

  scaleModelInput(sample: Float32Array, t: number): Float32Array {
    const sigma = this.sigmas[this.indexFor(t)]!;
    const d = f(Math.sqrt(f(f(sigma * sigma) + 1)));
    return sample.map((v) => v / d);
  }

  step(modelOutput: Float32Array, t: number, sample: Float32Array, opts: SchedulerStepOptions = {}): SchedulerStepResult {
    checkSameLength(modelOutput, sample);
    const i = this.indexFor(t);
    const r = this.stepAt(i, modelOutput, sample, opts);
    this.stepIndex = i + 1;
    return r;
  }

  protected abstract stepAt(i: number, modelOutput: Float32Array, sample: Float32Array, opts: SchedulerStepOptions): SchedulerStepResult;
}

/** x + d * dt with d = (x - x0) / sigma (the Euler update), float32. */
export function eulerUpdate(sample: Float32Array, x0: Float32Array, sigma: number, dt: number): { prev: Float32Array; derivative: Float32Array } {
  const n = sample.length, prev = new Float32Array(n), derivative = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const d = f(f(sample[i]! - x0[i]!) / sigma);
    derivative[i] = d;
    prev[i] = sample[i]! + f(d * dt);
  }
  return { prev, derivative };
}
