/**
 * diffusers' EulerDiscreteScheduler (Karras et al. 2022, Algorithm 2 with s_churn = 0):
 * x_{i+1} = x_i + (x_i - x0) / sigma_i * (sigma_{i+1} - sigma_i).
 * As diffusers, every step draws one noise tensor from the generator even though s_churn = 0 leaves it
 * unused, so a seeded run consumes the same random stream.
 */
import { FileFormatError } from '../errors.js';
import { eulerUpdate, KDiffusionScheduler, predictX0, type KDiffusionOptions } from './k-diffusion.js';
import { type SchedulerStepOptions, type SchedulerStepResult } from './sampler.js';
import { SchedulerConfigReader } from './scheduler-config.js';

const f = Math.fround;

export class EulerDiscreteScheduler extends KDiffusionScheduler {
  /** timestep_type 'continuous' with v-prediction: the UNet gets 0.25 log(sigma) (EDM-style models). */
  private readonly continuous: boolean;

  constructor(raw: Record<string, unknown> = {}, options: KDiffusionOptions = {}) {
    super(raw, {
      name: 'EulerDiscreteScheduler', training: { betaStart: 0.0001, betaEnd: 0.02, betaSchedule: 'linear', rescale: 'with-eps' },
      spacingDefault: 'linspace', karras: true, finalSigmas: true, sigmaRange: true, predictionTypes: ['epsilon', 'v_prediction', 'sample'],
    }, options);
    const r = new SchedulerConfigReader(this.source, raw);
    const interpolation = r.oneOf('interpolation_type', ['linear', 'log_linear'], 'linear');
    if (interpolation !== 'linear') throw new FileFormatError(this.source, 'only linear sigma interpolation is supported; expected "linear", got "log_linear"', 'interpolation_type');
    this.continuous = r.oneOf('timestep_type', ['discrete', 'continuous'], 'discrete') === 'continuous' && this.predictionType === 'v_prediction';
  }

  override setTimesteps(numInferenceSteps: number): void {
    super.setTimesteps(numInferenceSteps);
    if (this.continuous) this.timesteps = [...this.sigmas.subarray(0, -1)].map((s) => f(0.25 * f(Math.log(s))));
  }

  protected stepAt(i: number, modelOutput: Float32Array, sample: Float32Array, opts: SchedulerStepOptions): SchedulerStepResult {
    const sigma = this.sigmas[i]!, next = this.sigmas[i + 1]!;
    // drawn and discarded (gamma = 0), keeping the generator in step with diffusers
    if (opts.noise !== undefined && !(opts.noise instanceof Float32Array)) opts.noise.randn([sample.length]);
    const x0 = predictX0(this.predictionType, modelOutput, sample, sigma);
    const { prev } = eulerUpdate(sample, x0, sigma, f(next - sigma));
    return { prevSample: prev, predOriginalSample: x0 };
  }
}
