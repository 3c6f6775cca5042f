/**
 * diffusers' LMSDiscreteScheduler: linear multistep on the probability-flow ODE in sigma,
 * x_{i+1} = x_i + sum_j c_j d_{i-j}, d = (x - x0) / sigma, order min(i + 1, 4). c_j is the integral
 * from sigma_i to sigma_{i+1} of the Lagrange basis polynomial through the last `order` sigmas.
 * diffusers integrates it numerically (scipy quad, epsrel 1e-4); here it is integrated exactly
 * (Gauss-Legendre, exact for these degree <= 3 polynomials), which agrees to ~1e-7 relative.
 */
import { KDiffusionScheduler, predictX0, type KDiffusionOptions } from './k-diffusion.js';
import { type SchedulerStepOptions, type SchedulerStepResult } from './sampler.js';

const f = Math.fround;

// 3-point Gauss-Legendre on [-1, 1]: exact for polynomials of degree <= 5.
const GL_X = [-Math.sqrt(3 / 5), 0, Math.sqrt(3 / 5)];
const GL_W = [5 / 9, 8 / 9, 5 / 9];

/** Integral over [a, b] of the Lagrange basis polynomial of node `j` through `nodes` (float64). */
export function lagrangeBasisIntegral(nodes: readonly number[], j: number, a: number, b: number): number {
  const half = (b - a) / 2, mid = (a + b) / 2;
  let sum = 0;
  for (let q = 0; q < GL_X.length; q++) {
    const tau = mid + half * GL_X[q]!;
    let prod = 1;
    for (let k = 0; k < nodes.length; k++) if (k !== j) prod *= (tau - nodes[k]!) / (nodes[j]! - nodes[k]!);
    sum += GL_W[q]! * prod;
  }
  return sum * half;
}

export class LMSDiscreteScheduler extends KDiffusionScheduler {
  /** Maximum order (diffusers' step(order=4)). */
  readonly order = 4;
  private derivatives: Float32Array[] = [];
  /** The coefficients of the last step (tests compare them with diffusers'). */
  lastCoefficients: number[] = [];

  constructor(raw: Record<string, unknown> = {}, options: KDiffusionOptions = {}) {
    super(raw, {
      name: 'LMSDiscreteScheduler', training: { betaStart: 0.0001, betaEnd: 0.02, betaSchedule: 'linear', rescale: 'none' },
      spacingDefault: 'linspace', karras: true, finalSigmas: false, sigmaRange: false, predictionTypes: ['epsilon', 'v_prediction', 'sample'],
    }, options);
  }

  protected override reset(): void { this.derivatives = []; }

  /** diffusers' get_lms_coefficient(order, t, current_order). */
  coefficient(order: number, t: number, current: number): number {
    const nodes = Array.from({ length: order }, (_, k) => this.sigmas[t - k]!);
    return lagrangeBasisIntegral(nodes, current, this.sigmas[t]!, this.sigmas[t + 1]!);
  }

  protected stepAt(i: number, modelOutput: Float32Array, sample: Float32Array, _opts: SchedulerStepOptions): SchedulerStepResult {
    const sigma = this.sigmas[i]!;
    const x0 = predictX0(this.predictionType, modelOutput, sample, sigma);
    const d = new Float32Array(sample.length);
    for (let k = 0; k < d.length; k++) d[k] = f(sample[k]! - x0[k]!) / sigma;
    this.derivatives.push(d);
    if (this.derivatives.length > this.order) this.derivatives.shift();
    const order = Math.min(i + 1, this.order);
    const coeffs = Array.from({ length: order }, (_, j) => this.coefficient(order, i, j));
    this.lastCoefficients = coeffs;
    // sample + sum(c_j * d_j), newest derivative first; each python-float coefficient is cast to float32
    const sum = new Float32Array(sample.length);
    coeffs.forEach((c, j) => {
      const dj = this.derivatives[this.derivatives.length - 1 - j]!, cf = f(c);
      for (let k = 0; k < sum.length; k++) sum[k] = sum[k]! + f(cf * dj[k]!);
    });
    const prev = new Float32Array(sample.length);
    for (let k = 0; k < prev.length; k++) prev[k] = sample[k]! + sum[k]!;
    return { prevSample: prev, predOriginalSample: x0 };
  }
}
