/**
 * diffusers' LMSDiscreteScheduler: linear multistep on the probability-flow ODE in sigma,
 * x_{i+1} = x_i + sum_j c_j d_{i-j}, d = (x - x0) / sigma, order min(i + 1, 4). c_j is the integral
 * from sigma_i to sigma_{i+1} of the Lagrange basis polynomial through the last `order` sigmas.
 * diffusers integrates it with scipy.integrate.quad (QUADPACK qags, epsrel 1e-4) on an integrand that
 * torch evaluates in float32. For these cubic-or-lower polynomials qags stops after its first 21-point
 * Gauss-Kronrod rule, so that rule, with the same float32 integrand and float64 sums, reproduces
 * diffusers' coefficients to the last bit (the exact integral differs from them by ~1e-7 relative).
 */
import { KDiffusionScheduler, predictX0, type KDiffusionOptions } from './k-diffusion.js';
import { type SchedulerStepOptions, type SchedulerStepResult } from './sampler.js';

const f = Math.fround;

// QUADPACK dqk21: Kronrod abscissae (xgk[1], xgk[3], ... are the 10-point Gauss nodes) and weights on [-1, 1].
const XGK = [0.995657163025808080735527280689003, 0.973906528517171720077964012084452, 0.930157491355708226001207180059508, 0.865063366688984510732096688423493,
  0.780817726586416897063717578345042, 0.679409568299024406234327365114874, 0.562757134668604683339000099272694, 0.433395394129247190799265943165784,
  0.294392862701460198131126603103866, 0.148874338981631210884826001129720, 0];
const WGK = [0.011694638867371874278064396062192, 0.032558162307964727478818972459390, 0.054755896574351996031381300244580, 0.075039674810919952767043140916190,
  0.093125454583697605535065465083366, 0.109387158802297641899210590325805, 0.123491976262065851077958109831074, 0.134709217311473325928054001771707,
  0.142775938577060080797094273138717, 0.147739104901338491374841515972068, 0.149445554002916905664936468389821];

/** QUADPACK's 21-point Gauss-Kronrod rule over [a, b] (dqk21's result, its summation order). */
export function gaussKronrod21(fn: (x: number) => number, a: number, b: number): number {
  const centr = 0.5 * (a + b), hlgth = 0.5 * (b - a);
  let resk = WGK[10]! * fn(centr);
  for (const j of [1, 3, 5, 7, 9, 0, 2, 4, 6, 8]) { // the Gauss nodes first, then the Kronrod ones (1-based jtw, then jtwm1)
    const absc = hlgth * XGK[j]!;
    resk += WGK[j]! * (fn(centr - absc) + fn(centr + absc));
  }
  return resk * hlgth;
}

/**
 * diffusers' lms_derivative integrated like scipy quad: the Lagrange basis polynomial of node `j`
 * through `nodes` (float32 sigmas), evaluated as torch does: float32(tau) and float32 ops.
 */
export function lagrangeBasisIntegral(nodes: readonly number[], j: number, a: number, b: number): number {
  const basis = (tau: number): number => {
    let prod = 1;
    const t = f(tau);
    for (let k = 0; k < nodes.length; k++) if (k !== j) prod = f(prod * f(f(t - nodes[k]!) / f(nodes[j]! - nodes[k]!)));
    return prod;
  };
  return gaussKronrod21(basis, a, b);
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
