/**
 * diffusers' DPMSolverMultistepScheduler with the DPM-Solver++ data-prediction solvers (Lu et al. 2022,
 * arXiv 2211.01095): `dpmsolver++` (DPM++ 2M, also order 1 and 3) and `sde-dpmsolver++` (DPM++ 2M SDE,
 * orders 1 and 2), solver_type midpoint or heun, optional Karras sigmas. Works on
 * alpha_t = 1 / sqrt(sigma^2 + 1), sigma_t = sigma alpha_t, lambda = log alpha_t - log sigma_t, in float32
 * scalars as diffusers' 0-dim tensors. With final sigma 0 the last step is first order and returns x0
 * exactly (lambda = +inf, exp(-h) = 0: plain IEEE arithmetic, no special case).
 */
import { FileFormatError } from '../errors.js';
import { checkInferenceSteps, checkSameLength, indexForTimestep, stepNoise, type Sampler, type SchedulerStepOptions, type SchedulerStepResult } from './sampler.js';
import { SchedulerConfigReader, trainingSchedule, type PredictionType, type TrainingSchedule } from './scheduler-config.js';
import { checkSchedule, dpmSolverSchedule, readSigmaScheduleConfig, type SigmaScheduleConfig } from './sigmas.js';

const f = Math.fround;
export type DpmAlgorithm = 'dpmsolver++' | 'sde-dpmsolver++';

/** alpha_t = 1 / sqrt(sigma^2 + 1), sigma_t = sigma * alpha_t, lambda_t = log(alpha_t) - log(sigma_t) (float32). */
export function sigmaToAlphaSigma(sigma: number): { alpha: number; sigmaT: number; lambda: number } {
  const alpha = f(1 / f(Math.sqrt(f(f(sigma * sigma) + 1))));
  const sigmaT = f(sigma * alpha);
  return { alpha, sigmaT, lambda: f(f(Math.log(alpha)) - f(Math.log(sigmaT))) };
}

/** x0 from the model output at sigma (DPM-Solver++ / UniPC `convert_model_output` with predict_x0). */
export function dataPrediction(type: PredictionType, modelOutput: Float32Array, sample: Float32Array, sigma: number): Float32Array {
  const { alpha, sigmaT } = sigmaToAlphaSigma(sigma);
  const n = sample.length, x0 = new Float32Array(n);
  if (type === 'epsilon') for (let i = 0; i < n; i++) x0[i] = f(sample[i]! - f(sigmaT * modelOutput[i]!)) / alpha;
  else if (type === 'v_prediction') for (let i = 0; i < n; i++) x0[i] = f(alpha * sample[i]!) - f(sigmaT * modelOutput[i]!);
  else x0.set(modelOutput);
  return x0;
}

export interface DpmSolverOptions { source?: string }

export class DPMSolverMultistepScheduler implements Sampler {
  readonly schedule: TrainingSchedule;
  readonly sigmaConfig: SigmaScheduleConfig;
  readonly predictionType: PredictionType;
  readonly algorithmType: DpmAlgorithm;
  readonly solverOrder: number;
  readonly solverType: 'midpoint' | 'heun';
  readonly lowerOrderFinal: boolean;
  readonly eulerAtFinal: boolean;
  readonly lambdaMinClipped: number;
  readonly initNoiseSigma = 1;
  readonly source: string;
  timesteps: number[] = [];
  sigmas: Float32Array = new Float32Array(0);
  private stepIndex: number | undefined;
  private modelOutputs: (Float32Array | undefined)[] = [];
  private lowerOrderNums = 0;

  constructor(raw: Record<string, unknown> = {}, options: DpmSolverOptions = {}) {
    this.source = options.source ?? 'scheduler_config.json';
    const r = new SchedulerConfigReader(this.source, raw);
    this.schedule = trainingSchedule(r, { betaStart: 0.0001, betaEnd: 0.02, betaSchedule: 'linear', rescale: 'with-eps' });
    this.sigmaConfig = readSigmaScheduleConfig(r, { spacingDefault: 'linspace', karras: true, finalSigmas: true, sigmaRange: false });
    this.predictionType = r.oneOf<PredictionType>('prediction_type', ['epsilon', 'v_prediction', 'sample'], 'epsilon');
    // diffusers maps the old name 'deis' to dpmsolver++; the first-order-noise variants dpmsolver / sde-dpmsolver are not implemented
    const alg = r.oneOf('algorithm_type', ['dpmsolver++', 'sde-dpmsolver++', 'deis'], 'dpmsolver++');
    this.algorithmType = alg === 'deis' ? 'dpmsolver++' : alg;
    this.solverOrder = r.int('solver_order', 2, 1);
    if (this.solverOrder > 3 || (this.algorithmType === 'sde-dpmsolver++' && this.solverOrder > 2)) {
      throw new FileFormatError(this.source, `expected 1, 2 or 3 (1 or 2 for sde-dpmsolver++), got ${this.solverOrder}`, 'solver_order');
    }
    const st = r.oneOf('solver_type', ['midpoint', 'heun', 'logrho', 'bh1', 'bh2'], 'midpoint');
    this.solverType = st === 'heun' ? 'heun' : 'midpoint'; // diffusers registers the UniPC / DEIS names as midpoint
    this.lowerOrderFinal = r.bool('lower_order_final', true);
    this.eulerAtFinal = r.bool('euler_at_final', false);
    this.lambdaMinClipped = r.num('lambda_min_clipped', Number.NEGATIVE_INFINITY, { allowNonFinite: true });
    r.unsupported('use_lu_lambdas', false, 'Lu lambdas are not supported');
    r.unsupported('thresholding', false, 'dynamic thresholding (pixel-space models) is not supported');
    r.unsupported('variance_type', null, 'learned variances are not supported');
  }

  setTimesteps(numInferenceSteps: number): void {
    checkInferenceSteps(numInferenceSteps, this.schedule.numTrainTimesteps);
    const s = dpmSolverSchedule(this.schedule, this.sigmaConfig, numInferenceSteps, { lambdaMinClipped: this.lambdaMinClipped });
    checkSchedule(s, this.source);
    this.timesteps = s.timesteps;
    this.sigmas = s.sigmas;
    this.stepIndex = undefined;
    this.modelOutputs = Array<Float32Array | undefined>(this.solverOrder).fill(undefined);
    this.lowerOrderNums = 0;
  }

  scaleModelInput(sample: Float32Array): Float32Array { return sample; }

  /** The order the next step will use (diffusers' branch choice), for tests. */
  lastOrder = 0;

  step(modelOutput: Float32Array, t: number, sample: Float32Array, opts: SchedulerStepOptions = {}): SchedulerStepResult {
    checkSameLength(modelOutput, sample);
    if (this.timesteps.length === 0) throw new Error('call setTimesteps() before stepping the scheduler');
    const i = this.stepIndex ?? indexForTimestep(this.timesteps, t, 'last');
    const N = this.timesteps.length;
    const lowerOrderFinal = i === N - 1 && (this.eulerAtFinal || (this.lowerOrderFinal && N < 15) || this.sigmaConfig.finalSigmasType === 'zero');
    const lowerOrderSecond = i === N - 2 && this.lowerOrderFinal && N < 15;
    const x0 = dataPrediction(this.predictionType, modelOutput, sample, this.sigmas[i]!);
    this.modelOutputs.shift();
    this.modelOutputs.push(x0);
    const noise = this.algorithmType === 'sde-dpmsolver++' ? stepNoise(opts.noise, sample.length, 'dpm++2m-sde') : undefined;
    let order: number;
    if (this.solverOrder === 1 || this.lowerOrderNums < 1 || lowerOrderFinal) order = 1;
    else if (this.solverOrder === 2 || this.lowerOrderNums < 2 || lowerOrderSecond) order = 2;
    else order = 3;
    const prev = this.update(order, i, sample, noise);
    this.lastOrder = order;
    if (this.lowerOrderNums < this.solverOrder) this.lowerOrderNums++;
    this.stepIndex = i + 1;
    return { prevSample: prev, predOriginalSample: x0 };
  }

  private update(order: number, i: number, x: Float32Array, noise: Float32Array | undefined): Float32Array {
    const t = sigmaToAlphaSigma(this.sigmas[i + 1]!), s0 = sigmaToAlphaSigma(this.sigmas[i]!);
    const h = f(t.lambda - s0.lambda);
    const m = this.modelOutputs;
    const m0 = m[m.length - 1]!;
    const n = x.length, out = new Float32Array(n);
    const sde = this.algorithmType === 'sde-dpmsolver++';
    const emh = f(Math.exp(-h));
    const em1 = f(emh - 1); // exp(-h) - 1
    if (order === 1) {
      if (!sde) {
        const a = f(t.sigmaT / s0.sigmaT), b = f(t.alpha * em1);
        for (let k = 0; k < n; k++) out[k] = f(a * x[k]!) - f(b * m0[k]!);
      } else {
        const e2 = f(Math.exp(f(-2 * h)));
        const a = f(f(t.sigmaT / s0.sigmaT) * emh), b = f(t.alpha * f(1 - e2)), c = f(t.sigmaT * f(Math.sqrt(f(1 - e2))));
        for (let k = 0; k < n; k++) out[k] = f(f(a * x[k]!) + f(b * m0[k]!)) + f(c * noise![k]!);
      }
      return out;
    }
    const m1 = m[m.length - 2]!;
    const s1 = sigmaToAlphaSigma(this.sigmas[i - 1]!);
    const h0 = f(s0.lambda - s1.lambda);
    const r0 = f(h0 / h);
    const inv0 = f(1 / r0);
    const D1_0 = new Float32Array(n);
    for (let k = 0; k < n; k++) D1_0[k] = f(inv0 * f(m0[k]! - m1[k]!));
    if (order === 2) {
      if (!sde) {
        const a = f(t.sigmaT / s0.sigmaT), b = f(t.alpha * em1);
        const c = this.solverType === 'midpoint' ? f(0.5 * b) : f(t.alpha * f(f(em1 / h) + 1));
        for (let k = 0; k < n; k++) {
          const y = f(f(a * x[k]!) - f(b * m0[k]!));
          out[k] = this.solverType === 'midpoint' ? y - f(c * D1_0[k]!) : y + f(c * D1_0[k]!);
        }
      } else {
        const e2 = f(Math.exp(f(-2 * h)));
        const a = f(f(t.sigmaT / s0.sigmaT) * emh), b = f(t.alpha * f(1 - e2));
        const c = this.solverType === 'midpoint' ? f(0.5 * b) : f(t.alpha * f(f(f(1 - e2) / f(-2 * h)) + 1));
        const d = f(t.sigmaT * f(Math.sqrt(f(1 - e2))));
        for (let k = 0; k < n; k++) out[k] = f(f(f(a * x[k]!) + f(b * m0[k]!)) + f(c * D1_0[k]!)) + f(d * noise![k]!);
      }
      return out;
    }
    // third order (dpmsolver++)
    const m2 = m[m.length - 3]!;
    const s2 = sigmaToAlphaSigma(this.sigmas[i - 2]!);
    const h1 = f(s1.lambda - s2.lambda);
    const r1 = f(h1 / h);
    const inv1 = f(1 / r1);
    const r01 = f(r0 + r1);
    const w1 = f(r0 / r01), w2 = f(1 / r01);
    const a = f(t.sigmaT / s0.sigmaT), b = f(t.alpha * em1);
    const c = f(t.alpha * f(f(em1 / h) + 1));
    const d = f(t.alpha * f(f(f(f(emh - 1) + h) / f(h * h)) - 0.5));
    for (let k = 0; k < n; k++) {
      const d11 = f(inv1 * f(m1[k]! - m2[k]!));
      const diff = f(D1_0[k]! - d11);
      const D1 = f(D1_0[k]! + f(w1 * diff));
      const D2 = f(w2 * diff);
      out[k] = f(f(f(a * x[k]!) - f(b * m0[k]!)) + f(c * D1)) - f(d * D2);
    }
    return out;
  }
}
