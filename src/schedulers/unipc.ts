/**
 * diffusers' UniPCMultistepScheduler (Zhao et al. 2023, arXiv 2302.04867) with predict_x0, bh1 / bh2:
 * every step after the first applies the UniC corrector to the CURRENT sample with the new model
 * output, then the UniP predictor. Order = min(solver_order, steps done + 1), lowered at the end with
 * lower_order_final. The order-2 predictor uses the constant rho = 0.5; correctors of order >= 2 solve
 * R rho = b with LU and partial pivoting in float32 (LAPACK sgesv, as torch.linalg.solve).
 */
import { FileFormatError } from '../errors.js';
import { dataPrediction, sigmaToAlphaSigma } from './dpm-solver.js';
import { checkInferenceSteps, checkSameLength, indexForTimestep, type Sampler, type SchedulerStepOptions, type SchedulerStepResult } from './sampler.js';
import { SchedulerConfigReader, trainingSchedule, type PredictionType, type TrainingSchedule } from './scheduler-config.js';
import { checkSchedule, dpmSolverSchedule, readSigmaScheduleConfig, type SigmaScheduleConfig } from './sigmas.js';

const f = Math.fround;

/** Solves A x = b (n x n, row-major) in float32 as LAPACK sgetrf/sgetrs: partial pivoting, the column scaled by 1/pivot. */
export function solveF32(A: number[][], b: number[]): number[] {
  const n = b.length;
  const a = A.map((row) => row.map(f)), y = b.map(f);
  const perm: number[] = [];
  for (let j = 0; j < n; j++) {
    let p = j;
    for (let r = j + 1; r < n; r++) if (Math.abs(a[r]![j]!) > Math.abs(a[p]![j]!)) p = r;
    perm.push(p);
    if (p !== j) { [a[p], a[j]] = [a[j]!, a[p]!]; }
    const inv = f(1 / a[j]![j]!);
    for (let r = j + 1; r < n; r++) {
      a[r]![j] = f(a[r]![j]! * inv);
      for (let c = j + 1; c < n; c++) a[r]![c] = f(a[r]![c]! - f(a[r]![j]! * a[j]![c]!));
    }
  }
  for (let j = 0; j < n; j++) { const p = perm[j]!; if (p !== j) [y[p], y[j]] = [y[j]!, y[p]!]; }
  for (let r = 1; r < n; r++) for (let c = 0; c < r; c++) y[r] = f(y[r]! - f(a[r]![c]! * y[c]!));
  for (let r = n - 1; r >= 0; r--) {
    for (let c = r + 1; c < n; c++) y[r] = f(y[r]! - f(a[r]![c]! * y[c]!));
    y[r] = f(y[r]! / a[r]![r]!);
  }
  return y;
}

export interface UniPCOptions { source?: string }

export class UniPCMultistepScheduler implements Sampler {
  readonly schedule: TrainingSchedule;
  readonly sigmaConfig: SigmaScheduleConfig;
  readonly predictionType: PredictionType;
  readonly solverOrder: number;
  readonly solverType: 'bh1' | 'bh2';
  readonly lowerOrderFinal: boolean;
  readonly disableCorrector: readonly number[];
  readonly initNoiseSigma = 1;
  readonly source: string;
  timesteps: number[] = [];
  sigmas: Float32Array = new Float32Array(0);
  private stepIndex: number | undefined;
  private modelOutputs: (Float32Array | undefined)[] = [];
  private lowerOrderNums = 0;
  private lastSample: Float32Array | undefined;
  private thisOrder = 0;
  /** The sample after the corrector at the last step (diffusers' corrected_sample), for tests. */
  lastCorrected: Float32Array | undefined;

  constructor(raw: Record<string, unknown> = {}, options: UniPCOptions = {}) {
    this.source = options.source ?? 'scheduler_config.json';
    const r = new SchedulerConfigReader(this.source, raw);
    this.schedule = trainingSchedule(r, { betaStart: 0.0001, betaEnd: 0.02, betaSchedule: 'linear', rescale: 'with-eps' });
    this.sigmaConfig = readSigmaScheduleConfig(r, { spacingDefault: 'linspace', karras: true, finalSigmas: true, sigmaRange: false });
    this.predictionType = r.oneOf<PredictionType>('prediction_type', ['epsilon', 'v_prediction', 'sample'], 'epsilon');
    this.solverOrder = r.int('solver_order', 2, 1);
    const st = r.oneOf('solver_type', ['bh1', 'bh2', 'midpoint', 'heun', 'logrho'], 'bh2');
    this.solverType = st === 'bh1' ? 'bh1' : 'bh2'; // diffusers registers DPM-Solver's names as bh2
    if (this.solverType === 'bh1' && this.sigmaConfig.finalSigmasType === 'zero') {
      // B(h) = h is -inf at a final sigma of 0: the last step is NaN (-inf * 0), in diffusers 0.30.3 too
      throw new FileFormatError(this.source, 'solver_type "bh1" with final_sigmas_type "zero" makes the last step NaN (as in diffusers); expected final_sigmas_type "sigma_min" or solver_type "bh2"', 'solver_type');
    }
    this.lowerOrderFinal = r.bool('lower_order_final', true);
    const dc = r.raw.disable_corrector;
    if (dc !== undefined && dc !== null && (!Array.isArray(dc) || !dc.every((v) => Number.isInteger(v)))) {
      throw new FileFormatError(this.source, `expected a list of step indices, got ${JSON.stringify(dc)}`, 'disable_corrector');
    }
    this.disableCorrector = (dc as number[] | undefined | null) ?? [];
    r.unsupported('predict_x0', true, 'only the data-prediction (predict_x0) variant is supported');
    r.unsupported('solver_p', null, 'an external predictor scheduler is not supported');
    r.unsupported('thresholding', false, 'dynamic thresholding (pixel-space models) is not supported');
  }

  setTimesteps(numInferenceSteps: number): void {
    checkInferenceSteps(numInferenceSteps, this.schedule.numTrainTimesteps);
    const s = dpmSolverSchedule(this.schedule, this.sigmaConfig, numInferenceSteps, { karrasLastIsSigmaMin: true });
    checkSchedule(s, this.source);
    this.timesteps = s.timesteps;
    this.sigmas = s.sigmas;
    this.stepIndex = undefined;
    this.modelOutputs = Array<Float32Array | undefined>(this.solverOrder).fill(undefined);
    this.lowerOrderNums = 0;
    this.lastSample = undefined;
    this.lastCorrected = undefined;
  }

  scaleModelInput(sample: Float32Array): Float32Array { return sample; }

  /** The order the last predictor used. */
  get lastOrder(): number { return this.thisOrder; }

  step(modelOutput: Float32Array, t: number, sample: Float32Array, _opts: SchedulerStepOptions = {}): SchedulerStepResult {
    checkSameLength(modelOutput, sample);
    if (this.timesteps.length === 0) throw new Error('call setTimesteps() before stepping the scheduler');
    const i = this.stepIndex ?? indexForTimestep(this.timesteps, t, 'last');
    this.stepIndex = i;
    const useCorrector = i > 0 && !this.disableCorrector.includes(i - 1) && this.lastSample !== undefined;
    const x0 = dataPrediction(this.predictionType, modelOutput, sample, this.sigmas[i]!);
    let x = sample;
    if (useCorrector) x = this.corrector(x0, this.lastSample!, this.thisOrder);
    this.lastCorrected = x;
    this.modelOutputs.shift();
    this.modelOutputs.push(x0);
    const N = this.timesteps.length;
    const order = this.lowerOrderFinal ? Math.min(this.solverOrder, N - i) : this.solverOrder;
    this.thisOrder = Math.min(order, this.lowerOrderNums + 1);
    this.lastSample = x;
    const prev = this.predictor(x, this.thisOrder);
    if (this.lowerOrderNums < this.solverOrder) this.lowerOrderNums++;
    this.stepIndex = i + 1;
    return { prevSample: prev, predOriginalSample: x0 };
  }

  /** h, hh = -h, h_phi_1 = expm1(hh), B(h) and the b vector / R matrix of the UniPC linear system. */
  private coefficients(h: number, rks: number[], order: number): { hPhi1: number; Bh: number; R: number[][]; b: number[] } {
    const hh = f(-h);
    const hPhi1 = f(Math.expm1(hh));
    let hPhiK = f(f(hPhi1 / hh) - 1);
    const Bh = this.solverType === 'bh1' ? hh : f(Math.expm1(hh));
    const R: number[][] = [], b: number[] = [];
    let factorial = 1;
    for (let k = 1; k <= order; k++) {
      R.push(rks.map((r) => f(r ** (k - 1))));
      b.push(f(f(hPhiK * factorial) / Bh));
      factorial *= k + 1;
      hPhiK = f(f(hPhiK / hh) - f(1 / factorial));
    }
    return { hPhi1, Bh, R, b };
  }

  /** lambda at sigmas[j]. */
  private lambdaAt(j: number): number { return sigmaToAlphaSigma(this.sigmas[j]!).lambda; }

  private predictor(x: Float32Array, order: number): Float32Array {
    const i = this.stepIndex!;
    const m = this.modelOutputs, m0 = m[m.length - 1]!;
    const t = sigmaToAlphaSigma(this.sigmas[i + 1]!), s0 = sigmaToAlphaSigma(this.sigmas[i]!);
    const h = f(t.lambda - s0.lambda);
    const rks: number[] = [], D1s: Float32Array[] = [];
    for (let k = 1; k < order; k++) {
      const rk = f(f(this.lambdaAt(i - k) - s0.lambda) / h);
      rks.push(rk);
      const mi = m[m.length - 1 - k]!;
      D1s.push(mi.map((v, q) => f(v - m0[q]!) / rk));
    }
    rks.push(1.0);
    const { hPhi1, Bh, R, b } = this.coefficients(h, rks, order);
    let rhos: number[] = [];
    if (D1s.length > 0) rhos = order === 2 ? [0.5] : solveF32(R.slice(0, -1).map((row) => row.slice(0, -1)), b.slice(0, -1));
    const c1 = f(t.sigmaT / s0.sigmaT), c2 = f(t.alpha * hPhi1), c3 = f(t.alpha * Bh);
    const n = x.length, out = new Float32Array(n);
    for (let q = 0; q < n; q++) {
      const xt = f(f(c1 * x[q]!) - f(c2 * m0[q]!));
      out[q] = D1s.length > 0 ? xt - f(c3 * contract(rhos, D1s, q)) : xt - f(c3 * 0);
    }
    return out;
  }

  private corrector(modelT: Float32Array, last: Float32Array, order: number): Float32Array {
    const i = this.stepIndex!;
    const m = this.modelOutputs, m0 = m[m.length - 1]!;
    const t = sigmaToAlphaSigma(this.sigmas[i]!), s0 = sigmaToAlphaSigma(this.sigmas[i - 1]!);
    const h = f(t.lambda - s0.lambda);
    const rks: number[] = [], D1s: Float32Array[] = [];
    for (let k = 1; k < order; k++) {
      const rk = f(f(this.lambdaAt(i - (k + 1)) - s0.lambda) / h);
      rks.push(rk);
      const mi = m[m.length - 1 - k]!;
      D1s.push(mi.map((v, q) => f(v - m0[q]!) / rk));
    }
    rks.push(1.0);
    const { hPhi1, Bh, R, b } = this.coefficients(h, rks, order);
    const rhos = order === 1 ? [0.5] : solveF32(R, b);
    const c1 = f(t.sigmaT / s0.sigmaT), c2 = f(t.alpha * hPhi1), c3 = f(t.alpha * Bh);
    const rLast = f(rhos[rhos.length - 1]!);
    const n = last.length, out = new Float32Array(n);
    for (let q = 0; q < n; q++) {
      const xt = f(f(c1 * last[q]!) - f(c2 * m0[q]!));
      const corr = D1s.length > 0 ? contract(rhos, D1s, q) : 0;
      out[q] = xt - f(c3 * f(corr + f(rLast * f(modelT[q]! - m0[q]!))));
    }
    return out;
  }
}

/** einsum('k,bkc...->bc...', rhos[:K], D1s) at one element (K terms summed in order). */
function contract(rhos: readonly number[], D1s: readonly Float32Array[], q: number): number {
  let s = f(f(rhos[0]!) * D1s[0]![q]!);
  for (let k = 1; k < D1s.length; k++) s = f(s + f(f(rhos[k]!) * D1s[k]![q]!));
  return s;
}
