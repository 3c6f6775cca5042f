/**
 * DPM-Solver++ and UniPC options the trajectory goldens never take (they run diffusers' defaults with
 * solver_order 2): third order, solver_type heun, the SDE variant with heun, bh1, lower_order_final /
 * euler_at_final / final_sigmas_type, disable_corrector, v_prediction and sample models, lambda_min_clipped,
 * trailing spacing. Each step is checked against float64 arithmetic written from the papers' update formulas
 * (DPM-Solver++: Lu et al. 2022, arXiv 2211.01095, eqs. in Alg. 2 / App.; UniPC: Zhao et al. 2023, arXiv
 * 2302.04867, Alg. 1-2 with B(h) = h (bh1) or e^h - 1 (bh2)), fed with the scheduler's own input at that step
 * (so float32 rounding does not accumulate), and the order used per step against lists worked out by hand
 * from diffusers' order rules.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dataPrediction, DPMSolverMultistepScheduler, sigmaToAlphaSigma } from '../src/schedulers/dpm-solver.js';
import { roundHalfEven } from '../src/schedulers/numpy.js';
import { solveF32, UniPCMultistepScheduler } from '../src/schedulers/unipc.js';
import { alphaBar64, betas64, near, nearAll, throwsFile, throwsInput } from './scheduler-reference.js';

const SRC = 'scheduler_config.json';
const X0: Float32Array = Float32Array.of(-1.2, -0.5, 0, 0.3, 0.9, 1.5);
/** The stand-in model at step i: 0.1 x + 0.02 (k - i) (any smooth function of x and i). */
const model = (x: Float32Array, i: number): Float32Array => x.map((v, k) => 0.1 * v + 0.02 * (k - i));

interface AS { alpha: number; st: number; lambda: number }
/** alpha_t = 1 / sqrt(sigma^2 + 1), sigma_t = sigma alpha_t, lambda = log alpha_t - log sigma_t (float64). */
function as64(sigma: number): AS {
  const alpha = 1 / Math.sqrt(sigma * sigma + 1), st = sigma * alpha;
  return { alpha, st, lambda: Math.log(alpha) - Math.log(st) };
}

/** x0 from a model output (epsilon / v / sample), float64. */
function x0Of(type: string, out: Float32Array, x: Float32Array, sigma: number): number[] {
  const { alpha, st } = as64(sigma);
  return [...x].map((v, k) => (type === 'epsilon' ? (v - st * out[k]!) / alpha : type === 'v_prediction' ? alpha * v - st * out[k]! : out[k]!));
}

/** One DPM-Solver++ update (multistep, orders 1-3; the SDE variant orders 1-2), float64. */
function dpmRef(order: number, sig: Float32Array, i: number, ms: number[][], x: Float32Array, sde: boolean, heun: boolean, z?: Float32Array): number[] {
  const t = as64(sig[i + 1]!), s0 = as64(sig[i]!);
  const h = t.lambda - s0.lambda, emh = Math.exp(-h), e2 = Math.exp(-2 * h);
  const m0 = ms[ms.length - 1]!, m1 = ms[ms.length - 2], m2 = ms[ms.length - 3];
  let r0 = 0, r1 = 0;
  if (order >= 2) r0 = (s0.lambda - as64(sig[i - 1]!).lambda) / h;
  if (order >= 3) r1 = (as64(sig[i - 1]!).lambda - as64(sig[i - 2]!).lambda) / h;
  return [...x].map((xv, k) => {
    const D0 = m0[k]!;
    const D1_0 = order >= 2 ? (m0[k]! - m1![k]!) / r0 : 0;
    if (sde) {
      const noise = t.st * Math.sqrt(1 - e2) * z![k]!;
      const base = (t.st / s0.st) * emh * xv + t.alpha * (1 - e2) * D0 + noise;
      if (order === 1) return base;
      return base + (heun ? t.alpha * ((1 - e2) / (-2 * h) + 1) : 0.5 * t.alpha * (1 - e2)) * D1_0;
    }
    const base = (t.st / s0.st) * xv - t.alpha * (emh - 1) * D0;
    if (order === 1) return base;
    if (order === 2) return heun ? base + t.alpha * ((emh - 1) / h + 1) * D1_0 : base - 0.5 * t.alpha * (emh - 1) * D1_0;
    const D1_1 = (m1![k]! - m2![k]!) / r1;
    const D1 = D1_0 + (r0 / (r0 + r1)) * (D1_0 - D1_1);
    const D2 = (D1_0 - D1_1) / (r0 + r1);
    return base + t.alpha * ((emh - 1) / h + 1) * D1 - t.alpha * ((emh - 1 + h) / (h * h) - 0.5) * D2;
  });
}

/** Runs N steps, checking each step's order and result; returns the per-step results. */
function runDpm(raw: Record<string, unknown>, N: number, orders: number[], opts: { type?: string; sde?: boolean; heun?: boolean } = {}): Float32Array[] {
  const s = new DPMSolverMultistepScheduler(raw);
  s.setTimesteps(N);
  assert.equal(s.timesteps.length, N);
  const ms: number[][] = [];
  const outs: Float32Array[] = [];
  let x: Float32Array = X0;
  s.timesteps.forEach((t, i) => {
    const out = model(x, i);
    const z = opts.sde ? Float32Array.from(X0, (_v, k) => Math.cos(3 * i + k)) : undefined;
    const r = s.step(out, t, x, { noise: z });
    assert.equal(s.lastOrder, orders[i], `${JSON.stringify(raw)} step ${i}: order`);
    const x0 = x0Of(opts.type ?? 'epsilon', out, x, s.sigmas[i]!);
    nearAll(r.predOriginalSample!, x0, 1e-5, `step ${i} x0`, 1);
    ms.push(x0);
    const want = dpmRef(orders[i]!, s.sigmas, i, ms, x, opts.sde ?? false, opts.heun ?? false, z);
    nearAll(r.prevSample, want, 2e-5, `${JSON.stringify(raw)} step ${i} (order ${orders[i]})`, 1);
    outs.push(r.prevSample);
    x = r.prevSample;
  });
  return outs;
}

test('DPM-Solver++ third order: orders 1, 2, 3, then lowered at the end (N < 15); each update by hand', () => {
  runDpm({ solver_order: 3 }, 5, [1, 2, 3, 2, 1]);
  // no lowering without lower_order_final, and a final sigma_min keeps the last step at order 3
  runDpm({ solver_order: 3, lower_order_final: false, final_sigmas_type: 'sigma_min' }, 5, [1, 2, 3, 3, 3]);
  // N >= 15: lower_order_final no longer applies; a final sigma of 0 still forces order 1 at the last step
  runDpm({ solver_order: 3 }, 16, [1, 2, ...Array<number>(13).fill(3), 1]);
  runDpm({ solver_order: 3, final_sigmas_type: 'sigma_min' }, 16, [1, 2, ...Array<number>(14).fill(3)]);
  runDpm({ solver_order: 3, final_sigmas_type: 'sigma_min', euler_at_final: true }, 16, [1, 2, ...Array<number>(13).fill(3), 1]);
  // lower_order_final false with a final 0: the last step is first order anyway (final_sigmas_type zero)
  runDpm({ solver_order: 2, lower_order_final: false }, 4, [1, 2, 2, 1]);
  runDpm({ solver_order: 1 }, 3, [1, 1, 1]);
});

test('DPM-Solver++ solver_type heun (ODE and SDE), the SDE with midpoint, v_prediction and sample models', () => {
  runDpm({ solver_type: 'heun' }, 5, [1, 2, 2, 2, 1], { heun: true });
  runDpm({ algorithm_type: 'sde-dpmsolver++', solver_type: 'heun' }, 4, [1, 2, 2, 1], { sde: true, heun: true });
  runDpm({ algorithm_type: 'sde-dpmsolver++' }, 4, [1, 2, 2, 1], { sde: true });
  runDpm({ prediction_type: 'v_prediction' }, 4, [1, 2, 2, 1], { type: 'v_prediction' });
  runDpm({ prediction_type: 'sample' }, 4, [1, 2, 2, 1], { type: 'sample' });
  // dataPrediction by hand at sigma = 0.75: alpha = 0.8, sigma_t = 0.6
  const out = Float32Array.of(0.5, -1), x = Float32Array.of(1, 0.2);
  nearAll(dataPrediction('epsilon', out, x, 0.75), [(1 - 0.3) / 0.8, (0.2 + 0.6) / 0.8], 1e-6, 'eps x0');
  nearAll(dataPrediction('v_prediction', out, x, 0.75), [0.8 - 0.3, 0.16 + 0.6], 1e-6, 'v x0');
  nearAll(dataPrediction('sample', out, x, 0.75), [0.5, -1], 0, 'sample x0');
  const a = sigmaToAlphaSigma(0.75);
  near(a.alpha, 0.8, 1e-7, 'alpha'); near(a.sigmaT, 0.6, 1e-7, 'sigma_t'); near(a.lambda, Math.log(0.8 / 0.6), 1e-6, 'lambda');
});

test('DPM-Solver++ options: deis and solver_type aliases, unknown timesteps, errors naming key, expected and actual', () => {
  assert.equal(new DPMSolverMultistepScheduler({ algorithm_type: 'deis' }).algorithmType, 'dpmsolver++');
  assert.equal(new DPMSolverMultistepScheduler({ algorithm_type: 'sde-dpmsolver++' }).algorithmType, 'sde-dpmsolver++');
  for (const st of ['midpoint', 'logrho', 'bh1', 'bh2']) assert.equal(new DPMSolverMultistepScheduler({ solver_type: st }).solverType, 'midpoint', st);
  assert.equal(new DPMSolverMultistepScheduler({ solver_type: 'heun' }).solverType, 'heun');
  assert.equal(new DPMSolverMultistepScheduler({ solver_order: 3 }).solverOrder, 3);
  assert.equal(new DPMSolverMultistepScheduler({ algorithm_type: 'sde-dpmsolver++', solver_order: 2 }).solverOrder, 2);
  assert.equal(new DPMSolverMultistepScheduler({ lower_order_final: false }).lowerOrderFinal, false);
  assert.equal(new DPMSolverMultistepScheduler({ euler_at_final: true }).eulerAtFinal, true);
  assert.equal(new DPMSolverMultistepScheduler({ lambda_min_clipped: -5.1 }).lambdaMinClipped, -5.1);
  const E = (raw: Record<string, unknown>, key: string, detail: string): void => throwsFile(() => new DPMSolverMultistepScheduler(raw), SRC, key, detail);
  E({ solver_order: 4 }, 'solver_order', 'expected 1, 2 or 3 (1 or 2 for sde-dpmsolver++), got 4');
  E({ algorithm_type: 'sde-dpmsolver++', solver_order: 3 }, 'solver_order', 'expected 1, 2 or 3 (1 or 2 for sde-dpmsolver++), got 3');
  E({ solver_order: 0 }, 'solver_order', 'expected an integer >= 1, got 0');
  E({ algorithm_type: 'dpmsolver' }, 'algorithm_type', 'expected one of dpmsolver++, sde-dpmsolver++, deis, got "dpmsolver"');
  E({ solver_type: 'rk4' }, 'solver_type', 'expected one of midpoint, heun, logrho, bh1, bh2, got "rk4"');
  E({ lower_order_final: 'no' }, 'lower_order_final', 'expected true or false, got "no"');
  E({ euler_at_final: 1 }, 'euler_at_final', 'expected true or false, got 1');
  E({ lambda_min_clipped: 'low' }, 'lambda_min_clipped', 'expected a number, got "low"');
  E({ use_lu_lambdas: true }, 'use_lu_lambdas', 'Lu lambdas are not supported; expected false, got true');
  E({ thresholding: true }, 'thresholding', 'dynamic thresholding (pixel-space models) is not supported; expected false, got true');
  E({ variance_type: 'learned_range' }, 'variance_type', 'learned variances are not supported; expected null, got "learned_range"');
  assert.doesNotThrow(() => new DPMSolverMultistepScheduler({ use_lu_lambdas: false, thresholding: false, variance_type: null }));
  throwsFile(() => new DPMSolverMultistepScheduler({ solver_order: 4 }, { source: 'd.json' }), 'd.json', 'solver_order', 'expected 1, 2 or 3 (1 or 2 for sde-dpmsolver++), got 4');

  const s = new DPMSolverMultistepScheduler();
  assert.throws(() => s.step(X0, 999, X0), (e: unknown) => e instanceof Error && e.message === 'call setTimesteps() before stepping the scheduler');
  s.setTimesteps(4);
  throwsInput(() => s.step(X0.subarray(1), 999, X0), 'model output has 5 values but the sample has 6');
  // a timestep not in the schedule starts at the last index (diffusers' DPM-Solver family): the final step returns x0
  const r = s.step(model(X0, 0), 12345, X0);
  assert.deepEqual(r.prevSample, r.predOriginalSample);
  // the SDE variant needs noise of the sample's size
  const sde = new DPMSolverMultistepScheduler({ algorithm_type: 'sde-dpmsolver++' });
  sde.setTimesteps(4);
  throwsInput(() => sde.step(model(X0, 0), 999, X0), 'the dpm++2m-sde scheduler is stochastic and needs a noise source (give --seed)');
  throwsInput(() => sde.step(model(X0, 0), 999, X0, { noise: new Float32Array(3) }), 'step noise has 3 values, the sample 6');
  // setTimesteps resets the history: a second run repeats the first exactly
  const again = (): Float32Array => { const d = new DPMSolverMultistepScheduler({ solver_order: 3 }); d.setTimesteps(4); let x = X0; d.timesteps.forEach((t, i) => { x = d.step(model(x, i), t, x).prevSample; }); return x; };
  const d = new DPMSolverMultistepScheduler({ solver_order: 3 });
  d.setTimesteps(4);
  d.step(model(X0, 0), d.timesteps[0]!, X0);
  d.step(model(X0, 1), d.timesteps[1]!, X0);
  d.setTimesteps(4);
  let x: Float32Array = X0;
  d.timesteps.forEach((t, i) => { x = d.step(model(x, i), t, x).prevSample; });
  assert.deepEqual(x, again());
});

test('DPM-Solver / UniPC schedules: trailing spacing, lambda_min_clipped, Karras, non-finite configs refused', () => {
  for (const C of [DPMSolverMultistepScheduler, UniPCMultistepScheduler]) {
    const t = new C({ timestep_spacing: 'trailing' });
    t.setTimesteps(4);
    assert.deepEqual(t.timesteps, [999, 749, 499, 249]); // np.arange(1000, 0, -250).round() - 1
    t.setTimesteps(3);
    assert.deepEqual(t.timesteps, [999, 666, 332]); // 1000, 666.67, 333.33 rounded, - 1
    t.setTimesteps(1);
    assert.deepEqual(t.timesteps, [999]);
    const l = new C({ timestep_spacing: 'leading', steps_offset: 1 });
    l.setTimesteps(4); // arange(5) * (1000 // 5), reversed, the 0 dropped, + 1
    assert.deepEqual(l.timesteps, [801, 601, 401, 201]);
    const lin = new C();
    lin.setTimesteps(7); // np.linspace(0, 999, 8).round(): 142.71 -> 143, 285.43 -> 285, 428.14, 570.86, 713.57, 856.29
    assert.deepEqual(lin.timesteps, [999, 856, 714, 571, 428, 285, 143]);
    // sigmas at integer timesteps: the training sigmas themselves
    const abar = alphaBar64(betas64(0.0001, 0.02, 1000, 'linear'));
    lin.timesteps.forEach((ti, i) => near(lin.sigmas[i]!, Math.sqrt((1 - abar[ti]!) / abar[ti]!), 2e-5, `sigma(${ti})`));
    throwsFile(() => new C({ trained_betas: Array<number>(1000).fill(0.5) }).setTimesteps(4), SRC, undefined, 'the scheduler config gives non-finite timesteps or sigmas');
  }
  // lambda_min_clipped: the noisiest timesteps whose lambda = log(sqrt(abar) / sqrt(1 - abar)) < -3 leave the range
  const abar = alphaBar64(betas64(0.0001, 0.02, 1000, 'linear'));
  let clipped = 0;
  for (let i = 999; i >= 0 && 0.5 * Math.log(abar[i]! / (1 - abar[i]!)) < -3; i--) clipped++;
  assert.ok(clipped > 50 && clipped < 400, `clipped ${clipped}`);
  const c = new DPMSolverMultistepScheduler({ lambda_min_clipped: -3 });
  c.setTimesteps(4);
  const last = 1000 - clipped; // np.linspace(0, last - 1, 5).round()[::-1][:-1]
  const want = Array.from({ length: 5 }, (_, i) => (i * (last - 1)) / 4).map(roundHalfEven).reverse().slice(0, 4);
  assert.deepEqual(c.timesteps, want);
  // -Infinity (the default) clips nothing; a clip below every lambda clips nothing either
  const none = new DPMSolverMultistepScheduler({ lambda_min_clipped: -100 });
  none.setTimesteps(4);
  assert.deepEqual(none.timesteps, [999, 749, 500, 250]);
  const trailing = new DPMSolverMultistepScheduler({ lambda_min_clipped: -3, timestep_spacing: 'trailing' });
  trailing.setTimesteps(4); // np.arange(last, 0, -T / N).round() - 1
  assert.deepEqual(trailing.timesteps, [last - 1, last - 251, last - 501, last - 751].filter((v) => v >= 0));
  // Karras (DPM-Solver / UniPC): the whole training range, timesteps rounded; final sigma_min
  for (const C of [DPMSolverMultistepScheduler, UniPCMultistepScheduler]) {
    const k = new C({ use_karras_sigmas: true, final_sigmas_type: 'sigma_min' });
    k.setTimesteps(4);
    assert.deepEqual(k.timesteps.map(Number.isInteger), [true, true, true, true]);
    assert.equal(k.timesteps[0], 999);
    near(k.sigmas[4]!, Math.sqrt(0.0001 / (1 - 0.0001)), 5e-4, `${C.name} final sigma_min`); // float32 1 - beta: see scheduler-defaults
    near(k.sigmas[3]!, k.sigmas[4]!, 1e-6, 'the Karras ramp ends at sigma_min');
    const zero = new C({ use_karras_sigmas: true });
    zero.setTimesteps(4);
    assert.equal(zero.sigmas[4], 0);
  }
});

// ---------------------------------------------------------------------------------------------
// UniPC

/** Cramer's rule (n <= 3), float64: independent of the LU code under test. */
function cramer(A: number[][], b: number[]): number[] {
  const det = (M: number[][]): number => (M.length === 1 ? M[0]![0]! : M.length === 2 ? M[0]![0]! * M[1]![1]! - M[0]![1]! * M[1]![0]!
    : M[0]!.reduce((s, v, j) => s + (j % 2 ? -1 : 1) * v * det(M.slice(1).map((r) => r.filter((_, c) => c !== j))), 0));
  const D = det(A);
  return b.map((_, j) => det(A.map((r, i) => r.map((v, c) => (c === j ? b[i]! : v)))) / D);
}

/** UniPC's linear system for order K: R[k][j] = r_j^k, b[k] = phi_{k+1}(h) (k+1)! / B(h) (Zhao et al., Alg. 2). */
function unipcSystem(h: number, rks: number[], order: number, bh1: boolean): { hPhi1: number; Bh: number; R: number[][]; b: number[] } {
  const hh = -h, hPhi1 = Math.expm1(hh), Bh = bh1 ? hh : Math.expm1(hh);
  let hPhiK = hPhi1 / hh - 1, fact = 1;
  const R: number[][] = [], b: number[] = [];
  for (let k = 1; k <= order; k++) {
    R.push(rks.map((r) => r ** (k - 1)));
    b.push((hPhiK * fact) / Bh);
    fact *= k + 1;
    hPhiK = hPhiK / hh - 1 / fact;
  }
  return { hPhi1, Bh, R, b };
}

/** UniP (predictor, to sigma[i+1]) or UniC (corrector, to sigma[i] with the new model output), float64. */
function unipcRef(kind: 'P' | 'C', order: number, sig: Float32Array, i: number, ms: number[][], x: Float32Array, bh1: boolean, modelT?: number[]): number[] {
  const to = kind === 'P' ? i + 1 : i, from = kind === 'P' ? i : i - 1;
  const t = as64(sig[to]!), s0 = as64(sig[from]!);
  const h = t.lambda - s0.lambda;
  const m0 = ms[ms.length - 1]!;
  const rks: number[] = [], D1s: number[][] = [];
  for (let k = 1; k < order; k++) {
    const rk = (as64(sig[from - k]!).lambda - s0.lambda) / h;
    rks.push(rk);
    D1s.push(ms[ms.length - 1 - k]!.map((v, q) => (v - m0[q]!) / rk));
  }
  rks.push(1);
  const { hPhi1, Bh, R, b } = unipcSystem(h, rks, order, bh1);
  let rhos: number[];
  if (kind === 'P') rhos = D1s.length === 0 ? [] : order === 2 ? [0.5] : cramer(R.slice(0, -1).map((r) => r.slice(0, -1)), b.slice(0, -1));
  else rhos = order === 1 ? [0.5] : cramer(R, b);
  return [...x].map((xv, q) => {
    let sum = D1s.reduce((acc, D, k) => acc + rhos[k]! * D[q]!, 0);
    if (kind === 'C') sum += rhos[rhos.length - 1]! * (modelT![q]! - m0[q]!);
    return (t.st / s0.st) * xv - t.alpha * hPhi1 * m0[q]! - t.alpha * Bh * sum;
  });
}

function runUnipc(raw: Record<string, unknown>, N: number, orders: number[], corrected: boolean[], bh1 = false): void {
  const s = new UniPCMultistepScheduler(raw);
  s.setTimesteps(N);
  const ms: number[][] = [];
  let x: Float32Array = X0, prevOrder = 0;
  let lastIn: Float32Array | undefined; // the sample the previous predictor started from (after its corrector)
  s.timesteps.forEach((t, i) => {
    const out = model(x, i);
    const r = s.step(out, t, x);
    const x0 = x0Of(String(raw.prediction_type ?? 'epsilon'), out, x, s.sigmas[i]!);
    nearAll(r.predOriginalSample!, x0, 1e-5, `step ${i} x0`, 1);
    const xc = s.lastCorrected!;
    if (corrected[i]) nearAll(xc, unipcRef('C', prevOrder, s.sigmas, i, ms, lastIn!, bh1, x0), 2e-5, `${JSON.stringify(raw)} step ${i} corrector`, 1);
    else assert.equal(xc, x, `step ${i}: no corrector`);
    ms.push(x0);
    assert.equal(s.lastOrder, orders[i], `${JSON.stringify(raw)} step ${i}: order`);
    nearAll(r.prevSample, unipcRef('P', orders[i]!, s.sigmas, i, ms, xc, bh1), 2e-5, `${JSON.stringify(raw)} step ${i} predictor (order ${orders[i]})`, 1);
    prevOrder = orders[i]!;
    lastIn = xc;
    x = r.prevSample;
  });
}

test('UniPC order 3 (bh2 and bh1): predictor / corrector orders by hand, each update from the UniPC system', () => {
  const all = (n: number): boolean[] => Array.from({ length: n }, (_, i) => i > 0);
  runUnipc({ solver_order: 3 }, 6, [1, 2, 3, 3, 2, 1], all(6));
  // bh1 with a final sigma of 0 gives B(h) = -h = -inf at the last step and NaN (-inf * 0), in diffusers 0.30.3 as here:
  // bh1 is checked with a final sigma_min
  runUnipc({ solver_order: 3, solver_type: 'bh1', final_sigmas_type: 'sigma_min' }, 6, [1, 2, 3, 3, 2, 1], all(6), true);
  runUnipc({ solver_type: 'bh1', final_sigmas_type: 'sigma_min' }, 4, [1, 2, 2, 1], all(4), true);
  // without lower_order_final the order stays at solver_order (a final sigma_min keeps it finite)
  runUnipc({ solver_order: 3, lower_order_final: false, final_sigmas_type: 'sigma_min' }, 5, [1, 2, 3, 3, 3], all(5));
  // disable_corrector [1]: the corrector is skipped at step 2 (it would correct the sample of step 1)
  runUnipc({ disable_corrector: [1] }, 4, [1, 2, 2, 1], [false, true, false, true]);
  runUnipc({ prediction_type: 'v_prediction' }, 4, [1, 2, 2, 1], all(4));
  runUnipc({ prediction_type: 'sample' }, 4, [1, 2, 2, 1], all(4));
});

test('UniPC options and errors; solveF32 is LU with partial pivoting', () => {
  for (const st of ['bh2', 'midpoint', 'heun', 'logrho']) assert.equal(new UniPCMultistepScheduler({ solver_type: st }).solverType, 'bh2', st);
  assert.equal(new UniPCMultistepScheduler({ solver_type: 'bh1', final_sigmas_type: 'sigma_min' }).solverType, 'bh1');
  assert.deepEqual(new UniPCMultistepScheduler({ disable_corrector: [0, 2] }).disableCorrector, [0, 2]);
  assert.deepEqual(new UniPCMultistepScheduler({ disable_corrector: null }).disableCorrector, []);
  assert.equal(new UniPCMultistepScheduler({ lower_order_final: false }).lowerOrderFinal, false);
  const E = (raw: Record<string, unknown>, key: string, detail: string): void => throwsFile(() => new UniPCMultistepScheduler(raw), SRC, key, detail);
  E({ disable_corrector: 'all' }, 'disable_corrector', 'expected a list of step indices, got "all"');
  E({ disable_corrector: [1.5] }, 'disable_corrector', 'expected a list of step indices, got [1.5]');
  E({ solver_type: 'rk4' }, 'solver_type', 'expected one of bh1, bh2, midpoint, heun, logrho, got "rk4"');
  E({ solver_order: 0 }, 'solver_order', 'expected an integer >= 1, got 0');
  E({ lower_order_final: 'no' }, 'lower_order_final', 'expected true or false, got "no"');
  E({ predict_x0: false }, 'predict_x0', 'only the data-prediction (predict_x0) variant is supported; expected true, got false');
  E({ solver_p: 'DPMSolverMultistepScheduler' }, 'solver_p', 'an external predictor scheduler is not supported; expected null, got "DPMSolverMultistepScheduler"');
  E({ thresholding: true }, 'thresholding', 'dynamic thresholding (pixel-space models) is not supported; expected false, got true');
  assert.doesNotThrow(() => new UniPCMultistepScheduler({ predict_x0: true, solver_p: null, thresholding: false }));
  throwsFile(() => new UniPCMultistepScheduler({ predict_x0: false }, { source: 'u.json' }), 'u.json', 'predict_x0', 'only the data-prediction (predict_x0) variant is supported; expected true, got false');

  const s = new UniPCMultistepScheduler();
  assert.throws(() => s.step(X0, 999, X0), (e: unknown) => e instanceof Error && e.message === 'call setTimesteps() before stepping the scheduler');
  s.setTimesteps(4);
  throwsInput(() => s.step(X0.subarray(1), 999, X0), 'model output has 5 values but the sample has 6');
  const r = s.step(model(X0, 0), 12345, X0); // unknown t: the last index, a first-order step to sigma 0 = x0
  nearAll(r.prevSample, r.predOriginalSample!, 1e-6, 'last step', 1);

  // pivoting: the first column's largest entry is in the last row; the exact solution is [1, -2, 3]
  const A = [[1e-3, 2, 1], [2, 1, -1], [4, -1, 2]], x = [1, -2, 3];
  const b = A.map((r) => r.reduce((acc, v, j) => acc + v * x[j]!, 0));
  nearAll(solveF32(A, b), x, 1e-6, 'solveF32 3x3');
  nearAll(solveF32([[0, 1], [1, 0]], [2, 3]), [3, 2], 0, 'solveF32 needs a row swap');
  nearAll(solveF32([[2, 1], [1, 3]], [3, 5]), cramer([[2, 1], [1, 3]], [3, 5]), 1e-6, 'solveF32 2x2');
  nearAll(solveF32([[4]], [2]), [0.5], 0, 'solveF32 1x1');
  const M = [[2, -1, 0], [-1, 2, -1], [0, -1, 2]];
  nearAll(solveF32(M, [1, 0, 1]), cramer(M, [1, 0, 1]), 1e-6, 'solveF32 tridiagonal');
  const P = [[1, 2, 3], [2, 5, 3], [1, 0, 8]];
  nearAll(solveF32(P, [14, 21, 25]), cramer(P, [14, 21, 25]), 1e-5, 'solveF32 with a second pivot');
});

test('UniPC bh1 with a final sigma of 0 is a one-line error, not NaN latents at the last step', () => {
  // word for word, the key included (final_sigmas_type "zero" is UniPC's default, so bh1 alone is refused)
  const detail = 'solver_type "bh1" with final_sigmas_type "zero" makes the last step NaN (as in diffusers); expected final_sigmas_type "sigma_min" or solver_type "bh2"';
  throwsFile(() => new UniPCMultistepScheduler({ solver_type: 'bh1' }), SRC, 'solver_type', detail);
  throwsFile(() => new UniPCMultistepScheduler({ solver_type: 'bh1', final_sigmas_type: 'zero' }, { source: 'u.json' }), 'u.json', 'solver_type', detail);
  assert.equal(new UniPCMultistepScheduler({ solver_type: 'bh1', final_sigmas_type: 'sigma_min' }).solverType, 'bh1');
});

test('scheduler survivors: lower_order_final at N = 15 exactly and with a final sigma_min, sigma_min / sigma_max ignored, one bad disable_corrector entry, lambda_min_clipped -1', () => {
  // N < 15 lowers the last steps (lower_order_final) even with a final sigma_min; N = 15 does not.
  runDpm({ solver_order: 3, final_sigmas_type: 'sigma_min' }, 5, [1, 2, 3, 2, 1]);
  runDpm({ solver_order: 3, final_sigmas_type: 'sigma_min' }, 15, [1, 2, ...Array<number>(13).fill(3)]);
  // sigma_min / sigma_max are not keys of these two classes (diffusers ignores them): any value passes.
  for (const C of [DPMSolverMultistepScheduler, UniPCMultistepScheduler]) {
    const s = new C({ sigma_min: 'x', sigma_max: 'y' });
    s.setTimesteps(4);
    assert.deepEqual(s.timesteps, [999, 749, 500, 250]);
  }
  // A disable_corrector list with one non-integer entry is refused.
  throwsFile(() => new UniPCMultistepScheduler({ disable_corrector: [1, 2.5] }), SRC, 'disable_corrector', 'expected a list of step indices, got [1,2.5]');
  // lambda_min_clipped -1: lambda = log(sqrt(abar)) - log(sqrt(1 - abar)) (at -3, log(abar (1 - abar)) would clip the same count).
  const abar = alphaBar64(betas64(0.0001, 0.02, 1000, 'linear'));
  let clipped = 0, wrong = 0;
  for (let i = 999; i >= 0 && 0.5 * Math.log(abar[i]! / (1 - abar[i]!)) < -1; i--) clipped++;
  for (let i = 999; i >= 0 && 0.5 * Math.log(abar[i]! * (1 - abar[i]!)) < -1; i--) wrong++;
  assert.ok(wrong - clipped > 10, `${clipped} vs ${wrong}`);
  const c = new DPMSolverMultistepScheduler({ lambda_min_clipped: -1 });
  c.setTimesteps(4);
  const last = 1000 - clipped;
  assert.deepEqual(c.timesteps, Array.from({ length: 5 }, (_, i) => (i * (last - 1)) / 4).map(roundHalfEven).reverse().slice(0, 4));
});
