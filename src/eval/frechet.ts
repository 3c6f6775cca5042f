/**
 * The Frechet distance of pytorch-fid in float64:
 *   FID = |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr sqrtm(S1 S2),
 * mu = mean of the features, S = np.cov (divides by N - 1).
 *
 * tr sqrtm(S1 S2) is computed without forming sqrtm (eigen / singular value routines of the `ml-matrix`
 * package, float64):
 * - when a set has no more images than feature dimensions (the covariance is rank-deficient, as in
 *   any FID on fewer than 2049 images): S = X^T X with X the centred features / sqrt(N - 1), and the
 *   eigenvalues of S1 S2 are the squared singular values of X1 X2^T, so the trace is their sum;
 * - otherwise: sum of sqrt(eigenvalues) of the symmetric sqrt(S1) S2 sqrt(S1).
 * scipy's sqrtm (what pytorch-fid calls) reaches the same value up to its own rounding (it returns a
 * complex result with tiny imaginary parts on such products; pytorch-fid keeps the real part).
 */
import { EigenvalueDecomposition, Matrix, SingularValueDecomposition } from 'ml-matrix';
import { InputError } from '../errors.js';

export interface FeatureStats {
  readonly n: number;
  readonly dims: number;
  readonly mu: Float64Array;
  /** Centred features / sqrt(N - 1), [N, D] row-major. */
  readonly x: Float64Array;
}

/** Mean and scaled centred rows of N feature vectors of one length. */
export function featureStats(rows: readonly Float32Array[], what = 'features'): FeatureStats {
  const n = rows.length;
  if (n < 2) throw new InputError(`FID: ${what} has ${n} feature vector(s); the covariance needs at least 2`);
  const d = rows[0]!.length;
  for (const r of rows) if (r.length !== d) throw new InputError(`FID: ${what} rows differ in length (${r.length} vs ${d})`);
  const mu = new Float64Array(d);
  for (const r of rows) for (let k = 0; k < d; k++) mu[k] += r[k]!;
  for (let k = 0; k < d; k++) mu[k] /= n;
  const x = new Float64Array(n * d), s = 1 / Math.sqrt(n - 1);
  rows.forEach((r, i) => { for (let k = 0; k < d; k++) x[i * d + k] = (r[k]! - mu[k]!) * s; });
  for (let i = 0; i < x.length; i++) if (!Number.isFinite(x[i]!)) throw new InputError(`FID: ${what} holds a non-finite value`);
  return { n, dims: d, mu, x };
}

function rowsOf(s: FeatureStats): Matrix {
  const m = new Matrix(s.n, s.dims);
  for (let i = 0; i < s.n; i++) for (let k = 0; k < s.dims; k++) m.set(i, k, s.x[i * s.dims + k]!);
  return m;
}

/** sqrt of a symmetric positive semi-definite matrix (negative rounding eigenvalues clamped to 0). */
function sqrtmSymmetric(a: Matrix): Matrix {
  const e = new EigenvalueDecomposition(a, { assumeSymmetric: true });
  const v = e.eigenvectorMatrix, lam = e.realEigenvalues;
  const scaled = v.clone();
  for (let j = 0; j < lam.length; j++) { const r = Math.sqrt(Math.max(lam[j]!, 0)); for (let i = 0; i < v.rows; i++) scaled.set(i, j, v.get(i, j) * r); }
  return scaled.mmul(v.transpose());
}

/** tr sqrtm(S1 S2) of two feature sets; `method` forces one of the two routes (default: the cheaper). */
export function traceSqrtProduct(a: FeatureStats, b: FeatureStats, method: 'auto' | 'low-rank' | 'full' = 'auto'): number {
  if (a.dims !== b.dims) throw new InputError(`FID: feature sizes differ (${a.dims} vs ${b.dims})`);
  const xa = rowsOf(a), xb = rowsOf(b);
  if (method === 'low-rank' || (method === 'auto' && Math.min(a.n, b.n) <= a.dims)) {
    const m = xa.mmul(xb.transpose());
    const svd = new SingularValueDecomposition(m, { computeLeftSingularVectors: false, computeRightSingularVectors: false, autoTranspose: true });
    return svd.diagonal.reduce((s, v) => s + Math.max(v, 0), 0);
  }
  const s1 = xa.transpose().mmul(xa), s2 = xb.transpose().mmul(xb);
  const r = sqrtmSymmetric(s1);
  const c = r.mmul(s2).mmul(r);
  const sym = c.add(c.transpose()).mul(0.5);
  const lam = new EigenvalueDecomposition(sym, { assumeSymmetric: true }).realEigenvalues;
  return lam.reduce((s, v) => s + Math.sqrt(Math.max(v, 0)), 0);
}

export interface FrechetResult {
  readonly fid: number;
  /** Notes for the user (rank-deficient covariances), as pytorch-fid would warn. */
  readonly warnings: string[];
}

export function frechetDistance(a: FeatureStats, b: FeatureStats): FrechetResult {
  const d = a.dims;
  let diff = 0;
  for (let k = 0; k < d; k++) diff += (a.mu[k]! - b.mu[k]!) ** 2;
  const tr = (s: FeatureStats): number => { let t = 0; for (let i = 0; i < s.x.length; i++) t += s.x[i]! ** 2; return t; };
  const fid = diff + tr(a) + tr(b) - 2 * traceSqrtProduct(a, b);
  const warnings: string[] = [];
  for (const [name, s] of [['a', a], ['b', b]] as const) {
    if (s.n <= d) warnings.push(`FID set ${name} has ${s.n} images for ${d} feature dimensions: its covariance is rank-deficient, so the estimate is biased (pytorch-fid recommends at least ${d + 1}; papers use 10k-50k)`);
  }
  return { fid, warnings };
}
