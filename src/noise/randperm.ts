/**
 * `torch.randperm(n)` on the CPU, bit for bit: a forward Fisher-Yates shuffle of 0..n-1 that swaps
 * position i with i + (w_i % (n - i)) for i = 0..n-2, one 32-bit generator output w_i per position
 * (torch's randperm_cpu). With `new TorchGenerator(seed)` it equals `torch.manual_seed(seed);
 * torch.randperm(n)`; it continues the generator's stream, as torch does.
 */
import { InputError } from '../errors.js';
import type { TorchGenerator } from './torch-generator.js';

export function torchRandperm(gen: TorchGenerator, n: number): number[] {
  if (!Number.isSafeInteger(n) || n < 0 || n >= 2 ** 32) throw new InputError(`randperm: n must be an integer in [0, 2^32), got ${n}`);
  const r = Array.from({ length: n }, (_, i) => i);
  for (let i = 0; i < n - 1; i++) {
    const z = i + (gen.nextUint32() % (n - i));
    const t = r[i]!; r[i] = r[z]!; r[z] = t;
  }
  return r;
}
