/**
 * sin and cos from exact float32 primitives (Mul, Add, Sub, Round, Where) for devices whose Sin/Cos
 * kernels are approximations: Vulkan allows GLSL's sin/cos an absolute error of 2^-11 on [-pi, pi]
 * (measured 2.1e-4 on SwiftShader through ONNX Runtime's WebGPU provider), which shifts the UNet's
 * timestep features by far more than float32 rounding. Here: Cody-Waite reduction by 2*pi in three
 * parts (k * part exact for |k| < 256, i.e. |x| < ~1600), a fold onto [-pi/2, pi/2], and the Taylor
 * series to x^17 (truncation < 1e-11 there), so the result is within a few float32 ulps of sin(x).
 */
import type { Value } from './ir.js';
import * as op from './ops.js';

// 2*pi split so that the first two parts have 16 significant bits (k * part exact for |k| < 2^8).
const TWO_PI_1 = 6.28314208984375;
const TWO_PI_2 = 4.3217092752456665e-5;
const TWO_PI_3 = Math.fround(2 * Math.PI - TWO_PI_1 - TWO_PI_2);
const PI_HI = Math.fround(Math.PI);
const PI_LO = Math.fround(Math.PI - PI_HI);
const HALF_PI_HI = Math.fround(Math.PI / 2);
const HALF_PI_LO = Math.fround(Math.PI / 2 - HALF_PI_HI);

/** x - k * 2pi with k = round(x / 2pi): r in [-pi, pi] up to rounding. */
function reduce(x: Value): Value {
  const k = x.graph.node('Round', [op.mul(x, 1 / (2 * Math.PI))], [{ shape: x.shape, dtype: x.dtype }])[0]!;
  return op.sub(op.sub(op.sub(x, op.mul(k, TWO_PI_1)), op.mul(k, TWO_PI_2)), op.mul(k, TWO_PI_3));
}

/** sin(r) for r in about [-pi, pi]: fold to [-pi/2, pi/2] by sin(r) = sin(+-pi - r), then Taylor. */
function sinReduced(r: Value): Value {
  const upper = op.add(op.rsub(PI_HI, r), PI_LO); // pi - r, exact subtraction for r in [pi/2, pi]
  const lower = op.sub(op.rsub(-PI_HI, r), PI_LO); // -pi - r
  const s = op.where(op.greater(r, HALF_PI_HI), upper, op.where(op.greater(op.neg(r), HALF_PI_HI), lower, r));
  const s2 = op.mul(s, s);
  // Horner on 1 - s^2/3! + s^4/5! - ... - s^16/17!
  const coeffs = [1, -1 / 6, 1 / 120, -1 / 5040, 1 / 362880, -1 / 39916800, 1 / 6227020800, -1 / 1307674368000, 1 / 355687428096000];
  let p: Value = op.constFloat(s.graph, [1], Float32Array.of(coeffs[coeffs.length - 1]!), 'sin_c');
  for (let i = coeffs.length - 2; i >= 0; i--) p = op.add(op.mul(p, s2), coeffs[i]!);
  return op.mul(s, p);
}

export function exactSin(x: Value): Value {
  return sinReduced(reduce(x));
}

/** cos(x) = sin(pi/2 - r) on the reduced argument (pi/2 - r stays in [-pi/2, 3pi/2]; the fold handles it). */
export function exactCos(x: Value): Value {
  const r = reduce(x);
  const shifted = op.add(op.rsub(HALF_PI_HI, r), HALF_PI_LO);
  // pi/2 - r may exceed pi by up to pi/2: bring it back into [-pi, pi] before folding.
  const wrapped = op.where(op.greater(shifted, PI_HI), op.sub(op.sub(shifted, TWO_PI_1), TWO_PI_2 + TWO_PI_3), shifted);
  return sinReduced(wrapped);
}
