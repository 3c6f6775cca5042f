/**
 * diffusers' HeunDiscreteScheduler (Karras et al. 2022, Algorithm 1 without churn): each step is an
 * Euler predictor and a trapezoid corrector, two UNet calls, so the timesteps are
 * [t0, t1, t1, ..., t_{N-1}, t_{N-1}] (2N - 1 calls) and the sigmas [s0, s1, s1, ..., 0]. The last
 * call is a plain Euler step to sigma 0 (its corrector never runs).
 */
import { FileFormatError } from '../errors.js';
import { clipSampleInPlace } from './ddim.js';
import { eulerUpdate, KDiffusionScheduler, predictX0, type KDiffusionOptions } from './k-diffusion.js';
import { type SchedulerStepOptions, type SchedulerStepResult } from './sampler.js';
import { SchedulerConfigReader } from './scheduler-config.js';

const f = Math.fround;

export class HeunDiscreteScheduler extends KDiffusionScheduler {
  private readonly clipRange: number | undefined;
  // the pending first-order step (diffusers' prev_derivative, dt, sample); undefined: first-order state
  private pending: { derivative: Float32Array; dt: number; sample: Float32Array } | undefined;

  constructor(raw: Record<string, unknown> = {}, options: KDiffusionOptions = {}) {
    const source = options.source ?? 'scheduler_config.json';
    if (raw.beta_schedule === 'exp') throw new FileFormatError(source, 'expected one of linear, scaled_linear, squaredcos_cap_v2, got "exp"', 'beta_schedule');
    super(raw, {
      name: 'HeunDiscreteScheduler', training: { betaStart: 0.00085, betaEnd: 0.012, betaSchedule: 'linear', rescale: 'none' },
      spacingDefault: 'linspace', karras: true, finalSigmas: false, sigmaRange: false, predictionTypes: ['epsilon', 'v_prediction', 'sample'],
    }, options);
    const r = new SchedulerConfigReader(this.source, raw);
    this.clipRange = r.bool('clip_sample', false) ? r.num('clip_sample_range', 1.0) : undefined;
  }

  override setTimesteps(numInferenceSteps: number): void {
    super.setTimesteps(numInferenceSteps);
    const ts = this.timesteps, s = this.sigmas;
    this.timesteps = [ts[0]!, ...ts.slice(1).flatMap((t) => [t, t])];
    this.sigmas = Float32Array.from([s[0]!, ...[...s.subarray(1, -1)].flatMap((x) => [x, x]), s[s.length - 1]!]);
  }

  protected override reset(): void { this.pending = undefined; }

  /** True while the next call is a predictor (first-order) call. */
  get stateInFirstOrder(): boolean { return this.pending === undefined; }

  protected stepAt(i: number, modelOutput: Float32Array, sample: Float32Array, _opts: SchedulerStepOptions): SchedulerStepResult {
    const first = this.pending === undefined;
    const sigma = first ? this.sigmas[i]! : this.sigmas[i - 1]!;
    const next = first ? this.sigmas[i + 1]! : this.sigmas[i]!;
    const x0 = predictX0(this.predictionType, modelOutput, sample, first ? sigma : next);
    if (this.clipRange !== undefined) clipSampleInPlace(x0, this.clipRange);
    if (first) {
      const dt = f(next - sigma);
      const { prev, derivative } = eulerUpdate(sample, x0, sigma, dt);
      this.pending = { derivative, dt, sample };
      return { prevSample: prev, predOriginalSample: x0 };
    }
    const p = this.pending!;
    this.pending = undefined;
    const out = new Float32Array(sample.length);
    for (let k = 0; k < out.length; k++) {
      const d = f(f(p.derivative[k]! + f(f(sample[k]! - x0[k]!) / next)) / 2);
      out[k] = p.sample[k]! + f(d * p.dt);
    }
    return { prevSample: out, predOriginalSample: x0 };
  }
}
