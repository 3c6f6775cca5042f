/**
 * Kernel Inception Distance as torchmetrics 1.4.3 computes it (`KernelInceptionDistance.compute`):
 * per subset, rows drawn by torch.randperm(N_real)[:m] then torch.randperm(N_fake)[:m] from one torch
 * generator seeded with `seed` (torchmetrics uses the global generator: `torch.manual_seed(seed)` right
 * before compute), polynomial kernel k(x, y) = (x.y / d + 1)^3, unbiased MMD^2, then the mean and the
 * population standard deviation over the subsets. Float64 arithmetic.
 */
import { InputError } from '../errors.js';
import { torchRandperm } from '../noise/randperm.js';
import { TorchGenerator } from '../noise/torch-generator.js';

export interface KidOptions {
  subsets?: number;
  subsetSize?: number;
  seed?: number | bigint;
  /**
   * Compute each pair's kernel once into a table (the subsets draw the same pairs again and again) instead of
   * per subset; same values bit for bit. Default: when that is less work and the tables fit in 1 GiB.
   */
  kernelTable?: boolean;
}

/** The polynomial kernel of torchmetrics' KID (degree 3, gamma 1/d, coef 1). */
function polyKernel(a: Float32Array, b: Float32Array): number {
  const d = a.length;
  let s = 0;
  for (let i = 0; i < d; i++) s += a[i]! * b[i]!;
  return (s / d + 1) ** 3;
}

/** k(a_i, b_j) for every pair, row-major; when a = b only half is computed (k is symmetric to the bit). */
function kernelTable(a: readonly Float32Array[], b: readonly Float32Array[]): Float64Array {
  const na = a.length, nb = b.length, t = new Float64Array(na * nb);
  for (let i = 0; i < na; i++) {
    for (let j = a === b ? i : 0; j < nb; j++) {
      const v = polyKernel(a[i]!, b[j]!);
      t[i * nb + j] = v;
      if (a === b) t[j * nb + i] = v;
    }
  }
  return t;
}

type PairKernel = (i: number, j: number) => number;

/** Unbiased MMD^2 of one subset of m rows a side, from its kernels (row i, row j of the subset). */
function polyMmd(m: number, kxx: PairKernel, kyy: PairKernel, kxy: PairKernel): number {
  let xx = 0, yy = 0, xy = 0;
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < m; j++) {
      if (i !== j) { xx += kxx(i, j); yy += kyy(i, j); }
      xy += kxy(i, j);
    }
  }
  return (xx + yy) / (m * (m - 1)) - (2 * xy) / (m * m);
}

export function kernelInceptionDistance(real: readonly Float32Array[], fake: readonly Float32Array[], o: KidOptions = {}): { kidMean: number; kidStd: number } {
  const subsets = o.subsets ?? 100, m = o.subsetSize ?? 1000;
  if (real.length < m || fake.length < m) throw new InputError(`KID: the subset size ${m} needs at least ${m} images per set (got ${real.length} and ${fake.length}); lower --kid-subset-size`);
  if (m < 2) throw new InputError('KID: the subset size must be at least 2');
  const nr = real.length, nf = fake.length;
  const tableWork = (nr * (nr + 1)) / 2 + (nf * (nf + 1)) / 2 + nr * nf, subsetWork = subsets * 3 * m * m;
  const useTable = o.kernelTable ?? (tableWork < subsetWork && (nr * nr + nf * nf + nr * nf) * 8 <= 2 ** 30);
  const tables = useTable ? { rr: kernelTable(real, real), ff: kernelTable(fake, fake), rf: kernelTable(real, fake) } : undefined;
  const gen = new TorchGenerator(o.seed ?? 123);
  const vals: number[] = [];
  for (let s = 0; s < subsets; s++) {
    const pr = torchRandperm(gen, nr).slice(0, m), pf = torchRandperm(gen, nf).slice(0, m);
    vals.push(tables
      ? polyMmd(m, (i, j) => tables.rr[pr[i]! * nr + pr[j]!]!, (i, j) => tables.ff[pf[i]! * nf + pf[j]!]!, (i, j) => tables.rf[pr[i]! * nf + pf[j]!]!)
      : polyMmd(m, (i, j) => polyKernel(real[pr[i]!]!, real[pr[j]!]!), (i, j) => polyKernel(fake[pf[i]!]!, fake[pf[j]!]!), (i, j) => polyKernel(real[pr[i]!]!, fake[pf[j]!]!)));
  }
  const mean = vals.reduce((a, b) => a + b, 0) / vals.length;
  const std = Math.sqrt(vals.reduce((a, b) => a + (b - mean) ** 2, 0) / vals.length);
  return { kidMean: mean, kidStd: std };
}
