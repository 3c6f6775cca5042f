/**
 * diffusers' EulerAncestralDiscreteScheduler: an Euler step down to sigma_down, then fresh noise of
 * std sigma_up, with sigma_up^2 = s_to^2 (s_from^2 - s_to^2) / s_from^2 and
 * sigma_down^2 = s_to^2 - sigma_up^2. One noise draw every step (also the last, where sigma_up = 0).
 */
import { eulerUpdate, KDiffusionScheduler, predictX0, type KDiffusionOptions } from './k-diffusion.js';
import { stepNoise, type SchedulerStepOptions, type SchedulerStepResult } from './sampler.js';

const f = Math.fround;

export class EulerAncestralDiscreteScheduler extends KDiffusionScheduler {
  constructor(raw: Record<string, unknown> = {}, options: KDiffusionOptions = {}) {
    super(raw, {
      name: 'EulerAncestralDiscreteScheduler', training: { betaStart: 0.0001, betaEnd: 0.02, betaSchedule: 'linear', rescale: 'with-eps' },
      spacingDefault: 'linspace', karras: false, finalSigmas: false, sigmaRange: false, predictionTypes: ['epsilon', 'v_prediction'],
    }, options);
  }

  protected stepAt(i: number, modelOutput: Float32Array, sample: Float32Array, opts: SchedulerStepOptions): SchedulerStepResult {
    const sigma = this.sigmas[i]!, to = this.sigmas[i + 1]!;
    const x0 = predictX0(this.predictionType, modelOutput, sample, sigma);
    const from2 = f(sigma * sigma), to2 = f(to * to);
    const up = f(Math.sqrt(f(f(to2 * f(from2 - to2)) / from2)));
    const down = f(Math.sqrt(f(to2 - f(up * up))));
    const { prev } = eulerUpdate(sample, x0, sigma, f(down - sigma));
    const z = stepNoise(opts.noise, sample.length, 'euler-a');
    for (let k = 0; k < prev.length; k++) prev[k] = prev[k]! + f(z[k]! * up);
    return { prevSample: prev, predOriginalSample: x0 };
  }
}
