/**
 * The few numpy operations diffusers' `set_timesteps` uses, reproduced in float64 as numpy computes
 * them (timestep spacings, `np.interp`, the Karras ramp, `_sigma_to_t`).
 */

const f = Math.fround;

/** numpy's round (half to even). */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** `np.arange(start, stop, step)` for floats: length ceil((stop-start)/step), values start + i*delta with delta = (start+step) - start. */
export function npArange(start: number, stop: number, step: number): number[] {
  const len = Math.max(0, Math.ceil((stop - start) / step));
  const out: number[] = [];
  if (len === 0) return out;
  out.push(start);
  if (len === 1) return out;
  const delta = start + step - start;
  out.push(start + step);
  for (let i = 2; i < len; i++) out.push(start + i * delta);
  return out;
}

/** `np.linspace(start, stop, num, endpoint)` in float64: start + i * step, the last exactly `stop` with endpoint. */
export function npLinspace(start: number, stop: number, num: number, endpoint = true): number[] {
  const div = endpoint ? num - 1 : num;
  const step = (stop - start) / div;
  const out = Array.from({ length: num }, (_, i) => (div > 0 ? i * step + start : start));
  if (endpoint && num > 1) out[num - 1] = stop;
  return out;
}

/** `np.interp(x, arange(len(fp)), fp)` (fp float32 values, result float64), x inside [0, len-1] or clamped. */
export function npInterpIndex(xs: readonly number[], fp: Float32Array): number[] {
  const n = fp.length;
  return xs.map((x) => {
    if (!(x > 0)) return x <= 0 ? fp[0]! : Number.NaN;
    if (x >= n - 1) return fp[n - 1]!;
    const j = Math.floor(x);
    if (x === j) return fp[j]!;
    const slope = fp[j + 1]! - fp[j]!; // (dy[j+1] - dy[j]) / (dx[j+1] - dx[j]) with dx spaced 1
    return slope * (x - j) + fp[j]!;
  });
}

/** diffusers' `_convert_to_karras`: (max^(1/7) + ramp (min^(1/7) - max^(1/7)))^7, ramp = linspace(0, 1, n), float64. */
export function karrasSigmas(sigmaMin: number, sigmaMax: number, n: number): number[] {
  const rho = 7.0;
  const minInv = sigmaMin ** (1 / rho);
  const maxInv = sigmaMax ** (1 / rho);
  return npLinspace(0, 1, n).map((r) => (maxInv + r * (minInv - maxInv)) ** rho);
}

/** `np.log` of a float32 array (float32 result). */
export function logF32(x: Float32Array): Float32Array {
  return x.map((v) => f(Math.log(v)));
}

/**
 * diffusers' `_sigma_to_t`: the (fractional) training timestep of a sigma by linear interpolation in
 * log-sigma between the two neighbouring training sigmas (log_sigmas float32, arithmetic float64).
 */
export function sigmaToT(sigma: number, logSigmas: Float32Array): number {
  const logSigma = Math.log(Math.max(sigma, 1e-10));
  const n = logSigmas.length;
  // cumsum(dists >= 0).argmax(): the last index whose log sigma is <= log_sigma (0 when none), clipped to n - 2
  let count = 0, best = -1, low = 0;
  for (let i = 0; i < n; i++) {
    if (logSigma - logSigmas[i]! >= 0) count++;
    if (count > best) { best = count; low = i; }
  }
  low = Math.min(low, n - 2);
  const lo = logSigmas[low]!, hi = logSigmas[low + 1]!;
  let w = (lo - logSigma) / (lo - hi);
  w = Math.min(Math.max(w, 0), 1);
  return (1 - w) * low + w * (low + 1);
}
