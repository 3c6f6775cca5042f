/**
 * diffusers' DDPMScheduler (ancestral sampling, Ho et al.): x_{t-1} = c0 x0 + ct x_t + sigma_t z, with
 * the posterior coefficients of the DDPM paper and `variance_type` fixed_small / fixed_large (+ _log).
 * Shares betas, prediction types and clipping with the DDIM schedulers.
 */
import { FileFormatError, InputError } from '../errors.js';
import type { NoiseSource } from '../noise/gaussian.js';
import { DdimBase, parseDdimConfig, type DdimStepOptions, type DdimStepResult } from './ddim.js';
import { npArange, npLinspace, roundHalfEven } from './numpy.js';

const f = Math.fround;
const VARIANCE_TYPES = ['fixed_small', 'fixed_small_log', 'fixed_large', 'fixed_large_log'] as const;
type VarianceType = (typeof VARIANCE_TYPES)[number];

export class DDPMScheduler extends DdimBase {
  readonly varianceType: VarianceType;

  constructor(raw: Record<string, unknown>, options: { source?: string } = {}) {
    const source = options.source ?? 'scheduler_config.json';
    super(parseDdimConfig(raw, source, false), 'torch1');
    const v = (raw.variance_type ?? 'fixed_small') as string;
    // diffusers 0.30 takes the square root of log(beta) for fixed_large_log: NaN samples
    if (v === 'fixed_large_log') throw new FileFormatError(source, 'fixed_large_log gives NaN samples in diffusers (the square root of a log variance); expected fixed_small, fixed_small_log or fixed_large, got "fixed_large_log"', 'variance_type');
    if (!(VARIANCE_TYPES as readonly string[]).includes(v)) throw new FileFormatError(source, `expected one of ${VARIANCE_TYPES.join(', ')} (learned variances need a model that predicts them), got ${JSON.stringify(v)}`, 'variance_type');
    this.varianceType = v as VarianceType;
    const T = this.config.numTrainTimesteps;
    this.timesteps = Array.from({ length: T }, (_, i) => T - 1 - i);
  }

  setTimesteps(numInferenceSteps: number): void {
    this.checkSteps(numInferenceSteps);
    this.numInferenceSteps = numInferenceSteps;
    const T = this.config.numTrainTimesteps, n = numInferenceSteps;
    const offset = this.config.stepsOffset;
    if (this.config.timestepSpacing === 'leading') {
      const r = Math.floor(T / n);
      this.timesteps = Array.from({ length: n }, (_, i) => (n - 1 - i) * r + offset);
    } else if (this.config.timestepSpacing === 'trailing') {
      // np.round(np.arange(T, 0, -T / n)) - 1 (half to even; may hold n + 1 values, as diffusers)
      this.timesteps = npArange(T, 0, -T / n).map((v) => roundHalfEven(v) - 1);
    } else {
      this.timesteps = npLinspace(0, T - 1, n).map(roundHalfEven).reverse();
    }
  }

  /** diffusers' previous_timestep: t - T // N (not the next list entry: they differ for trailing / linspace). */
  previousTimestep(t: number): number {
    const n = this.numInferenceSteps ?? this.config.numTrainTimesteps;
    return t - Math.floor(this.config.numTrainTimesteps / n);
  }

  step(modelOutput: Float32Array, t: number, sample: Float32Array, opts: DdimStepOptions = {}): DdimStepResult {
    const prevT = this.previousTimestep(t);
    const aT = this.cumprodAt(t);
    const aPrev = prevT >= 0 ? this.cumprodAt(prevT) : 1;
    const betaT = f(1 - aT), betaPrev = f(1 - aPrev);
    const curAlpha = f(aT / aPrev), curBeta = f(1 - curAlpha);
    const { predOriginalSample: x0 } = this.predict(modelOutput, sample, aT);
    const c0 = f(f(f(Math.sqrt(aPrev)) * curBeta) / betaT);
    const ct = f(f(f(Math.sqrt(curAlpha)) * betaPrev) / betaT);
    const out = new Float32Array(sample.length);
    for (let i = 0; i < out.length; i++) out[i] = f(f(c0 * x0[i]!) + f(ct * sample[i]!));
    if (t > 0) {
      const z = opts.noise instanceof Float32Array ? opts.noise : (opts.noise as NoiseSource | undefined)?.randn([sample.length]);
      if (!z) throw new InputError('DDPM sampling needs a noise source (give --seed)');
      const std = this.stdDev(aT, aPrev, curBeta);
      for (let i = 0; i < out.length; i++) out[i] = f(out[i]! + f(std * z[i]!));
    }
    return { prevSample: out, predOriginalSample: x0 };
  }

  private stdDev(aT: number, aPrev: number, curBeta: number): number {
    // torch.clamp(variance, min=1e-20) with the bound cast to float32
    const small = Math.max(f(f(f(1 - aPrev) / f(1 - aT)) * curBeta), f(1e-20));
    switch (this.varianceType) {
      case 'fixed_small': return f(Math.sqrt(small));
      case 'fixed_small_log': return f(Math.exp(f(0.5 * f(Math.log(small))))); // exp(0.5 log v), no square root after
      case 'fixed_large': return f(Math.sqrt(curBeta));
      case 'fixed_large_log': throw new Error('unreachable: rejected in the constructor');
    }
  }
}
