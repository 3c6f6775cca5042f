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

export interface KidOptions { subsets?: number; subsetSize?: number; seed?: number | bigint }

function polyMmd(x: readonly Float32Array[], y: readonly Float32Array[]): number {
  const m = x.length, d = x[0]!.length;
  const k = (a: Float32Array, b: Float32Array): number => { let s = 0; for (let i = 0; i < d; i++) s += a[i]! * b[i]!; return (s / d + 1) ** 3; };
  let xx = 0, yy = 0, xy = 0;
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < m; j++) {
      if (i !== j) { xx += k(x[i]!, x[j]!); yy += k(y[i]!, y[j]!); }
      xy += k(x[i]!, y[j]!);
    }
  }
  return (xx + yy) / (m * (m - 1)) - (2 * xy) / (m * m);
}

export function kernelInceptionDistance(real: readonly Float32Array[], fake: readonly Float32Array[], o: KidOptions = {}): { kidMean: number; kidStd: number } {
  const subsets = o.subsets ?? 100, m = o.subsetSize ?? 1000;
  if (real.length < m || fake.length < m) throw new InputError(`KID: the subset size ${m} needs at least ${m} images per set (got ${real.length} and ${fake.length}); lower --kid-subset-size`);
  if (m < 2) throw new InputError('KID: the subset size must be at least 2');
  const gen = new TorchGenerator(o.seed ?? 123);
  const vals: number[] = [];
  for (let s = 0; s < subsets; s++) {
    const pr = torchRandperm(gen, real.length).slice(0, m), pf = torchRandperm(gen, fake.length).slice(0, m);
    vals.push(polyMmd(pr.map((i) => real[i]!), pf.map((i) => fake[i]!)));
  }
  const mean = vals.reduce((a, b) => a + b, 0) / vals.length;
  const std = Math.sqrt(vals.reduce((a, b) => a + (b - mean) ** 2, 0) / vals.length);
  return { kidMean: mean, kidStd: std };
}
